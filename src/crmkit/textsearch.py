"""Ranked full-text search: what is searchable, how queries are read, and an in-memory index.

Every backend ranks with its own database engine (SQLite FTS5 ``bm25()``, PostgreSQL
``ts_rank_cd``, MongoDB ``textScore``); this module holds what they share:

- :data:`TEXT_FIELDS`: the searchable collections, their text fields and the weight of each
  (a title match counts ten times a body match, a tag match five times);
- :func:`query_terms`: how a query string becomes search terms. Queries are plain words, never
  a query language: every run of letters and digits is a term, everything else (quotes,
  ``*``, ``-``, parentheses, ``NEAR``-style operators spelled in symbols) separates terms.
  Common English words (``the``, ``how``, ``to`` ...) are dropped. A record matches when it
  contains *any* term; records containing more of the terms, rarer terms, or terms in
  heavier fields rank higher. Terms are passed to the databases as literals, so no input
  can cause a query syntax error;
- :func:`stem`: English stemming (Snowball, the algorithm family PostgreSQL's and MongoDB's
  ``english`` configurations use), so ``passwords`` finds ``password``;
- :class:`TextIndex`: an inverted index with BM25 ranking, maintained record by record (used
  by the memory backend and by the mongomock fallback).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import snowballstemmer  # type: ignore[import-untyped]

from crmkit.errors import ValidationError

__all__ = [
    "MAX_TERMS",
    "STOPWORDS",
    "TEXT_FIELDS",
    "TextIndex",
    "field_text",
    "query_terms",
    "rank",
    "stem",
    "words",
]

#: Searchable collections: ``collection -> ((field, weight), ...)``, heaviest first.
TEXT_FIELDS: Mapping[str, tuple[tuple[str, float], ...]] = {
    "articles": (("title", 10.0), ("tags", 5.0), ("body", 1.0)),
}

#: At most this many distinct terms of a query are used (the first ones).
MAX_TERMS = 64

#: Terms longer than this are cut (PostgreSQL ignores words over 2047 bytes).
_MAX_TERM_LENGTH = 100

_STOPWORD_TEXT = """a about above after again against all am an and any are as at be
    because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves"""
#: Words too common to tell records apart, dropped from queries.
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

# runs of letters and digits: "_" and every punctuation or symbol separate terms
_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``, in order (stopwords included).

    >>> words("Reset your PASSWORD (quickly)!")
    ['reset', 'your', 'password', 'quickly']
    """
    return _WORD.findall(text.casefold())


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The English stem of a lower-case word (``"passwords"`` -> ``"password"``)."""
    stemmed: str = _STEMMER.stemWord(word)
    return stemmed


def query_terms(text: Any, *, where: str = "text") -> tuple[str, ...]:
    """The search terms of a query: distinct lower-case words, common words left out.

    Raises ``ValidationError`` (naming ``where``) when ``text`` is not a string or holds no
    word at all (empty, whitespace, only punctuation). A query of only common words
    (``"how to"``) gives no terms: it matches nothing.

    >>> query_terms('How to "reset" my password*?')
    ('reset', 'password')
    """
    if not isinstance(text, str):
        raise ValidationError(where, text, "must be a string")
    found = words(text)
    if not found:
        raise ValidationError(where, text, "must contain at least one word")
    terms = dict.fromkeys(w[:_MAX_TERM_LENGTH] for w in found if w not in STOPWORDS)
    return tuple(terms)[:MAX_TERMS]


def field_text(value: Any) -> str:
    """The searchable text of a field value (list fields: their items joined by spaces)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return " ".join(str(v) for v in value)
    return str(value)


class TextIndex:
    """An inverted index of the weighted text fields of records, ranked by BM25.

    Written by hand rather than taken from a BM25 package: those (``rank_bm25``, ``bm25s``)
    index a fixed corpus at once, while a store must add, replace and remove single records
    (and undo them on rollback) without re-indexing everything.

    Each field is its own BM25 index (``k1=1.2``, ``b=0.75``, the field's own document
    frequencies and average length); a record's score is the sum over query terms of each
    field's score times the field's weight. Not thread-safe for writers: the owning store
    serializes writes.
    """

    K1 = 1.2
    B = 0.75

    def __init__(self, fields: Sequence[tuple[str, float]]) -> None:
        self.fields = tuple(name for name, _ in fields)
        self.weights = tuple(weight for _, weight in fields)
        #: per field: stem -> record id -> occurrences
        self._postings: tuple[dict[str, dict[str, int]], ...] = tuple({} for _ in fields)
        #: per field: record id -> (length, its stems)
        self._docs: tuple[dict[str, tuple[int, tuple[str, ...]]], ...] = tuple({} for _ in fields)
        self._ids: set[str] = set()
        self._total = [0] * len(self.fields)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, id: str, record: Any) -> None:
        """Index ``record`` (any object with the text fields as attributes) under ``id``."""
        if id in self._ids:
            self.remove(id)
        self._ids.add(id)
        for i, name in enumerate(self.fields):
            tokens = words(field_text(getattr(record, name)))
            if not tokens:
                continue
            counts = Counter(map(stem, tokens))
            postings = self._postings[i]
            for s, n in counts.items():
                postings.setdefault(s, {})[id] = n
            self._docs[i][id] = (len(tokens), tuple(counts))
            self._total[i] += len(tokens)

    def remove(self, id: str) -> None:
        """Forget the record ``id`` (no-op when it is not indexed)."""
        if id not in self._ids:
            return
        self._ids.discard(id)
        for i, docs in enumerate(self._docs):
            doc = docs.pop(id, None)
            if doc is None:
                continue
            length, stems = doc
            self._total[i] -= length
            postings = self._postings[i]
            for s in stems:
                ids = postings.get(s)
                if ids is not None:
                    ids.pop(id, None)
                    if not ids:
                        del postings[s]

    def scores(self, terms: Iterable[str]) -> dict[str, float]:
        """BM25 scores of the records containing any of ``terms`` (words, stemmed here)."""
        n = len(self._ids)
        out: dict[str, float] = {}
        if not n:
            return out
        k1, b = self.K1, self.B
        stems = list(dict.fromkeys(stem(t) for t in terms))
        for i, postings in enumerate(self._postings):
            docs = self._docs[i]
            avg = max(self._total[i] / n, 1e-9)
            weight = self.weights[i]
            for s in stems:
                ids = postings.get(s)
                if not ids:
                    continue
                idf = math.log(1.0 + (n - len(ids) + 0.5) / (len(ids) + 0.5)) * weight
                for id, f in list(ids.items()):  # a copy: writers may run meanwhile
                    doc = docs.get(id)
                    if doc is None:
                        continue
                    norm = k1 * (1.0 - b + b * doc[0] / avg)
                    out[id] = out.get(id, 0.0) + idf * f * (k1 + 1.0) / (f + norm)
        return out


def rank(scores: Mapping[str, float], limit: int) -> list[tuple[str, float]]:
    """The ``limit`` best ``(id, score)`` pairs: highest score first, then by id."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return ordered[:limit]
