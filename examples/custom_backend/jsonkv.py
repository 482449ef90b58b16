"""A third-party crmkit backend in one module: every record is a JSON string in a
key-value map, the way it would sit in Redis, a cache or an embedded key-value store.

It shows what a backend has to provide (see :mod:`crmkit.protocols`): a ``Backend`` with
``store``, ``transaction``, ``create_schema`` and ``close``, and one ``Store`` per entity
type with ``insert``, ``get``, ``get_many``, ``replace``, ``delete``, ``find``,
``iterate``, ``count``, ``aggregate`` and, for the searchable collections, ``search``.
crmkit does everything else (ids, versions, timestamps, validation, normalization,
permissions, events). It passes crmkit's shipped
conformance suite (``test_jsonkv.py`` next to this file); ``raw_dump`` is an extra the
suite uses to check that erased personal data leaves no trace in storage.

Queries are answered by decoding the collection's records and testing each one with
:func:`crmkit.testing.reference.matches`, crmkit's executable specification of filter
semantics: simple and exact, but a scan per query, which is fine for a few thousand
records and a reason to write a real query translator for more.

To make ``crmkit.connect("jsonkv://")`` work, a package declares the factory under the
``crmkit.backends`` entry-point group in its ``pyproject.toml``::

    [project.entry-points."crmkit.backends"]
    jsonkv = "jsonkv:open_backend"

Without installing a package, pass the backend to :class:`crmkit.CRM` directly:
``crmkit.CRM(JsonKVBackend())``. Run ``python jsonkv.py`` for a short demonstration.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs

import crmkit
from crmkit import ConflictError, NotFound, ValidationError
from crmkit.aggregation import Group, Metric, aggregate_records
from crmkit.entities import ENTITY_TYPES, Entity
from crmkit.query import Expr, Query
from crmkit.testing import reference
from crmkit.textsearch import TEXT_FIELDS, TextIndex, rank

E = TypeVar("E", bound=Entity)


def open_backend(url: str, /, **options: Any) -> JsonKVBackend:
    """The entry point of ``jsonkv://``: a new, empty store."""
    if options:
        raise ValidationError("options", sorted(options), "are not supported by jsonkv://")
    return JsonKVBackend()


