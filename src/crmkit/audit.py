"""The audit trail: one entry per write of any record, in the write's transaction.

Every write through a repository (``add``, ``add_many``, ``update``, ``delete``, and so
every service, import, merge and user view built on them) appends an
:class:`~crmkit.entities.AuditEntry` to ``audit_log`` in the same transaction as the change:
the collection and id of the record, the action, the names of the changed fields
(``changed``), their old and new values (``changes``:
``{"field": {"old": <json>, "new": <json>}}``), the acting user and reason
(:meth:`crmkit.CRM.acting`) and the time. Deletes record every field the record had (``new``
is ``None``). Creates store the names of the fields they set but not their values: those
are the record's first version, which is stored already, so :meth:`AuditTrail.history`
fills them in when it reads the entry (each field's ``old`` in the next entry that changed
it, else the record's current value). A create costs one small entry instead of a second
copy of the record, which matters most to bulk writes and imports. Bulk writes insert their
entries in bulk, one statement per batch. The ``audit_log`` collection itself is not
audited.

Read it with ``crm.audit.history(record_id)`` (newest first) and
``crm.audit.field_history(record_id, "amount")`` (who changed this deal's amount, and when).
A user view (``crm.as_user(...).audit``) shows only the history of records the user can
read, without the fields hidden from them.

``crm.audit.enabled = False`` switches the trail off for this CRM (a bulk load whose
provenance is recorded elsewhere); it is on by default.
"""

from __future__ import annotations

import datetime as dt
import enum
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.dedupe.snapshot import without_paths
from crmkit.entities import AuditAction, AuditEntry, Entity, FrozenDict, MergeRecord
from crmkit.entities import _fields as f
from crmkit.entities._base import stamped
from crmkit.errors import NotFound, ValidationError
from crmkit.ids import new_id
from crmkit.query import Expr, F

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.permissions import UserView

__all__ = ["AuditTrail", "FieldChange", "ScopedAuditTrail", "json_safe"]

_STORAGE_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})
_UNSET = object()


@attrs.frozen
class _Shape:
    """The audited fields of an entity type: names, defaults (``_UNSET`` when required)
    and one C-level getter of all their values (this runs for every record written)."""

    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    values: Callable[[Any], tuple[Any, ...]]
    #: the names of the fields a record sets (differing from their defaults)
    set_names: Callable[[Any], tuple[str, ...]]

    @classmethod
    def of(cls, entity_type: type[Any]) -> _Shape:
        shape = _SHAPES.get(entity_type)
        if shape is None:
            names, defaults = [], []
            for a in attrs.fields(entity_type):
                if a.name in _STORAGE_FIELDS:
                    continue
                if a.default is attrs.NOTHING:
                    default: Any = _UNSET
                elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
                    default = a.default.factory()
                else:
                    default = a.default
                names.append(a.name)
                defaults.append(default)
            getter = operator.attrgetter(*names)
            values = getter if len(names) > 1 else lambda e: (getter(e),)
            shape = _SHAPES[entity_type] = cls(
                tuple(names), tuple(defaults), values, _set_names(names, defaults)
            )
        return shape


def _set_names(names: list[str], defaults: list[Any]) -> Callable[[Any], tuple[str, ...]]:
    """A function of a record returning the names of its fields that differ from their
    defaults. Generated, one test per field, because it runs for every record created:
    ``None`` and empty-container defaults are tested by identity and truth, others by
    equality."""
    env: dict[str, Any] = {}
    tests = []
    for i, (name, default) in enumerate(zip(names, defaults, strict=True)):
        if default is _UNSET:
            tests.append("True")
        elif default is None:
            tests.append(f"e.{name} is not None")
        elif isinstance(default, tuple | Mapping) and not default:
            tests.append(f"bool(e.{name})")  # tuples and FrozenDicts: empty is the default
        else:
            env[f"d{i}"] = default
            tests.append(f"(e.{name} is not d{i} and e.{name} != d{i})")
    items = "".join(f"        {n!r} if {t} else None,\n" for n, t in zip(names, tests, strict=True))
    source = f"def set_names(e):\n    return tuple(n for n in (\n{items}    ) if n)\n"
    exec(compile(source, "<crmkit audit set_names>", "exec"), env)
    function: Callable[[Any], tuple[str, ...]] = env["set_names"]
    return function


