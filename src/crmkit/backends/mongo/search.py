"""Ranked text search on MongoDB (see :mod:`crmkit.textsearch` for the semantics).

A searchable collection has one text index, ``crmkit_text``, over its text fields with the
weights of :data:`crmkit.textsearch.TEXT_FIELDS` (title 10, tags 5, body 1) and
``default_language: "english"`` (stemming and stopwords). A search is one ``find`` with
``{"$text": {"$search": "<terms separated by spaces>"}}`` (any term matches; the terms are
plain words, so no ``-negation`` or ``"phrase"`` syntax can reach the server) and-ed with the
compiled filter, sorted by ``{"$meta": "textScore"}`` then ``_id`` and limited by the server.

mongomock implements neither text indexes nor ``$text``. On mongomock only, the records
matching the filter are read and ranked in Python by :class:`crmkit.textsearch.TextIndex`
(BM25 over the same weighted fields): the same results for tests, none of the scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, TEXT

from crmkit.errors import ValidationError
from crmkit.query import Expr
from crmkit.textsearch import TEXT_FIELDS, TextIndex, rank

if TYPE_CHECKING:
    from crmkit.backends.mongo.backend import MongoStore

__all__ = ["INDEX_NAME", "create_text_index", "search"]

#: The name of a collection's text index.
INDEX_NAME = "crmkit_text"

_SCORE = "_crmkit_score"


def create_text_index(collection: Any, name: str) -> None:
    """Create the text index of the crmkit collection ``name`` if it is searchable."""
    fields = TEXT_FIELDS.get(name)
    if not fields:
        return
    collection.create_index(
        [(field, TEXT) for field, _ in fields],
        weights={field: int(weight) for field, weight in fields},
        default_language="english",
        name=INDEX_NAME,
    )


def search(
    store: MongoStore[Any], terms: Sequence[str], where: Expr | None, limit: int
) -> list[tuple[Any, float]]:
    """The ``(record, score)`` pairs of a ranked search (see the module docs)."""
    from crmkit.backends.mongo.backend import _DRIVER_ERRORS
    from crmkit.backends.mongo.compile import projection

    fields = TEXT_FIELDS.get(store.entity.collection)
    if fields is None:
        raise ValidationError("collection", store.entity.collection, "has no text index")
    if not terms:
        return []
    backend = store._backend
    condition = store._compiler.compile(where)
    kw = backend._session()
    if backend.is_mock:
        return _mock_search(store, fields, terms, condition, limit)
    text = {"$text": {"$search": " ".join(terms)}}
    query = {"$and": [text, condition]} if condition else text
    fields_out: dict[str, Any] = {**projection(), _SCORE: {"$meta": "textScore"}}
    try:
        docs = list(
            store.collection.find(
                query,
                fields_out,
                sort=[(_SCORE, {"$meta": "textScore"}), ("_id", ASCENDING)],
                limit=limit,
                **kw,
            )
        )
    except _DRIVER_ERRORS as exc:
        backend._failed(exc, store.entity)
    scores = [float(doc.pop(_SCORE, 0.0)) for doc in docs]
    records = store._conv.from_documents(store.entity, docs)
    return list(zip(records, scores, strict=True))


def _mock_search(
    store: MongoStore[Any],
    fields: Sequence[tuple[str, float]],
    terms: Sequence[str],
    condition: dict[str, Any],
    limit: int,
) -> list[tuple[Any, float]]:
    """mongomock only: rank the records matching ``condition`` in Python."""
    from crmkit.backends.mongo.backend import _DRIVER_ERRORS
    from crmkit.backends.mongo.compile import projection

    backend = store._backend
    try:
        with backend._serialized():
            docs = list(store.collection.find(condition, projection(), **backend._session()))
    except _DRIVER_ERRORS as exc:
        backend._failed(exc, store.entity)
    records = {r.id: r for r in store._conv.from_documents(store.entity, docs)}
    index = TextIndex(fields)
    for id, record in records.items():
        index.add(id, record)
    return [(records[id], score) for id, score in rank(index.scores(terms), limit)]