# --- encoding: entities to JSON and back ---------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a field value. crmkit's entity fields accept these forms back
    (ISO strings for dates and datetimes, seconds for durations, strings for decimals)."""
    if attrs.has(type(value)):
        return {a.name: _plain(getattr(value, a.name)) for a in attrs.fields(type(value)) if a.init}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def encode(entity: Entity) -> str:
    """The JSON text of an entity."""
    return json.dumps(_plain(entity), ensure_ascii=False)


def decode(entity: type[E], text: str) -> E:
    """The entity stored as ``text``."""
    return entity(**json.loads(text))


# --- the backend ---------------------------------------------------------------------------


class JsonKVBackend:
    """Records as JSON strings in dictionaries (collection -> id -> text).

    Transactions: writers are serialized by one lock held for the length of a transaction,
    and each transaction (or savepoint) keeps a copy of the maps to restore on failure.
    """

    name = "jsonkv"

    def __init__(self) -> None:
        self.data: dict[str, dict[str, str]] = {}
        self.lock = threading.RLock()
        self._stores: dict[type[Entity], JsonKVStore[Any]] = {}

    def store(self, entity: type[E]) -> JsonKVStore[E]:
        """The store of ``entity``'s records."""
        if entity not in self._stores:
            self._stores[entity] = JsonKVStore(self, entity)
        return self._stores[entity]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; a nested block is a savepoint."""
        with self.lock:
            saved = {name: dict(records) for name, records in self.data.items()}
            try:
                yield
            except BaseException:
                self.data.clear()
                self.data.update(saved)
                raise

    def create_schema(self) -> None:
        """Nothing to create."""

    def close(self) -> None:
        """Nothing to release."""

    def raw_dump(self) -> bytes:
        """Every byte the backend holds (the conformance suite checks that erasing
        personal data leaves none of it behind)."""
        return "\n".join(t for records in self.data.values() for t in records.values()).encode()


class _Collections(Mapping[str, list[Any]]):
    """Every collection's records by name, decoded when first asked for: what
    :func:`crmkit.testing.reference.matches` reads to answer ``F.related(...)`` filters."""

    def __init__(self, backend: JsonKVBackend) -> None:
        self._backend = backend
        self._decoded: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._decoded:
            self._decoded[name] = self._backend.store(ENTITY_TYPES[name])._all()
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(ENTITY_TYPES)

    def __len__(self) -> int:
        return len(ENTITY_TYPES)


class JsonKVStore(Generic[E]):
    """The records of one entity type."""

    def __init__(self, backend: JsonKVBackend, entity: type[E]) -> None:
        self.backend = backend
        self.entity = entity
        self.name = entity.collection

    @property
    def _records(self) -> dict[str, str]:
        return self.backend.data.setdefault(self.name, {})

    def _all(self) -> list[E]:
        return [decode(self.entity, text) for text in list(self._records.values())]

    # writes

    def insert(self, entities: Sequence[E]) -> None:
        """Store new records, all or none."""
        with self.backend.lock:
            records = self._records
            ids = [e.id or "" for e in entities]
            for id in ids:
                if id in records or ids.count(id) > 1:
                    raise ConflictError(f"{self.entity.__name__} {id!r} already exists")
            for id, entity in zip(ids, entities, strict=True):
                records[id] = encode(entity)

    def replace(self, entity: E, expected_version: int) -> None:
        """Overwrite the record if it is still at ``expected_version``."""
        with self.backend.lock:
            current = self.get(entity.id or "")
            if current.version != expected_version:
                raise ConflictError(
                    f"{self.entity.__name__} {entity.id!r} is at version {current.version}"
                )
            self._records[entity.id or ""] = encode(entity)

    def delete(self, id: str, expected_version: int | None = None) -> None:
        """Remove a record (only at ``expected_version`` when given)."""
        with self.backend.lock:
            current = self.get(id)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"{self.entity.__name__} {id!r} is at version {current.version}"
                )
            del self._records[id]

    # reads

    def get(self, id: str) -> E:
        """The record with ``id``; raises ``NotFound``."""
        text = self._records.get(id)
        if text is None:
            raise NotFound(self.name, id)
        return decode(self.entity, text)

    def get_many(self, ids: Sequence[str]) -> list[E]:
        """The records among ``ids`` that exist."""
        records = self._records
        return [decode(self.entity, records[i]) for i in ids if i in records]

    def find(self, query: Query) -> list[E]:
        """Matching records in order, windowed."""
        return reference.find(
            self._all(),
            query.where,
            order_by=list(query.order),
            limit=query.limit,
            offset=query.offset,
            related=_Collections(self.backend),
        )

    def iterate(self, query: Query, batch_size: int = 1000) -> Iterator[E]:
        """Matching records one by one."""
        yield from self.find(query)

    def count(self, where: Expr | None) -> int:
        """How many records match."""
        return reference.count(self._all(), where, related=_Collections(self.backend))

    def search(self, terms: Sequence[str], where: Expr | None, limit: int) -> list[tuple[E, float]]:
        """Ranked text search (articles): crmkit's BM25 index, built over the collection
        for each search, then ``where`` applied to the hits."""
        fields = TEXT_FIELDS.get(self.name)
        if fields is None:
            raise ValidationError("collection", self.name, "has no text index")
        records = {r.id or "": r for r in self._all()}
        index = TextIndex(fields)
        related = _Collections(self.backend)
        for id, record in records.items():
            index.add(id, record)
        scores = {
            id: score
            for id, score in index.scores(terms).items()
            if reference.matches(where, records[id], related=related)
        }
        return [(records[id], score) for id, score in rank(scores, limit)]

    def aggregate(
        self, where: Expr | None, group_by: Sequence[Group], metrics: Sequence[Metric]
    ) -> list[dict[str, Any]]:
        """One row per group, with each metric (see ``crmkit.protocols.Store.aggregate``)."""
        # crmkit's own grouping and metrics over records in hand (what the memory backend
        # uses too): a backend with a query language would translate them instead
        records = reference.find(self._all(), where, related=_Collections(self.backend))
        return aggregate_records(self.entity, records, group_by, metrics)


def main() -> None:
    """Use the backend like any other."""
    from crmkit import Contact
    from crmkit.query import F

    crm = crmkit.CRM(open_backend("jsonkv://"))
    crm.contacts.add_many(
        [
            Contact(first_name="Ada", last_name="Lovelace", emails=[" ADA@Example.com "]),
            Contact(first_name="Grace", last_name="Hopper", tags=["navy"]),
        ]
    )
    ada = crm.contacts.first(F.emails.contains("ada@example.com"))
    assert ada is not None
    print("stored as:", crm.backend.data["contacts"][ada.id or ""][:72], "...")  # type: ignore[attr-defined]
    print("found:", [c.name for c in crm.contacts.find(~F.tags.contains("navy"))])
    try:
        with crm.transaction():
            crm.contacts.add(Contact(first_name="Alan"))
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    print("contacts after a rolled-back transaction:", crm.contacts.count())


if __name__ == "__main__":
    main()
