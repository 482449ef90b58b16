"""The in-memory backend (``memory://``): fast, complete, and the same behaviour as SQL/Mongo.

Entities are immutable, so the store keeps and returns the objects themselves: nothing a
caller holds can change stored state. Secondary indexes (references, emails, phones,
domains) make lookups dictionary hits instead of scans. Transactions keep an undo log;
nested transactions are savepoints (positions in that log).

Concurrency: writers are serialized by one lock held for the length of a transaction;
readers do not lock and may see the writes of another thread's open transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from crmkit import geo
from crmkit.aggregation import Group, aggregate_records, field_getter
from crmkit.entities import Entity
from crmkit.entities.schema import FieldInfo, field_info, indexed_fields
from crmkit.errors import ConflictError, NotFound, ValidationError
from crmkit.query import (
    And,
    Cond,
    Expr,
    Not,
    Op,
    Or,
    Order,
    Query,
    Related,
    related_entity,
    relation,
)
from crmkit.textsearch import TEXT_FIELDS, TextIndex, rank

if TYPE_CHECKING:
    from crmkit.aggregation import Metric

__all__ = ["MemoryBackend", "MemoryStore", "open_backend"]

E = TypeVar("E", bound=Entity)
Predicate = Callable[[Any], bool]


def open_backend(url: str, /, **options: Any) -> MemoryBackend:
    """Entry point for ``memory://``: a new, empty in-memory CRM store."""
    if options:
        raise ValidationError("options", sorted(options), "are not supported by memory://")
    return MemoryBackend()