_SHAPES: dict[type[Any], _Shape] = {}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def json_safe(value: Any) -> Any:
    """``value`` as JSON data, in the frozen form entities hold (``FrozenDict`` objects,
    tuples for arrays): datetimes and dates as ISO text, decimals as text, enums as their
    value, durations as seconds, value objects and mappings as objects."""
    kind = type(value)
    if kind in _PLAIN:  # the common case first: this runs for every field of every write
        return value
    if kind is tuple:
        return tuple(v if type(v) in _PLAIN else json_safe(v) for v in value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return FrozenDict(
            {str(k): v if type(v) in _PLAIN else json_safe(v) for k, v in value.items()}
        )
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(json_safe(v) for v in value)
    if attrs.has(kind):
        return FrozenDict({a.name: json_safe(getattr(value, a.name)) for a in attrs.fields(kind)})
    return str(value)


def diff(new: Any | None, old: Any | None) -> dict[str, FrozenDict]:
    """The changed fields of a write as ``{"field": {"old": ..., "new": ...}}`` (JSON-safe).

    ``old`` is ``None`` for a create (fields differing from their defaults), ``new`` for a
    delete (every field the record had set).
    """
    if new is None and old is None:
        return {}
    out: dict[str, FrozenDict] = {}
    if new is not None and old is not None:
        shape = _Shape.of(type(new))
        for name, before, after in zip(
            shape.names, shape.values(old), shape.values(new), strict=True
        ):
            if not f.same(before, after):
                out[name] = FrozenDict({"old": json_safe(before), "new": json_safe(after)})
        return out
    record = new if new is not None else old
    for name in set_fields(record):
        safe = json_safe(getattr(record, name))
        out[name] = FrozenDict(
            {"old": None, "new": safe} if new is not None else {"old": safe, "new": None}
        )
    return out


def set_fields(record: Any) -> tuple[str, ...]:
    """The names of ``record``'s fields that differ from their defaults (storage fields
    excepted): what a create sets."""
    return _Shape.of(type(record)).set_names(record)


@attrs.frozen
class FieldChange:
    """One change of one field: when, by whom, why, and the old and new values."""

    at: dt.datetime
    actor_id: str | None
    reason: str | None
    action: AuditAction
    old: Any
    new: Any
    entry_id: str


_ENTRY_FIELDS = frozenset(a.name for a in attrs.fields(AuditEntry))
_NO_CHANGES = f.EMPTY


def _entry(**values: Any) -> AuditEntry:
    """An ``AuditEntry`` of values already in their stored form, without re-validating them.

    Falls back to the validating constructor if the entity's fields differ from ``values``.
    """
    if values.keys() != _ENTRY_FIELDS:
        return stamped(
            AuditEntry(**{k: v for k, v in values.items() if k not in _STORAGE_FIELDS}),
            id=values["id"],
            version=1,
            created_at=values["created_at"],
            updated_at=values["updated_at"],
        )
    entry = object.__new__(AuditEntry)
    for name, value in values.items():
        object.__setattr__(entry, name, value)
    return entry


class AuditTrail:
    """``crm.audit``: writes the audit entries of every write and reads them back."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm
        #: Whether writes append audit entries (default ``True``); switch off only for a bulk
        #: load whose provenance is recorded elsewhere.
        self.enabled = True

    def __repr__(self) -> str:
        return f"<AuditTrail of {self._crm!r}{'' if self.enabled else ' (off)'}>"

    def active(self, collection: str) -> bool:
        """Whether writes to ``collection`` are audited now."""
        return self.enabled and collection != AuditEntry.collection

    def record(
        self,
        collection: str,
        action: AuditAction,
        writes: Iterable[tuple[Any | None, Any | None]],
        *,
        at: dt.datetime | None = None,
    ) -> None:
        """Append one entry per ``(new, old)`` pair of records written to ``collection``
        (``old`` is ``None`` for a create, ``new`` for a delete), in one bulk insert.

        The entries' time is ``at`` when given (a record restored from a snapshot keeps its
        old ``updated_at``), else the new record's ``updated_at``, else the clock's. Called
        by repositories inside the write's transaction.
        """
        if not self.active(collection):
            return
        crm = self._crm
        now: dt.datetime | None = None  # asked of the clock only for deletes
        actor, reason = crm.acting_user, crm.acting_reason
        # checked once for the whole batch: every entry below is built from values that are
        # valid already (stored records, the clock), skipping attrs' per-field conversion,
        # which would otherwise cost more than the write being audited
        if actor is not None:
            actor = f.to_id(actor, "audit_entry.actor_id")
        if reason is not None:
            reason = f.to_text(reason, "audit_entry.reason", max_length=2000)
        entries = []
        creating = action is AuditAction.CREATE
        for new, old in writes:
            if creating:  # names only: the values are the stored record (see the module doc)
                changed, changes = set_fields(new), _NO_CHANGES
            else:
                payload = diff(new, old)
                changed, changes = tuple(payload), FrozenDict(payload)
            record = new if new is not None else old
            assert record is not None
            # the write's own time (``updated_at``) when it has one, so they agree exactly
            when = at or getattr(new, "updated_at", None)
            if when is None:  # a delete: now, but never before the record's last write
                now = now or crm.now()
                last = getattr(old, "updated_at", None)
                when = now if last is None or last <= now else last
            entries.append(
                _entry(
                    id=new_id(),
                    version=1,
                    created_at=when,
                    updated_at=when,
                    record_collection=collection,
                    record_id=record.id,
                    action=action,
                    changed=changed,
                    actor_id=actor,
                    at=when,
                    reason=reason,
                    changes=changes,
                )
            )
        if entries:
            crm.audit_log._store.insert(entries)

    # --- reads ----------------------------------------------------------------------------

    def history(
        self,
        record_id: str,
        *,
        collection: str | None = None,
        limit: int | None = 100,
        before: AuditEntry | dt.datetime | None = None,
    ) -> list[AuditEntry]:
        """The audit entries of one record, newest first.

        ``collection`` narrows to one collection (ids are unique across collections, so it
        is rarely needed); ``limit`` caps the count (``None``: all). ``before`` pages
        backwards: pass the last entry of the previous page to get the entries after it
        (entries of the same millisecond included), or a time to get those strictly older.
        """
        if not isinstance(record_id, str) or not record_id:
            raise ValidationError("record_id", record_id, "must be a record id")
        where: Expr = F.record_id == record_id
        if collection is not None:
            self._crm.repository(collection)  # raises for an unknown collection
            where = where & (F.record_collection == collection)
        if isinstance(before, AuditEntry):  # the order below: (at, id), newest first
            where = where & ((F.at < before.at) | ((F.at == before.at) & (F.id < before.id)))
        elif before is not None:
            where = where & (F.at < before)
        return self.filled(self._crm.audit_log.find(where, order_by=["-at", "-id"], limit=limit))

    def filled(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """``entries`` (any records, any order; kept) with the values of their creates
        filled in: a create stores only the names of the fields it set, and each value is
        the ``old`` value of the next entry of the record that changed the field, else the
        record's current value (``None`` if the record is gone). Entries read through
        :meth:`history` are filled already; this is for entries read from ``audit_log``
        directly.

        A field changed while the trail was switched off (``enabled = False``) shows the
        value after that change: the trail cannot know an unaudited write.
        """
        todo = [e for e in entries if _bare_create(e)]
        if not todo:
            return list(entries)
        log = self._crm.audit_log
        later: dict[tuple[str, str], list[AuditEntry]] = {}
        ids = sorted({e.record_id or "" for e in todo})
        for start in range(0, len(ids), 500):
            where = F.record_id.in_(ids[start : start + 500])
            for entry in log.find(where, order_by=["at", "id"]):
                later.setdefault((entry.record_collection or "", entry.record_id or ""), []).append(
                    entry
                )
        values: dict[str, dict[str, Any]] = {}  # by create entry id: the values found
        unresolved: set[tuple[str, str]] = set()  # records whose current values are needed
        for create in todo:
            key = (create.record_collection or "", create.record_id or "")
            found = values[create.id or ""] = {}
            position = (create.at, create.id or "")
            for entry in later.get(key, ()):
                if (entry.at, entry.id or "") <= position:
                    continue
                for name in entry.changed:
                    if name in create.changed and name not in found and name in entry.changes:
                        found[name] = entry.changes[name].get("old")
                if len(found) == len(create.changed):
                    break
            if len(found) < len(create.changed):
                unresolved.add(key)
        current = self._current(unresolved)
        out = []
        for entry in entries:
            filled = values.get(entry.id or "") if _bare_create(entry) else None
            if filled is None:
                out.append(entry)
                continue
            record = current.get((entry.record_collection or "", entry.record_id or ""))
            changes = {
                name: {
                    "old": None,
                    "new": filled[name]
                    if name in filled
                    else json_safe(getattr(record, name, None)),
                }
                for name in entry.changed
            }
            out.append(attrs.evolve(entry, changes=changes))
        return out

    def _current(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The stored records named by ``(collection, id)`` keys, where they still exist."""
        by_collection: dict[str, list[str]] = {}
        for collection, record_id in wanted:
            by_collection.setdefault(collection, []).append(record_id)
        out: dict[tuple[str, str], Any] = {}
        for collection, ids in by_collection.items():
            try:
                repo: Any = self._crm.repository(collection)
            except ValidationError:  # a collection no longer known: its values are gone
                continue
            for record in repo.get_many(ids):
                out[(collection, record.id or "")] = record
        return out

    def field_history(
        self, record_id: str, field: str, *, collection: str | None = None
    ) -> list[FieldChange]:
        """Every change of one field of a record, newest first: who changed it, when, from
        what to what ("who changed this deal's amount and when").

        ``field`` is a field name (``"amount"``) or a custom key (``"custom.tier"``).
        """
        top, _, key = field.partition(".")
        changes = []
        for entry in self.history(record_id, collection=collection, limit=None):
            if top not in entry.changed:
                continue
            change = entry.changes[top]
            old, new = _thaw(change.get("old")), _thaw(change.get("new"))
            if key:
                old = old.get(key) if isinstance(old, dict) else None
                new = new.get(key) if isinstance(new, dict) else None
                if old == new:
                    continue
            changes.append(
                FieldChange(
                    at=entry.at,
                    actor_id=entry.actor_id,
                    reason=entry.reason,
                    action=entry.action,
                    old=old,
                    new=new,
                    entry_id=entry.id or "",
                )
            )
        return changes


