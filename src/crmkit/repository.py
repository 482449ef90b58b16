"""Repositories: the one place every write and read of a collection goes through.

A :class:`Repository` is the same for every entity type and every backend. It assigns ids,
versions and timestamps, runs the CRM's write hooks (normalization, and later rules),
checks and binds filters, and delegates storage to the backend's :class:`Store`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import attrs

from crmkit.aggregation import Group, Metric, check_spec, finish_rows
from crmkit.entities import AuditAction, Entity
from crmkit.entities._base import stamp_new, stamped
from crmkit.errors import BackendError, ConflictError, NotFound, ValidationError
from crmkit.events import Created, Deleted, Event, Updated
from crmkit.ids import new_id
from crmkit.protocols import Store, chunked
from crmkit.query import (
    Cursor,
    Expr,
    OrderSpec,
    Page,
    Query,
    Related,
    bind,
    check_window,
    map_related,
    parse_order,
    related_entity,
    related_nodes,
    relation,
)

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = ["AfterWriteHook", "BulkResult", "Rejected", "Repository", "Verbs"]

E = TypeVar("E", bound=Entity)


class WriteHook(Protocol):
    """Called on every entity before it is stored (normalization, business rules).

    Returns the entity to store (possibly changed) or raises ``ValidationError``;
    ``previous`` is the stored version on update, ``None`` on add.
    """

    def __call__(self, entity: Any, previous: Any | None, /) -> Any: ...


@attrs.frozen
class AfterWriteHook:
    """Work done inside a write's transaction once a record is stored (history records,
    derived updates of other records); ``previous`` is ``None`` for a new record.

    ``applies(stored, previous)`` says cheaply whether ``run(stored, previous)`` has work
    to do: a single ``add`` that no hook applies to needs no transaction around it.
    Raising in ``run`` rolls the write back. Hooks are registered per collection
    (:attr:`crmkit.CRM.after_write_hooks`).

    ``run_many(pairs)``, when given, does the work of many ``(stored, previous)`` pairs at
    once (bulk writes call it with every pair of a batch ``applies`` to, so that a history
    row per record costs one bulk insert rather than one statement each); without it bulk
    writes call ``run`` per pair.
    """

    applies: Callable[[Any, Any | None], bool]
    run: Callable[[Any, Any | None], None]
    run_many: Callable[[Sequence[tuple[Any, Any | None]]], None] | None = None

    def run_all(self, pairs: Sequence[tuple[Any, Any | None]]) -> None:
        """Run the hook for every pair it applies to (in bulk when it can)."""
        pairs = [pair for pair in pairs if self.applies(*pair)]
        if not pairs:
            return
        if self.run_many is not None:
            self.run_many(pairs)
        else:
            for stored, previous in pairs:
                self.run(stored, previous)


class QueryHook(Protocol):
    """Rewrites a bound filter before it reaches the backend (normalizing lookup values)."""

    def __call__(self, entity: type[Entity], expr: Expr, /) -> Expr: ...


class Context(Protocol):
    """What a repository needs from its CRM."""

    def now(self) -> dt.datetime: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def emit(self, event: Event) -> None: ...

    @property
    def listening(self) -> bool: ...

    @property
    def write_hooks(self) -> Sequence[WriteHook]: ...

    @property
    def query_hooks(self) -> Sequence[QueryHook]: ...

    @property
    def after_write_hooks(self) -> Mapping[str, Sequence[AfterWriteHook]]: ...

    @property
    def after_delete_hooks(self) -> Mapping[str, Sequence[Callable[[Any], None]]]: ...


class AuditRecorder(Protocol):
    """Appends the audit entries of writes (:class:`crmkit.audit.AuditTrail`)."""

    def active(self, collection: str) -> bool: ...

    def record(
        self,
        collection: str,
        action: AuditAction,
        writes: Iterable[tuple[Any | None, Any | None]],
    ) -> None: ...


@attrs.frozen
class Rejected:
    """A row ``add_many(..., on_error="collect")`` did not write, and why."""

    index: int
    item: Any
    errors: tuple[ValidationError, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        """Each problem as a readable sentence."""
        return tuple(str(e) for e in self.errors)


class BulkResult(Sequence[E]):
    """The records ``add_many`` wrote (a sequence), and the rows it rejected."""

    def __init__(self, added: list[E], rejected: list[Rejected]) -> None:
        self.added = added
        self.rejected = rejected

    def __len__(self) -> int:
        return len(self.added)

    def __getitem__(self, index: Any) -> Any:
        return self.added[index]

    def __repr__(self) -> str:
        return f"BulkResult(added={len(self.added)}, rejected={len(self.rejected)})"


class Repository(Generic[E]):
    """Add, get, update, delete and query the records of one entity type.

    Every method raises crmkit errors only: ``ValidationError`` for bad input (nothing is
    written), ``NotFound``, ``ConflictError`` for a stale version, ``BackendError`` when
    storage fails.
    """

    def __init__(self, context: Context, store: Store[E]) -> None:
        self._ctx = context
        self._store = store
        self.entity: type[E] = store.entity
        # the audit trail of every write (a context without one, e.g. a bare test double,
        # writes none)
        self._audit: AuditRecorder | None = getattr(context, "audit", None)
        # Reading one record needs nothing but the store: skip a Python frame on the
        # hottest read path (the method below documents it).
        self.get = store.get  # type: ignore[method-assign]

    def _operations_crm(self) -> CRM:
        """The CRM this repository belongs to (what verb mixins work in)."""
        return self._ctx  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<Repository {self.entity.collection}>"

    # --- writes ---------------------------------------------------------------------------

    def _build(self, entity: E | Mapping[str, Any]) -> E:
        """Accept an entity, or a mapping of its fields (rows from a file or a form)."""
        if isinstance(entity, Mapping):
            try:
                return self.entity(**entity)
            except TypeError as exc:
                raise ValidationError(
                    self.entity.__name__.lower(), dict(entity), f"has unknown fields ({exc})"
                ) from None
        self._check_type(entity)
        return entity

    def _check_type(self, entity: Any) -> None:
        if type(entity) is not self.entity:
            raise ValidationError(
                self.entity.collection,
                entity,
                f"must be a {self.entity.__name__}, not {type(entity).__name__}",
            )

    def _prepare(self, entity: E, previous: E | None) -> E:
        for hook in self._ctx.write_hooks:
            entity = hook(entity, previous)
        return entity

    def _new(self, entity: E | Mapping[str, Any], now: dt.datetime, keep_id: bool = False) -> E:
        # stamped before the hooks, so that they see the write's time (``updated_at``); an
        # entity built here from a mapping is private to this call and stamped in place
        built = self._build(entity)
        stamp = stamped if built is entity else stamp_new
        id = built.id if keep_id and built.id else new_id()  # a given id was validated
        ready = stamp(built, id=id, version=1, created_at=now, updated_at=now)
        entity = self._prepare(ready, None)
        if entity is ready:
            return ready
        return stamped(entity, id=ready.id or "", version=1, created_at=now, updated_at=now)

    def add(self, entity: E | Mapping[str, Any], *, keep_id: bool = False) -> E:
        """Store a new record and return it with ``id``, ``version=1`` and timestamps set.

        ``entity`` may also be a mapping of field values. Storage fields on it are ignored,
        except its ``id`` with ``keep_id=True`` (a record restored from an export keeps the
        id other records refer to it by; ``ConflictError`` if a record of the collection
        holds it already). Raises ``ValidationError``.
        """
        stored = self._new(entity, self._ctx.now(), keep_id)
        hooks = self._ctx.after_write_hooks.get(self.entity.collection)
        after = [h for h in hooks if h.applies(stored, None)] if hooks else None
        audit = self._audit
        if after or (audit is not None and audit.active(self.entity.collection)):
            with self._ctx.transaction():
                self._store.insert([stored])
                for hook in after or ():
                    hook.run(stored, None)
                if audit is not None:
                    audit.record(self.entity.collection, AuditAction.CREATE, [(stored, None)])
                self._emit_created(stored)
            return stored
        self._store.insert([stored])
        self._emit_created(stored)
        return stored

    def add_many(
        self,
        entities: Iterable[E | Mapping[str, Any]],
        *,
        batch_size: int = 1000,
        on_error: Literal["raise", "collect"] = "raise",
        keep_ids: bool = False,
    ) -> BulkResult[E]:
        """Store many new records, one backend round trip per batch.

        Items are entities or mappings of field values (rows from a file): a mapping that
        does not make a valid entity is a rejected row like any other invalid item. With
        ``keep_ids``, an item's ``id`` is kept (see :meth:`add`).

        With ``on_error="raise"`` (default) the first invalid record raises
        ``ValidationError`` and nothing at all is written. With ``"collect"`` every valid
        record is written and each invalid one is listed in ``result.rejected`` with its
        index and reasons; nothing is silently skipped. An item repeating the
        :attr:`~crmkit.entities.Entity.unique_together` values of an earlier item of the
        call is invalid. Either way a storage failure rolls the whole call back.
        """
        if on_error not in ("raise", "collect"):
            raise ValidationError("on_error", on_error, "must be 'raise' or 'collect'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a whole number >= 1")
        added: list[E] = []
        rejected: list[Rejected] = []
        now = self._ctx.now()
        index = 0
        unique = self.entity.unique_together
        seen: set[tuple[Any, ...]] = set()  # the unique_together values of earlier items
        with self._ctx.transaction():
            for batch in chunked(entities, batch_size):
                ready: list[E] = []
                for item in batch:
                    try:
                        new = self._new(item, now, keep_ids)
                        if unique:
                            self._check_unique(new, seen)
                        ready.append(new)
                    except ValidationError as exc:
                        if on_error == "raise":
                            raise exc from None
                        rejected.append(Rejected(index, item, tuple(exc.errors)))
                    index += 1
                if ready:
                    self._store.insert(ready)
                    added.extend(ready)
                    if self._audit is not None:
                        self._audit.record(
                            self.entity.collection, AuditAction.CREATE, [(s, None) for s in ready]
                        )
                    hooks = self._ctx.after_write_hooks.get(self.entity.collection, ())
                    if hooks:
                        pairs = [(stored, None) for stored in ready]
                        for hook in hooks:
                            hook.run_all(pairs)
            if self._ctx.listening:
                for stored in added:
                    self._emit_created(stored)
        return BulkResult(added, rejected)

    def _check_unique(self, new: E, seen: set[tuple[Any, ...]]) -> None:
        """Refuse ``new`` when it repeats the ``unique_together`` values of an earlier item
        of the same bulk write (their keys in ``seen``); else remember its keys."""
        unique = self.entity.unique_together
        keys = [(fields, *(getattr(new, f) for f in fields)) for fields in unique]
        for key in keys:
            if key in seen:
                raise ValidationError(
                    self.entity.__name__.lower(),
                    dict(zip(key[0], key[1:], strict=True)),
                    f"repeats the {' and '.join(key[0])} of an earlier record of this write",
                )
        seen.update(keys)

    def update(self, entity: E) -> E:
        """Store a changed record: ``entity`` must carry the version it was read at.

        Returns the stored record with ``version + 1``. Raises ``NotFound`` if the record is
        gone, ``ConflictError`` if someone else updated it since (nothing is written) and
        ``ValidationError`` for bad values.
        """
        self._check_type(entity)
        if entity.id is None:
            raise ValidationError(
                f"{self.entity.__name__.lower()}.id", None, "is required to update"
            )
        with self._ctx.transaction():
            previous = self._store.get(entity.id)
            if previous.version != entity.version:
                raise ConflictError(
                    f"{self.entity.__name__} {entity.id!r} is at version {previous.version}, "
                    f"the update was based on version {entity.version}"
                )
            assert previous.created_at is not None
            assert previous.id is not None
            id, version, created = previous.id, previous.version + 1, previous.created_at
            # after the record's last write even from a clock behind it (stepped back, another
            # server's): its history stays in order, and updated_at moves forward
            at, last = self._ctx.now(), previous.updated_at or created
            if at < last:
                at = last + dt.timedelta(milliseconds=1)
            # stamped before the hooks, so that they see the write's time (``updated_at``)
            ready = stamped(entity, id=id, version=version, created_at=created, updated_at=at)
            entity = self._prepare(ready, previous)
            stored = stamped(entity, id=id, version=version, created_at=created, updated_at=at)
            self._store.replace(stored, previous.version)
            for hook in self._ctx.after_write_hooks.get(self.entity.collection, ()):
                if hook.applies(stored, previous):
                    hook.run(stored, previous)
            if self._audit is not None:
                self._audit.record(self.entity.collection, AuditAction.UPDATE, [(stored, previous)])
            if self._ctx.listening:
                self._ctx.emit(
                    Updated(
                        collection=self.entity.collection,
                        entity_id=stored.id or "",
                        at=stored.updated_at or self._ctx.now(),
                        before=previous,
                        after=stored,
                    )
                )
        return stored

    def delete(self, id: str, *, version: int | None = None) -> None:
        """Delete a record (only if still at ``version``, when given), and in the same
        transaction what cannot exist without it (:attr:`crmkit.CRM.after_delete_hooks`: a
        contact's or an account's links).

        Raises ``NotFound`` or ``ConflictError``.
        """
        with self._ctx.transaction():
            previous = self._stored(id)
            self._store.delete(id, previous.version if version is None else version)
            if self._audit is not None:
                self._audit.record(self.entity.collection, AuditAction.DELETE, [(None, previous)])
            for hook in self._ctx.after_delete_hooks.get(self.entity.collection, ()):
                hook(previous)
            if self._ctx.listening:
                self._ctx.emit(
                    Deleted(
                        collection=self.entity.collection,
                        entity_id=id,
                        at=self._ctx.now(),
                        entity=previous,
                    )
                )

    def _emit_created(self, stored: E) -> None:
        if self._ctx.listening:
            self._ctx.emit(
                Created(
                    collection=self.entity.collection,
                    entity_id=stored.id or "",
                    at=stored.created_at or self._ctx.now(),
                    entity=stored,
                )
            )

    # --- reads ----------------------------------------------------------------------------

    def get(self, id: str) -> E:
        """Return the record with ``id``; raises ``NotFound``."""
        return self._store.get(id)

    def _stored(self, id: str) -> E:
        """The stored record ``id`` for a write; ``NotFound`` for any value that is no id
        (a dict-keyed store raises ``TypeError`` for a list). ``get`` skips this: it is the
        store's own, for speed."""
        try:
            return self._store.get(id)
        except TypeError:  # an unhashable id (a list) on a store keyed by a dict
            if isinstance(id, str):
                raise
            raise NotFound(self.entity.collection, id) from None

    def get_many(self, ids: Iterable[str]) -> list[E]:
        """Return the records with these ids, in the order given; unknown ids (and values
        that are not ids) are left out."""
        wanted = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
        found = {e.id: e for e in self._store.get_many(wanted)}
        return [found[i] for i in wanted if i in found]

    def _where(self, where: Expr | None, *, scope: Expr | None = None) -> Expr | None:
        """``where`` checked and bound, through the query hooks. ``scope`` is a filter made
        ready that way earlier and kept (a user view's scope): it is ANDed as it is."""
        ready = bind(where, self.entity, now=self._ctx.now())
        if ready is not None:
            ready = self._hooked(self.entity, ready)
        if scope is None:
            return ready
        return scope if ready is None else ready & scope

    def _hooked(self, entity: type[Entity], expr: Expr) -> Expr:
        """``expr`` (bound) through the query hooks of ``entity``, and the filter of each
        related-records condition through those of the related entity, at any depth."""
        for hook in self._ctx.query_hooks:
            expr = hook(entity, expr)
        if next(related_nodes(expr), None) is None:
            return expr

        def inner(node: Related) -> Expr:
            if node.where is None:
                return node
            target = related_entity(relation(entity.collection, node.relation))
            where = self._hooked(target, node.where)
            # an unchanged node is kept: compiled forms are found again by identity
            return node if where == node.where else Related(node.relation, where, node.aggregate)

        changed = map_related(expr, inner)
        assert changed is not None
        return changed

    def _custom_types(self) -> dict[str, str]:
        """The defined custom fields of this collection: name -> type (``crm.schema``)."""
        schema = getattr(self._ctx, "schema", None)
        if schema is None or "custom" not in attrs.fields_dict(self.entity):
            return {}
        types: dict[str, str] = schema.read_types(self.entity)
        return types

    def _sortable(self) -> frozenset[str]:
        """The custom paths with a declared scalar type (they can be sorted on)."""
        schema = getattr(self._ctx, "schema", None)
        return schema.sortable(self.entity) if schema is not None else frozenset()

    def _query(
        self,
        where: Expr | None,
        order_by: OrderSpec,
        limit: int | None,
        offset: int,
        *,
        scope: Expr | None = None,
    ) -> Query:
        check_window(limit, offset)
        return Query(
            where=self._where(where, scope=scope),
            order=parse_order(order_by, self.entity, sortable=self._sortable()),
            limit=limit,
            offset=offset,
        )

    def find(
        self,
        where: Expr | None = None,
        *,
        order_by: OrderSpec = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[E]:
        """Records matching ``where``, sorted by ``order_by`` (then id), windowed.

        ``order_by`` is a field name, ``"-field"`` for descending, ``F.field.desc()``, or a
        list of those. Raises ``ValidationError`` for an unknown field or a bad value.
        """
        return self._store.find(self._query(where, order_by, limit, offset))

    def first(self, where: Expr | None = None, *, order_by: OrderSpec = None) -> E | None:
        """The first record matching ``where`` in ``order_by``, or ``None``."""
        found = self.find(where, order_by=order_by, limit=1)
        return found[0] if found else None

    def page(
        self,
        where: Expr | None = None,
        *,
        order_by: OrderSpec = None,
        limit: int = 50,
        after: str | None = None,
    ) -> Page:
        """One page of records and the cursor of the next page (keyset paging).

        Pass ``page.next_cursor`` as ``after`` to continue; it is ``None`` on the last page.
        Unlike offsets, cursors neither skip nor repeat records when others are added.
        """
        return self._page(where, order_by, limit, after)

    def _page(
        self,
        where: Expr | None,
        order_by: OrderSpec,
        limit: int,
        after: str | None,
        *,
        scope: Expr | None = None,
    ) -> Page:
        """:meth:`page`, with ``scope`` (see :meth:`_where`) ANDed to ``where``."""
        order = parse_order(order_by, self.entity, sortable=self._sortable())
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", limit, "must be a whole number >= 1")
        bound = self._where(where, scope=scope)
        if after is not None:
            keyset = bind(Cursor.after(after, order), self.entity)
            assert keyset is not None
            bound = keyset if bound is None else bound & keyset
        rows = self._store.find(Query(where=bound, order=order, limit=limit + 1))
        more = len(rows) > limit
        items = rows[:limit]
        cursor = None
        if more:
            last = items[-1]
            cursor = Cursor.encode(order, [_path_value(last, o.field) for o in order])
        return Page(tuple(items), cursor)

    def iterate(
        self, where: Expr | None = None, *, order_by: OrderSpec = None, batch_size: int = 1000
    ) -> Iterator[E]:
        """Stream every matching record in bounded memory (batches of ``batch_size``)."""
        return self._iterate(where, order_by, batch_size)

    def _iterate(
        self,
        where: Expr | None,
        order_by: OrderSpec,
        batch_size: int,
        *,
        scope: Expr | None = None,
    ) -> Iterator[E]:
        """:meth:`iterate`, with ``scope`` (see :meth:`_where`) ANDed to ``where``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError("batch_size", batch_size, "must be a whole number >= 1")
        query = self._query(where, order_by, None, 0, scope=scope)
        return self._store.iterate(query, batch_size)

    def count(self, where: Expr | None = None) -> int:
        """How many records match ``where`` (all records when ``None``)."""
        return self._store.count(self._where(where))

    def exists(self, where: Expr | None = None) -> bool:
        """True when at least one record matches ``where``."""
        return bool(self.find(where, limit=1))

    def aggregate(
        self,
        where: Expr | None = None,
        *,
        group_by: Sequence[Group | str] = (),
        metrics: Sequence[Metric] = (Metric.count(),),
    ) -> list[dict[str, Any]]:
        """Group the records matching ``where`` and compute ``metrics``, in the database.

        Returns one ``dict`` per group (group names and metric names to values), sorted by
        the group values with ``None`` last; without ``group_by``, exactly one row. See
        :mod:`crmkit.aggregation` for the exact semantics. Raises ``ValidationError`` for an
        unknown path or an operation the field's kind does not support, ``BackendError``
        when the backend cannot aggregate.

        >>> import crmkit
        >>> crmkit.connect("memory://").deals.aggregate(group_by=["owner_id"])
        []
        """
        return self._aggregate(where, group_by, metrics)

    def _aggregate(
        self,
        where: Expr | None,
        group_by: Sequence[Group | str],
        metrics: Sequence[Metric],
        *,
        scope: Expr | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`aggregate`, with a bound ``scope`` ANDed in (see :meth:`_where`)."""
        groups, wanted, infos = check_spec(self.entity, group_by, metrics, self._custom_types())
        aggregate = getattr(self._store, "aggregate", None)
        if aggregate is None:
            raise BackendError(f"the {self.entity.collection} store cannot aggregate")
        rows = aggregate(self._where(where, scope=scope), groups, wanted)
        if not groups and not rows:
            rows = [{}]  # without groups there is always one row, the whole selection's
        return finish_rows(rows, groups, metrics, infos)


def _path_value(entity: Any, path: str) -> Any:
    value = entity
    for part in path.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part)
    return value


class Verbs(Generic[E]):
    """Base of the verb mixins (``crm.deals.move``, ``crm.tickets.breaching``...) shared by a
    CRM's repository and a user's view of it: the verbs call the host's own ``get``,
    ``update`` and ``find``, so a view's verbs are scoped, checked and audited."""

    if TYPE_CHECKING:

        def get(self, id: str) -> E: ...

        def update(self, entity: E) -> E: ...

        def find(
            self,
            where: Expr | None = None,
            *,
            order_by: Any = None,
            limit: int | None = None,
            offset: int = 0,
        ) -> list[E]: ...

    def _operations_crm(self) -> CRM:
        """The CRM the verbs work in (its services, clock and transactions)."""
        raise NotImplementedError

    def _default_actor(self) -> str | None:
        """Who a verb's ``by`` defaults to (a view: its user)."""
        return None

    def _source(self) -> Any:
        """The CRM or user view the verbs read and write through."""
        return self._operations_crm()