class MemoryBackend:
    """Stores every collection in dictionaries, with real secondary indexes."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._stores: dict[type[Entity], MemoryStore[Any]] = {}
        self._local = threading.local()

    def store(self, entity: type[E]) -> MemoryStore[E]:
        """The store of ``entity``'s records (created on first use)."""
        store = self._stores.get(entity)
        if store is None:
            store = self._stores[entity] = MemoryStore(self, entity)
        return store

    # undo log: (store, id, previous entity or None when the record was new)
    def _log(self) -> list[tuple[MemoryStore[Any], str, Any]] | None:
        log: list[tuple[MemoryStore[Any], str, Any]] | None = getattr(self._local, "log", None)
        return log

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing scope; nested scopes are savepoints."""
        with self._lock:
            log = self._log()
            outer = log is None
            if log is None:
                log = self._local.log = []
            mark = len(log)
            try:
                yield
            except BaseException:
                while len(log) > mark:
                    store, id, previous = log.pop()
                    store._restore(id, previous)
                raise
            finally:
                if outer:
                    self._local.log = None

    @contextmanager
    def _write(self) -> Iterator[list[tuple[MemoryStore[Any], str, Any]] | None]:
        with self._lock:
            yield self._log()

    def _related(self, entity: type[Any], node: Related) -> Predicate:
        """The predicate of ``F.related(...)`` on ``entity``: the related records matching
        the inner filter are found once, then each record is a set lookup."""
        rel = relation(entity.collection, node.relation)
        if node.aggregate is not None:
            # the store's own aggregate, grouped by the link (each element of a list link)
            rows = self.store(related_entity(rel)).aggregate(
                node.where, [Group(rel.field)], [node.aggregate.metric()]
            )
            exclude, links = node.aggregate.links(rows, rel.field)
            if exclude:
                return lambda e: e.id not in links
            return lambda e: e.id in links
        matched = self.store(related_entity(rel))._candidates(node.where)
        if rel.belongs:
            ids = {t.id for t in matched}
            field = rel.field
            return lambda e: getattr(e, field) in ids
        keys: set[Any] = set()
        for t in matched:
            value = getattr(t, rel.field)
            if isinstance(value, tuple):
                keys.update(value)
            elif value is not None:
                keys.add(value)
        return lambda e: e.id in keys

    def create_schema(self) -> None:
        """Nothing to create: collections and indexes exist from the start."""

    def close(self) -> None:
        """Nothing to release."""


class _Rows(dict[str, Any]):
    """Records by id; a missing id raises ``NotFound`` straight from the dict lookup, so
    ``get`` is the C-level ``__getitem__`` with no Python frame on the hot path."""

    __slots__ = ("collection",)

    def __init__(self, collection: str) -> None:
        super().__init__()
        self.collection = collection

    def __missing__(self, id: str) -> Any:
        raise NotFound(self.collection, id)


class MemoryStore(Generic[E]):
    """Records of one entity type in a dict, plus one index per indexed field."""

    def __init__(self, backend: MemoryBackend, entity: type[E]) -> None:
        self._backend = backend
        self.entity = entity
        self._rows = _Rows(entity.collection)
        #: The record with ``id``; raises ``NotFound``.
        self.get: Callable[[str], E] = self._rows.__getitem__
        self._indexes: dict[str, dict[Any, set[str]]] = {
            name: {} for name in indexed_fields(entity)
        }
        self._list_fields = frozenset(n for n in self._indexes if field_info(entity, n).is_list)
        text_fields = TEXT_FIELDS.get(entity.collection)
        #: The ranked text index of a searchable collection (see :mod:`crmkit.textsearch`).
        self._text = TextIndex(text_fields) if text_fields else None

    # --- index maintenance ----------------------------------------------------------------

    def _index(self, entity: E) -> None:
        id = entity.id
        if self._text is not None:
            self._text.add(id or "", entity)
        for name, index in self._indexes.items():
            value = getattr(entity, name)
            if value is None:
                continue
            for item in value if name in self._list_fields else (value,):
                index.setdefault(item, set()).add(id)  # type: ignore[arg-type]

    def _unindex(self, entity: E) -> None:
        id = entity.id
        if self._text is not None:
            self._text.remove(id or "")
        for name, index in self._indexes.items():
            value = getattr(entity, name)
            if value is None:
                continue
            for item in value if name in self._list_fields else (value,):
                ids = index.get(item)
                if ids is not None:
                    ids.discard(id)
                    if not ids:
                        del index[item]

    def _restore(self, id: str, previous: E | None) -> None:
        current = self._rows.pop(id, None)
        if current is not None:
            self._unindex(current)
        if previous is not None:
            self._rows[id] = previous
            self._index(previous)

    # --- writes ---------------------------------------------------------------------------

    def insert(self, entities: Sequence[E]) -> None:
        """Store new records, all or none."""
        rows = self._rows
        with self._backend._write() as log:
            seen: set[str] = set()
            for entity in entities:
                if entity.id in rows or entity.id in seen:
                    raise ConflictError(f"{self.entity.__name__} {entity.id!r} already exists")
                seen.add(entity.id)  # type: ignore[arg-type]
            for entity in entities:
                rows[entity.id] = entity  # type: ignore[index]
                self._index(entity)
            if log is not None:
                log.extend((self, e.id or "", None) for e in entities)

    def replace(self, entity: E, expected_version: int) -> None:
        """Overwrite a record still at ``expected_version``."""
        assert entity.id is not None
        with self._backend._write() as log:
            current = self._rows.get(entity.id)
            if current is None:
                raise NotFound(self.entity.collection, entity.id)
            if current.version != expected_version:
                raise ConflictError(
                    f"{self.entity.__name__} {entity.id!r} is at version {current.version}, "
                    f"not {expected_version}"
                )
            self._unindex(current)
            self._rows[entity.id] = entity
            self._index(entity)
            if log is not None:
                log.append((self, entity.id, current))

    def delete(self, id: str, expected_version: int | None = None) -> None:
        """Remove a record (only at ``expected_version`` when given)."""
        with self._backend._write() as log:
            current = self._rows.get(id)
            if current is None:
                raise NotFound(self.entity.collection, id)
            if expected_version is not None and current.version != expected_version:
                raise ConflictError(
                    f"{self.entity.__name__} {id!r} is at version {current.version}, "
                    f"not {expected_version}"
                )
            del self._rows[id]
            self._unindex(current)
            if log is not None:
                log.append((self, id, current))

    # --- reads ----------------------------------------------------------------------------

    def search(self, terms: Sequence[str], where: Expr | None, limit: int) -> list[tuple[E, float]]:
        """Records containing any of ``terms``, ranked by BM25 (see :class:`TextIndex`)."""
        if self._text is None:
            raise ValidationError("collection", self.entity.collection, "has no text index")
        scores = self._text.scores(terms)
        if where is not None and scores:
            match = compile_predicate(where, self.entity, self._backend._related)
            rows = self._rows
            scores = {i: s for i, s in scores.items() if i in rows and match(rows[i])}
        return [(self._rows[i], score) for i, score in rank(scores, limit)]

    def get_many(self, ids: Sequence[str]) -> list[E]:
        """The records among ``ids`` that exist."""
        rows = self._rows
        return [rows[i] for i in ids if i in rows]

    def _candidates(self, where: Expr | None) -> list[E]:
        if where is None:
            return list(self._rows.values())
        ids = self._plan(where)
        rows = self._rows
        if ids is None:
            source: Any = rows.values()
        else:
            source = (rows[i] for i in sorted(ids) if i in rows)
        match = compile_predicate(where, self.entity, self._backend._related)
        return [e for e in source if match(e)]

    def _plan(self, expr: Expr) -> set[str] | None:
        """Ids that may match, from an index, or None when a scan is needed."""
        if isinstance(expr, Cond):
            if expr.field == "id" and expr.op is Op.EQ:
                return {expr.value}
            if expr.field == "id" and expr.op is Op.IN:
                return set(expr.value)
            index = self._indexes.get(expr.field)
            if index is None:
                return None
            is_list = expr.field in self._list_fields
            if (expr.op is Op.EQ and not is_list) or (expr.op is Op.CONTAINS and is_list):
                return index.get(expr.value, set())
            if expr.op is Op.IN:
                out: set[str] = set()
                for value in expr.value:
                    out |= index.get(value, set())
                return out
            return None
        if isinstance(expr, And):
            best: set[str] | None = None
            for item in expr.items:
                ids = self._plan(item)
                if ids is not None and (best is None or len(ids) < len(best)):
                    best = ids
            return best
        if isinstance(expr, Or):
            union: set[str] = set()
            for item in expr.items:
                ids = self._plan(item)
                if ids is None:
                    return None
                union |= ids
            return union
        return None

    def find(self, query: Query) -> list[E]:
        """Matching records, sorted and windowed."""
        rows = self._candidates(query.where)
        sort_rows(rows, query.order, self.entity)
        end = None if query.limit is None else query.offset + query.limit
        return rows[query.offset : end]

    def iterate(self, query: Query, batch_size: int = 1000) -> Iterator[E]:
        """Matching records one by one (the data is in memory already)."""
        yield from self.find(query)

    def count(self, where: Expr | None) -> int:
        """How many records match."""
        if where is None:
            return len(self._rows)
        return len(self._candidates(where))

    def aggregate(
        self, where: Expr | None, group_by: Sequence[Group], metrics: Sequence[Metric]
    ) -> list[dict[str, Any]]:
        """Groups and metrics of the matching records (see :meth:`Store.aggregate`)."""
        return aggregate_records(self.entity, self._candidates(where), group_by, metrics)


# --- filter evaluation --------------------------------------------------------------------


def _kind_of(value: Any) -> str | None:
    """The comparison class of a custom-field value (numbers compare with numbers only)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float) or value.__class__.__name__ == "Decimal":
        return "number"
    return None


_COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: lambda a, b: bool(a == b),
    Op.NE: lambda a, b: bool(a != b),
    Op.LT: lambda a, b: bool(a < b),
    Op.LE: lambda a, b: bool(a <= b),
    Op.GT: lambda a, b: bool(a > b),
    Op.GE: lambda a, b: bool(a >= b),
}


def compile_predicate(
    expr: Expr,
    entity: type[Any],
    related: Callable[[type[Any], Related], Predicate] | None = None,
) -> Predicate:
    """Turn a bound filter into a Python predicate with crmkit's semantics.

    ``related`` builds the predicate of an ``F.related(...)`` node (it needs the other
    collections: :meth:`MemoryBackend._related`); without it such a node is refused.
    """
    if isinstance(expr, And):
        parts = [compile_predicate(i, entity, related) for i in expr.items]
        return lambda e: all(p(e) for p in parts)
    if isinstance(expr, Or):
        parts = [compile_predicate(i, entity, related) for i in expr.items]
        return lambda e: any(p(e) for p in parts)
    if isinstance(expr, Not):
        inner = compile_predicate(expr.item, entity, related)
        return lambda e: not inner(e)
    if isinstance(expr, Related):
        if related is None:
            raise ValidationError("related", expr.relation, "cannot be used here")
        return related(entity, expr)
    assert isinstance(expr, Cond)
    if expr.op is Op.WITHIN_KM:
        return _within_km(entity, expr)
    info = field_info(entity, expr.field)
    get = field_getter(info)
    test = _condition(info, expr.op, expr.value)
    return lambda e: test(get(e))