def _bare_create(entry: AuditEntry) -> bool:
    """A create entry as stored: the names of the fields it set, without their values."""
    return entry.action is AuditAction.CREATE and not entry.changes and bool(entry.changed)


def _thaw(value: Any) -> Any:
    from crmkit.entities._fields import thaw

    return thaw(value)


class ScopedAuditTrail:
    """``view.audit``: the audit history of the records one user can read, without the
    fields hidden from them."""

    def __init__(self, view: UserView) -> None:
        self._view = view

    def __repr__(self) -> str:
        return f"<ScopedAuditTrail of {self._view!r}>"

    def _check(self, record_id: str, collection: str | None) -> tuple[str, Entity]:
        """The record's collection, and the record as the user sees it, if the user can read
        it; else ``NotFound``."""
        trail = self._view.crm.audit
        if collection is None:
            latest = trail.history(record_id, limit=1)
            if not latest:
                raise NotFound("audit_log", record_id)
            collection = latest[0].record_collection
        try:
            return collection, self._view.repository(collection).get(record_id)
        except ValidationError:
            raise NotFound(collection, record_id) from None

    def history(
        self,
        record_id: str,
        *,
        collection: str | None = None,
        limit: int | None = 100,
        before: AuditEntry | dt.datetime | None = None,
    ) -> list[AuditEntry]:
        """Like :meth:`AuditTrail.history`, for a record this user can read (``NotFound``
        otherwise); hidden fields are left out of ``changed`` and ``changes``."""
        collection, record = self._check(record_id, collection)
        entries = self._view.crm.audit.history(
            record_id, collection=collection, limit=limit, before=before
        )
        hidden = self._view.grants.hidden_fields(collection)
        entries = [_mask(e, hidden) for e in entries] if hidden else entries
        masking = self._snapshot_mask(record)
        return [_mask_snapshots(e, masking) for e in entries] if masking else entries

    def _snapshot_mask(self, record: Entity) -> Callable[[Any], Any] | None:
        """For a merge record, what masks a snapshot value as the user may see it (see
        :meth:`crmkit.permissions.UserView.mask_snapshot`); ``None`` for other records and
        for an administrator, who sees everything."""
        if not isinstance(record, MergeRecord):
            return None
        view = self._view
        if view.user.admin and view.user.active:
            return None
        kept = record.record_collection
        return lambda snapshot: view.mask_snapshot(snapshot, kept)

    def field_history(
        self, record_id: str, field: str, *, collection: str | None = None
    ) -> list[FieldChange]:
        """Like :meth:`AuditTrail.field_history`; a hidden field raises
        ``PermissionDenied``, and the hidden parts of a field (``custom.salary`` of
        ``custom``) are left out of its values (a change of nothing else is left out)."""
        from crmkit.errors import PermissionDenied

        collection, record = self._check(record_id, collection)
        hidden = self._view.grants.hidden_fields(collection)
        top = field.partition(".")[0]
        if field in hidden or top in hidden:
            raise PermissionDenied(f"{collection}.{field} is hidden from this user")
        masking = self._snapshot_mask(record) if top == "snapshot" else None
        if masking and field != top:  # a part of a snapshot: its hidden fields are anywhere
            raise PermissionDenied(f"{collection}.{field} may hold fields hidden from this user")
        changes = self._view.crm.audit.field_history(record_id, field, collection=collection)
        if masking:
            changes = [attrs.evolve(c, old=masking(c.old), new=masking(c.new)) for c in changes]
        parts = frozenset(
            p[len(field) + 1 :].partition(".")[0] for p in hidden if p.startswith(f"{field}.")
        )
        if not parts:
            return changes
        out = []
        for change in changes:
            old, new = without_paths(change.old, parts), without_paths(change.new, parts)
            if old != new:
                out.append(attrs.evolve(change, old=old, new=new))
        return out


def _mask_snapshots(entry: AuditEntry, masking: Callable[[Any], Any]) -> AuditEntry:
    """A merge record's entry with its snapshot values masked."""
    changes = _thaw(entry.changes)
    change = changes.get("snapshot")
    if not isinstance(change, dict):
        return entry
    changes["snapshot"] = {side: masking(v) for side, v in change.items()}
    return attrs.evolve(entry, changes=changes)


def _mask(entry: AuditEntry, hidden: Sequence[str] | frozenset[str]) -> AuditEntry:
    """``entry`` without the hidden fields (``custom.salary`` drops one key of ``custom``)."""
    changes = _thaw(entry.changes)
    for path in hidden:
        top, _, key = path.partition(".")
        if top not in changes:
            continue
        if not key:
            del changes[top]
            continue
        for side in ("old", "new"):
            value = changes[top].get(side)
            if isinstance(value, dict):
                value.pop(key, None)
        if changes[top]["old"] == changes[top]["new"]:
            del changes[top]
    changed = tuple(n for n in entry.changed if n in changes)
    return attrs.evolve(entry, changed=changed, changes=changes)
