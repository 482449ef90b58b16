"""Conformance tests of the knowledge base's ranked text search. Mixed into
:class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them through its
``crm`` fixture.

Every backend ranks with its own engine, so scores differ between backends; what must hold
everywhere is which articles match, that title matches outrank body matches, the limit,
drafts, that writes (and rolled-back writes) are reflected at once, and permissions.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from crmkit import CRM, Article, NotFound, PermissionDenied, Role, Ticket, User, ValidationError
from crmkit.entities import ArticleStatus
from crmkit.knowledge import SearchHit
from crmkit.query import F

__all__ = ["KnowledgeConformance"]

_PUBLISHED = ArticleStatus.PUBLISHED


def _titles(hits: Sequence[SearchHit]) -> list[str]:
    return [h.article.title for h in hits]


def _library(crm: CRM) -> dict[str, Article]:
    rows = {
        "reset": Article(
            title="Reset your password",
            body="Open the sign-in page and follow the link we email you.",
            tags=("account",),
            status=_PUBLISHED,
        ),
        "billing": Article(
            title="Update billing details",
            body="Invoices are sent monthly. Passwords are never asked for by email.",
            tags=("billing",),
            status=_PUBLISHED,
        ),
        "export": Article(
            title="Export your contacts",
            body="Download a CSV file of every contact from the settings page.",
            tags=("data",),
            status=_PUBLISHED,
        ),
        "draft": Article(
            title="Password rules (draft)",
            body="Minimum length and rotation of passwords.",
            status=ArticleStatus.DRAFT,
        ),
    }
    return {name: crm.articles.add(a) for name, a in rows.items()}


class KnowledgeConformance:
    """Knowledge-base search behaviour every backend must have (see the module docstring)."""

    def test_knowledge_search_finds_relevant_articles_and_not_irrelevant_ones(
        self, crm: CRM
    ) -> None:
        """Any query word matches (stemmed: "passwords" finds "password"); others don't."""
        _library(crm)
        hits = crm.articles.search("reset password")
        assert _titles(hits)[0] == "Reset your password"
        assert set(_titles(hits)) == {"Reset your password", "Update billing details"}
        assert all(h.score > 0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert _titles(crm.articles.search("passwords"))[0] == "Reset your password"
        assert _titles(crm.articles.search("CSV download")) == ["Export your contacts"]
        assert crm.articles.search("kangaroo") == []
        assert crm.articles.search("the and of") == []  # only common words: nothing

    def test_knowledge_title_match_outranks_body_match(self, crm: CRM) -> None:
        """The same word once in a title beats it once in a (short) body."""
        body = crm.articles.add(
            Article(title="Getting started", body="Configure the webhook.", status=_PUBLISHED)
        )
        title = crm.articles.add(
            Article(title="Webhook guide", body="How to begin.", status=_PUBLISHED)
        )
        hits = crm.articles.search("webhook")
        assert [h.article.id for h in hits] == [title.id, body.id]
        assert hits[0].score > hits[1].score

    def test_knowledge_limit_where_and_drafts(self, crm: CRM) -> None:
        """``limit`` caps the result, ``where`` narrows it, drafts only on request."""
        lib = _library(crm)
        for i in range(5):
            crm.articles.add(Article(title=f"Password tip {i}", status=_PUBLISHED))
        assert len(crm.articles.search("password", limit=3)) == 3
        assert len(crm.articles.search("password", limit=100)) == 7
        tagged = crm.articles.search("password", where=F.tags.contains("billing"))
        assert _titles(tagged) == ["Update billing details"]
        assert lib["draft"].id not in {h.article.id for h in crm.articles.search("rotation")}
        with_drafts = crm.articles.search("rotation", published_only=False)
        assert [h.article.id for h in with_drafts] == [lib["draft"].id]

    def test_knowledge_bad_queries_raise_validation_error_or_are_literal(self, crm: CRM) -> None:
        """No input reaches the database as query syntax."""
        _library(crm)
        for bad in ("", "   ", "\t\n", '"', "*", "()", "-", '"" *', None, 42):
            with pytest.raises(ValidationError):
                crm.articles.search(bad)  # type: ignore[arg-type]
        for bad_limit in (0, -1, True, 2.5, "3"):
            with pytest.raises(ValidationError):
                crm.articles.search("password", limit=bad_limit)  # type: ignore[arg-type]
        for odd in (
            '"reset',
            "reset*",
            "NEAR(reset password)",
            "((reset",
            "reset) OR (",
            "AND OR NOT",
            "password -reset",
            "title:reset",
            "reset' OR 1=1 --",
            "{title}: reset ^ password",
            "x" * 5000,
            "über résumé 密码",
        ):
            hits = crm.articles.search(odd)
            assert isinstance(hits, list)
        assert _titles(crm.articles.search('"reset"'))[0] == "Reset your password"
        assert _titles(crm.articles.search("reset*"))[0] == "Reset your password"

    def test_knowledge_updates_and_deletes_are_reflected(self, crm: CRM) -> None:
        """The index follows every write at once."""
        lib = _library(crm)
        export = crm.articles.update(
            attrs.evolve(lib["export"], title="Spreadsheet export", body="Save records as XLSX.")
        )
        assert crm.articles.search("csv download") == []
        assert [h.article for h in crm.articles.search("spreadsheets xlsx")] == [export]
        tagged = crm.articles.update(attrs.evolve(export, tags=("gdpr",)))
        assert [h.article for h in crm.articles.search("gdpr")] == [tagged]
        crm.articles.delete(lib["reset"].id or "")
        assert "Reset your password" not in _titles(crm.articles.search("reset password"))
        published = crm.articles.update(attrs.evolve(lib["draft"], status=_PUBLISHED))
        assert [h.article for h in crm.articles.search("rotation")] == [published]

    def test_knowledge_rolled_back_writes_leave_the_index_consistent(self, crm: CRM) -> None:
        """A failed transaction's adds, updates and deletes are undone in the index too."""
        lib = _library(crm)

        def fail() -> None:
            with crm.transaction():
                crm.articles.add(Article(title="Quantum flux capacitor", status=_PUBLISHED))
                crm.articles.update(attrs.evolve(lib["export"], title="Teleport contacts"))
                crm.articles.delete(lib["billing"].id or "")
                assert _titles(crm.articles.search("teleport")) == ["Teleport contacts"]
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail()
        assert crm.articles.search("quantum flux") == []
        assert crm.articles.search("teleport") == []
        assert _titles(crm.articles.search("export")) == ["Export your contacts"]
        assert _titles(crm.articles.search("invoices")) == ["Update billing details"]
        assert crm.articles.search("export")[0].article == crm.articles.get(lib["export"].id or "")

    def test_knowledge_suggest_for_a_ticket(self, crm: CRM) -> None:
        """Suggestions search by the ticket's subject and description."""
        _library(crm)
        ticket = crm.tickets.add(
            Ticket(subject="Cannot sign in", description="I forgot my password, please reset it")
        )
        by_id = crm.articles.suggest(ticket.id or "", limit=1)
        assert _titles(by_id) == ["Reset your password"]
        assert _titles(crm.articles.suggest(ticket)) == _titles(
            crm.articles.search("Cannot sign in I forgot my password, please reset it", limit=5)
        )
        quiet = crm.tickets.add(Ticket(subject="?!"))
        assert crm.articles.suggest(quiet) == []
        with pytest.raises(ValidationError):
            crm.articles.suggest(ticket, limit=0)

    def test_knowledge_user_view_searches_only_readable_articles(self, crm: CRM) -> None:
        """A view finds only the articles its user may read; hidden text cannot be searched."""
        writer = crm.roles.add(
            Role(name="writer", permissions={"articles": {"read": "own", "create": "own"}})
        )
        ann = crm.users.add(User(name="Ann", role_ids=(writer.id or "",)))
        ben = crm.users.add(User(name="Ben", role_ids=(writer.id or "",)))
        mine = crm.articles.add(Article(title="Router setup", owner_id=ann.id, status=_PUBLISHED))
        crm.articles.add(Article(title="Router reset", owner_id=ben.id, status=_PUBLISHED))
        view = crm.as_user(ann.id or "")
        assert [h.article.id for h in view.articles.search("router")] == [mine.id]
        assert len(crm.articles.search("router")) == 2
        ticket = crm.tickets.add(Ticket(subject="Router reset"))
        assert crm.as_user(ann.id or "").articles.search("reset") == []
        with pytest.raises(NotFound):  # Ann may not read tickets
            view.articles.suggest(ticket.id or "")
        secret = crm.roles.add(
            Role(
                name="reader",
                permissions={"articles": {"read": "all"}},
                hidden_fields={"articles": ["body"]},
            )
        )
        cid = crm.users.add(User(name="Cid", role_ids=(secret.id or "",)))
        with pytest.raises(PermissionDenied):
            crm.as_user(cid.id or "").articles.search("router")