def _within_km(entity: type[Any], expr: Cond) -> Predicate:
    """``F.address.within_km``: the shared great-circle test of :mod:`crmkit.geo`."""
    lat, lon, km = expr.value
    centre, limit = geo.unit_vector(lat, lon), geo.chord_limit(km)
    get = field_getter(field_info(entity, expr.field))

    def test(e: Any) -> bool:
        obj = get(e)
        return obj is not None and geo.within(obj.latitude, obj.longitude, centre, limit)

    return test


def _condition(info: FieldInfo, op: Op, value: Any) -> Predicate:
    if op is Op.EXISTS:
        return lambda v: v is not None and v != ()
    if info.kind == "any":
        return _any_condition(op, value)
    if info.is_list:
        if op is Op.CONTAINS:
            # "has the element": a substring of one element is not enough
            return lambda v: value in v
        element = _scalar_condition(op, value)
        return lambda v: any(element(x) for x in v)
    return _scalar_condition(op, value)


def _scalar_condition(op: Op, value: Any) -> Predicate:
    if op in _COMPARE:
        cmp = _COMPARE[op]
        return lambda v: v is not None and cmp(v, value)
    if op is Op.IN:
        values = frozenset(value)
        return lambda v: v is not None and v in values
    if op is Op.CONTAINS:
        return lambda v: isinstance(v, str) and value in v
    if op is Op.ICONTAINS:
        folded = value.lower()
        return lambda v: isinstance(v, str) and folded in v.lower()
    if op is Op.STARTSWITH:
        return lambda v: isinstance(v, str) and v.startswith(value)
    raise ValidationError("op", op, "is not supported by the memory backend")


def _any_condition(op: Op, value: Any) -> Predicate:
    """Custom fields: a value only compares with values of its own kind."""
    if op in _COMPARE or op is Op.IN:
        values = value if op is Op.IN else (value,)
        kinds = {_kind_of(x) for x in values}
        if op is Op.IN:
            return lambda v: (
                not isinstance(v, tuple)
                and _kind_of(v) in kinds
                and any(_kind_of(x) == _kind_of(v) and v == x for x in values)
            )
        cmp = _COMPARE[op]
        kind = _kind_of(value)
        return lambda v: (
            v is not None and not isinstance(v, tuple) and _kind_of(v) == kind and cmp(v, value)
        )
    if op is Op.CONTAINS:
        kind = _kind_of(value)

        def contains(v: Any) -> bool:
            if isinstance(v, tuple):
                return any(_kind_of(x) == kind and x == value for x in v)
            return isinstance(v, str) and isinstance(value, str) and value in v

        return contains
    scalar = _scalar_condition(op, value)
    return lambda v: any(scalar(x) for x in v) if isinstance(v, tuple) else scalar(v)


# --- ordering -----------------------------------------------------------------------------


def sort_rows(rows: list[Any], order: Sequence[Order], entity: type[Any]) -> None:
    """Sort in place: each key ascending or descending, ``None`` last either way."""
    for o in reversed(order):
        rows.sort(key=_sort_key(field_getter(field_info(entity, o.field)), o.desc), reverse=o.desc)


def _sort_key(get: Callable[[Any], Any], desc: bool) -> Callable[[Any], tuple[bool, Any]]:
    # (None-flag, value): the flag puts None after every value, in either direction
    if desc:
        return lambda e: ((v := get(e)) is not None, v)
    return lambda e: ((v := get(e)) is None, v)
