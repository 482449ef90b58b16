"""The knowledge base: ranked text search of articles, and articles suggested for a ticket.

``crm.articles`` is an :class:`ArticleRepository`: a repository of
:class:`~crmkit.Article` records plus

- ``search(text, limit=10, where=None, published_only=True)``: the articles matching
  ``text``, best first, as :class:`SearchHit` (``hit.article``, ``hit.score``);
- ``suggest(ticket, limit=5)``: articles for a ticket (a :class:`~crmkit.Ticket` or its id),
  searched by the ticket's subject and description.

The search runs in the database: SQLite FTS5 (``bm25``), PostgreSQL full-text search
(``ts_rank_cd`` over a GIN-indexed ``tsvector``), a MongoDB text index (``textScore``), or
the memory backend's BM25 index. Queries are plain words (see :mod:`crmkit.textsearch`): a
record matches when it contains any word of the query (English stemming, common words
ignored), and records with more, rarer, or title words rank first. Scores are comparable
only within one result.

Through a user's view (``crm.as_user(u).articles``) only articles the user may read are
searched; searching when the title, body or tags are hidden from the user raises
``PermissionDenied``.
"""

from __future__ import annotations

from typing import Any

import attrs

from crmkit.entities import Article, ArticleStatus, Ticket
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.permissions import ScopedRepository, _covers
from crmkit.query import Expr, F
from crmkit.repository import Repository, Verbs
from crmkit.textsearch import TEXT_FIELDS, query_terms, words

__all__ = [
    "ArticleOperations",
    "ArticleRepository",
    "ScopedArticleRepository",
    "SearchHit",
]


@attrs.frozen
class SearchHit:
    """One search result: the article and its relevance (higher is better)."""

    article: Article
    score: float


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit", limit, "must be a whole number >= 1")
    return limit


class ArticleOperations(Verbs[Article]):
    """Knowledge-base verbs shared by the CRM's article repository and a user's view of it."""

    def _text_search(self, terms: tuple[str, ...], where: Expr | None, limit: int) -> list[Any]:
        """``(article, score)`` pairs from the host's store (scoped in a view)."""
        raise NotImplementedError

    def search(
        self,
        text: str,
        *,
        limit: int = 10,
        where: Expr | None = None,
        published_only: bool = True,
    ) -> list[SearchHit]:
        """The articles matching ``text``, best first (at most ``limit``).

        ``text`` is plain words (punctuation and operators are ignored); an article matches
        when it contains any of them, and matches in the title rank above matches in the
        body. ``where`` narrows the articles further (any filter ``find`` accepts);
        ``published_only`` (default) leaves drafts out. Raises ``ValidationError`` for an
        empty query, a ``limit`` below 1 or a bad filter.

        >>> import crmkit
        >>> crm = crmkit.connect("memory://")
        >>> _ = crm.articles.add(crmkit.Article(title="Reset your password", status="published"))
        >>> [h.article.title for h in crm.articles.search("password reset")]
        ['Reset your password']
        """
        terms = query_terms(text)
        limit = _check_limit(limit)
        if not isinstance(published_only, bool):
            raise ValidationError("published_only", published_only, "must be True or False")
        if published_only:
            published = F.status == ArticleStatus.PUBLISHED
            where = published if where is None else where & published
        if not terms:
            return []
        return [
            SearchHit(article, float(score))
            for article, score in self._text_search(terms, where, limit)
        ]

    def suggest(
        self, ticket: Ticket | str, *, limit: int = 5, published_only: bool = True
    ) -> list[SearchHit]:
        """Articles that may answer ``ticket`` (a :class:`~crmkit.Ticket` or its id), best
        first: a search by its subject and description. Articles already linked to the
        ticket (``article.ticket_ids``) are included.

        Raises ``NotFound`` for an unknown (or, in a view, unreadable) ticket id and
        ``ValidationError`` for a bad ``limit``.
        """
        found: Ticket
        if isinstance(ticket, str):
            found = self._source().tickets.get(ticket)
        elif isinstance(ticket, Ticket):
            found = ticket
        else:
            raise ValidationError("ticket", ticket, "must be a Ticket or a ticket id")
        text = " ".join(part for part in (found.subject, found.description) if part)
        _check_limit(limit)
        if not words(text):
            return []
        return self.search(text, limit=limit, published_only=published_only)


class ArticleRepository(Repository[Article], ArticleOperations):
    """The articles repository: :class:`~crmkit.repository.Repository` plus
    :class:`ArticleOperations` (``search``, ``suggest``)."""

    def _text_search(self, terms: tuple[str, ...], where: Expr | None, limit: int) -> list[Any]:
        search = getattr(self._store, "search", None)
        if search is None:
            from crmkit.errors import BackendError

            raise BackendError(f"the {self.entity.collection} store cannot search text")
        hits: list[Any] = search(terms, self._where(where), limit)
        return hits


class ScopedArticleRepository(ScopedRepository[Article], ArticleOperations):
    """Articles as one user sees them: searches return only readable articles."""

    def _text_search(self, terms: tuple[str, ...], where: Expr | None, limit: int) -> list[Any]:
        hidden = self._view.grants.hidden_fields(self._collection)
        for name, _ in TEXT_FIELDS[self._collection]:
            if _covers(hidden, name):
                raise PermissionDenied(f"{self._collection}.{name} is hidden from this user")
        base = self._base
        assert isinstance(base, ArticleRepository)
        scoped = self._restrict(where)
        return [(self._mask(a), s) for a, s in base._text_search(terms, scoped, limit)]
