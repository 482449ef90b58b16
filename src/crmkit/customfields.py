"""Custom fields: typed, validated, indexable keys of an entity's ``custom`` mapping.

``crm.schema.define_field("contacts", "tier", "enum", choices=["gold", "silver"])``
declares ``contact.custom.tier``. Definitions are records (the ``field_definitions``
collection), so they survive reconnects and every process sharing the database sees them
(a CRM caches them: call :meth:`CustomFields.refresh` after another process changes them).

Every write of a record, whatever its path (``add``, ``add_many``, ``update``, imports,
merges, user views), is checked against its collection's definitions: a value of the wrong
type, a value outside the choices or a missing required value raises ``ValidationError``
naming ``contact.custom.<name>`` and nothing is written; a new record that does not set a
field gets its default, and an empty value (``""``, ``None``, an empty list) is no value.
Values are stored in plain JSON forms every backend compares alike:

============  ======================================  =====================================
type          accepted                                stored as
============  ======================================  =====================================
text          text                                    text
integer       whole numbers (or their text)           a whole number
decimal       numbers, ``Decimal`` (or their text)    a (binary floating point) number
boolean       ``True``/``False`` (or true/false,      a boolean
              yes/no, 1/0 as text)
date          ``datetime.date`` or ISO text           ISO text ``YYYY-MM-DD``
datetime      aware datetimes or ISO text with an     ISO text in UTC, milliseconds
              offset                                  (``2024-03-05T12:30:15.123+00:00``)
enum          one of the choices                      text
multi_enum    a list of choices                       a list of text
============  ======================================  =====================================

Dates and datetimes are stored as text of one fixed format, so they sort and compare in
time order; compare them with ``date``/``datetime`` objects or ISO text
(``F.custom.since >= "2024-01-01"``). Filters on a
defined field are checked the same way (``F.custom.tier == "bronze"`` raises when bronze is
not a choice).

``indexed=True`` creates an index on the key: an expression index on SQL (matching the
expression filters compile to, so SQLite and PostgreSQL use it) and a ``custom.<name>``
index on MongoDB; multi-enum fields are not indexed on SQL.

Removing a definition (:meth:`CustomFields.remove_field`) never touches stored values: the
key becomes undeclared (free-form) again. Defining it again checks the values stored
under the key first and refuses, naming the records, when some do not fit; values that fit
in another form (text ``"12"`` under an integer field) are rewritten in the field's form.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.entities import Entity, FieldDefinition, FieldType
from crmkit.entities import _fields as f
from crmkit.errors import BackendError, ValidationError
from crmkit.query import And, Cond, Expr, F, Not, Op, Or, Query

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = ["CustomFields", "FieldDefinition", "FieldType"]

_TRUE = frozenset({"true", "yes", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "0", "n", "f"})
_TEXT_OPS = (Op.ICONTAINS, Op.STARTSWITH)


def _entity_name(entity: type[Entity]) -> str:
    return entity.__name__.lower()


def convert(definition: FieldDefinition, value: Any, where: str) -> Any:
    """``value`` checked against ``definition`` and put in its stored form; raises
    ``ValidationError`` (at ``where``) for a value of the wrong type or outside the choices.
    """
    kind = definition.type
    if kind is FieldType.TEXT:
        if not isinstance(value, str):
            raise ValidationError(where, value, "must be text")
        return f.to_plain(value, where)
    if kind is FieldType.INTEGER:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValidationError(where, value, "must be a whole number") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(where, value, "must be a whole number")
        return f.to_plain(value, where)
    if kind is FieldType.DECIMAL:
        if isinstance(value, str):
            try:
                value = Decimal(value.strip())
            except InvalidOperation:
                raise ValidationError(where, value, "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValidationError(where, value, "must be a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError(where, value, "must be a finite number")
        return number
    if kind is FieldType.BOOLEAN:
        if isinstance(value, str):
            folded = value.strip().lower()
            if folded in _TRUE:
                return True
            if folded in _FALSE:
                return False
        if not isinstance(value, bool):
            raise ValidationError(where, value, "must be true or false")
        return value
    if kind is FieldType.DATE:
        day: dt.date = f.to_date(value, where, required=True)
        return day.isoformat()
    if kind is FieldType.DATETIME:
        when: dt.datetime = f.to_datetime(value, where, required=True)
        return when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    choices = definition.choices
    if kind is FieldType.ENUM:
        if not isinstance(value, str) or value not in choices:
            raise ValidationError(where, value, f"must be one of {', '.join(choices)}")
        return value
    # multi-enum
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(where, value, f"must be a list of {', '.join(choices)}")
    items = tuple(dict.fromkeys(value))
    for item in items:
        if not isinstance(item, str) or item not in choices:
            raise ValidationError(where, item, f"must be one of {', '.join(choices)}")
    return items


def _compared(definition: FieldDefinition, value: Any, where: str) -> Any:
    """A value a filter compares with a defined field, in the field's stored form. A date
    field also takes a datetime, as its day in UTC (what ``within_last()`` compares with)."""
    try:
        return convert(definition, value, where)
    except ValidationError:
        if definition.type is not FieldType.DATE:
            raise
        try:
            when: dt.datetime = f.to_datetime(value, where, required=True)
        except ValidationError:
            raise ValidationError(where, value, "is not a date (YYYY-MM-DD)") from None
        return when.date().isoformat()


def _empty(value: Any) -> bool:
    return value is None or value == () or value == [] or value == ""


class CustomFields:
    """``crm.schema``: define, list and remove custom fields; validates every write."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm
        self._lock = threading.RLock()
        self._cache: dict[str, dict[str, FieldDefinition]] | None = None

    def __repr__(self) -> str:
        return f"<CustomFields of {self._crm!r}>"

    # --- definitions ----------------------------------------------------------------------

    def _entity(self, entity: type[Entity] | str) -> type[Entity]:
        """The entity type of a collection name, an entity name or an entity type."""
        if isinstance(entity, str):
            repos = self._crm.repositories
            repo = repos.get(entity) or next(
                (r for r in repos.values() if _entity_name(r.entity) == entity), None
            )
            if repo is None:
                raise ValidationError("entity", entity, "is not a crmkit collection")
            entity_type: type[Entity] = repo.entity
        else:
            entity_type = self._crm.repository(entity).entity
        if "custom" not in attrs.fields_dict(entity_type):
            raise ValidationError("entity", entity, "has no custom fields")
        return entity_type

    def _definitions(self, *, reading: bool = False) -> dict[str, dict[str, FieldDefinition]]:
        """The definitions by collection and name, cached. A storage error propagates to a
        write (and nothing is cached), so that writes are never let through unchecked; a
        read (``reading``) goes on as if nothing were defined, so that a database from
        before custom fields (``upgrade_schema`` not run yet) can still be read."""
        cache = self._cache
        if cache is None:
            with self._lock:
                cache = {}
                # straight from the store: a repository read would ask the clock, and this
                # runs inside the first write's hooks
                store = self._crm.backend.store(FieldDefinition)
                try:
                    if reading and self._crm.in_transaction:
                        # in a savepoint: a failed statement would abort the whole
                        # transaction (PostgreSQL)
                        with self._crm.transaction():
                            stored = store.find(Query())
                    else:
                        stored = store.find(Query())
                except BackendError:
                    if reading:  # nothing cached: the next read or write asks again
                        return {}
                    raise
                for d in stored:
                    cache.setdefault(d.record_collection, {})[d.name] = d
                self._cache = cache
        return cache

    def sortable(self, entity: type[Entity]) -> frozenset[str]:
        """The ``custom.<name>`` paths of ``entity`` that can be sorted on (every defined
        field but multi-enums)."""
        cache = self._cache
        if cache is None:
            cache = self._definitions(reading=True)
        defs = cache.get(entity.collection)
        if not defs:
            return frozenset()
        return frozenset(
            f"custom.{n}" for n, d in defs.items() if d.type is not FieldType.MULTI_ENUM
        )

    def refresh(self) -> None:
        """Forget the cached definitions (read them again on the next write or query)."""
        self._cache = None

    def fields(self, entity: type[Entity] | str) -> list[FieldDefinition]:
        """The defined custom fields of ``entity`` (``"contacts"`` or ``Contact``), by name."""
        collection = self._entity(entity).collection
        return sorted(self._definitions().get(collection, {}).values(), key=lambda d: d.name)

    def read_types(self, entity: type[Entity]) -> dict[str, str]:
        """For a read (a report): the defined custom fields of ``entity``, name -> type;
        none when the definitions cannot be read (a database from before custom fields),
        where :meth:`fields` raises."""
        defs = self._definitions(reading=True).get(entity.collection, {})
        return {name: d.type.value for name, d in defs.items()}

    def get(self, entity: type[Entity] | str, name: str) -> FieldDefinition | None:
        """The definition of ``entity``'s custom field ``name``, or ``None``."""
        return self._definitions().get(self._entity(entity).collection, {}).get(name)

    def define_field(
        self,
        entity: type[Entity] | str,
        name: str,
        type: FieldType | str,
        *,
        choices: Sequence[str] | None = None,
        required: bool = False,
        default: Any = None,
        indexed: bool = False,
        label: str | None = None,
        sensitivity: str | None = None,
    ) -> FieldDefinition:
        """Declare (or redefine) the custom field ``name`` of ``entity``.

        ``type`` is one of :class:`~crmkit.entities.FieldType` (``"text"``, ``"integer"``,
        ``"decimal"``, ``"boolean"``, ``"date"``, ``"datetime"``, ``"enum"``,
        ``"multi_enum"``); enum types need ``choices``. ``default`` is given to new records
        that do not set the field; ``required`` refuses records without a value (new records
        get the default first). ``indexed`` creates a database index. ``sensitivity``
        (``"personal"``, ``"sensitive"``) marks personal data.

        Values already stored under the key must fit the definition: otherwise
        ``ValidationError`` names the records, and nothing is defined. Those that fit in
        another form are rewritten in the field's form in the same transaction (audited with
        the reason ``define_field``). ``required`` applies to later writes: a record stored
        without a value can still be updated (and gets the default). Returns the stored
        definition.
        """
        entity_type = self._entity(entity)
        collection = entity_type.collection
        f.check_key(name, "name")
        try:
            kind = FieldType(type)
        except ValueError:
            allowed = ", ".join(t.value for t in FieldType)
            raise ValidationError("type", type, f"must be one of {allowed}") from None
        if kind in (FieldType.ENUM, FieldType.MULTI_ENUM):
            if not choices or isinstance(choices, str):
                raise ValidationError("choices", choices, f"are required for a {kind} field")
            options: dict[str, Any] = {"choices": f.to_text_tuple(choices, "choices")}
        elif choices:
            raise ValidationError("choices", choices, f"do not apply to a {kind} field")
        else:
            options = {}
        for flag, value in (("required", required), ("indexed", indexed)):
            if not isinstance(value, bool):
                raise ValidationError(flag, value, "must be true or false")
        where = f"{_entity_name(entity_type)}.custom.{name}"
        draft = FieldDefinition(
            record_collection=collection,
            name=name,
            type=kind,
            required=required,
            indexed=indexed,
            label=label,
            sensitivity=sensitivity,
            options=options,
        )
        if default is not None:
            options["default"] = convert(draft, default, f"{where} default")
            draft = attrs.evolve(draft, options=options)
        recast = self._check_stored(entity_type, draft, where)
        repo = self._crm.repository(FieldDefinition)
        crm = self._crm
        # the cache follows: a definition's write refreshes it (definitions_written), and so
        # does a rollback (CRM.transaction)
        with (
            crm.transaction(),
            crm.acting(crm.acting_user, reason=crm.acting_reason or "define_field"),
        ):
            existing = repo.first((F.record_collection == collection) & (F.name == name))
            if existing is None:
                stored = repo.add(draft)
            else:
                stored = repo.update(
                    attrs.evolve(
                        draft,
                        id=existing.id,
                        version=existing.version,
                        created_at=existing.created_at,
                    )
                )
            # values stored in another form ("12" under an integer field) are rewritten in
            # the field's form, so that filters, sorts and sums see them
            records = crm.repository(entity_type)
            for id in recast:
                records.update(records.get(id))  # the write hook puts it in form
        if indexed:
            # an index left by the field's earlier definition (removed, or of another type)
            # may be of another type's expression
            retyped = existing is None or existing.type is not kind
            self._create_index(entity_type, stored, replace=retyped)
        return stored

    def _check_stored(
        self, entity: type[Entity], definition: FieldDefinition, where: str
    ) -> list[str]:
        """Refuse a definition the values stored under its key do not fit; return the ids
        of the records whose value it stores in another form (text ``"12"`` under an
        integer field)."""
        repo = self._crm.repository(entity)
        bad: list[str] = []
        recast: list[str] = []
        for record in repo.iterate(F(f"custom.{definition.name}").exists()):
            value = record.custom.get(definition.name)  # type: ignore[attr-defined]
            if _empty(value):
                recast.append(record.id or "")  # an empty value is dropped
                continue
            try:
                checked = convert(definition, value, where)
            except ValidationError:
                bad.append(record.id or "")
                continue
            if checked != value or type(checked) is not type(value):
                recast.append(record.id or "")
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise ValidationError(
                where,
                definition.type.value,
                f"does not fit the values stored in {len(bad)} record(s) ({shown}); "
                "fix or clear them first",
            )
        return recast

    def remove_field(self, entity: type[Entity] | str, name: str) -> bool:
        """Remove the definition of ``entity``'s custom field ``name``; stored values stay
        (the key becomes free-form again). Returns ``False`` when it was not defined.

        An index made for the field stays too (drop it with the database's tools).
        """
        collection = self._entity(entity).collection
        repo = self._crm.repository(FieldDefinition)
        with self._crm.transaction():  # the delete refreshes the cache (definitions_deleted)
            existing = repo.first((F.record_collection == collection) & (F.name == name))
            if existing is None:
                return False
            repo.delete(existing.id or "")
        return True

    # --- hooks ----------------------------------------------------------------------------

    def changed(self, stored: Any, previous: Any | None) -> bool:
        """After-write hook test: any write of a definition changes the cache."""
        return True

    def definitions_written(self, stored: Any, previous: Any | None) -> None:
        """After-write hook: a definition was written through the repository."""
        self.refresh()

    def definitions_deleted(self, previous: Any) -> None:
        """After-delete hook: a definition was deleted through the repository."""
        self.refresh()

    def validate(self, entity: Any, previous: Any | None) -> Any:
        """Write hook: check ``entity.custom`` against its collection's definitions (and give
        a record without a value the default). Raises ``ValidationError`` naming the field.

        An empty value (``None``, ``""``, an empty list) of a defined field is no value: the
        key is dropped. A new record without a value gets the default; an update never
        brings a cleared optional value back. ``required`` refuses a new record without a
        value and an update that clears one; a record stored before the field was required
        (without a value) can still be updated, and gets the default when there is one.
        Erasing a person (:meth:`crmkit.privacy.Privacy.erase`) may clear anything.
        """
        cache = self._cache
        if cache is None:
            cache = self._definitions()
        defs = cache.get(entity.collection)
        if not defs:
            return entity
        custom: Mapping[str, Any] = entity.custom
        values: dict[str, Any] | None = None
        prefix = _entity_name(type(entity))
        erasing = self._crm.privacy.erasing
        for name, definition in defs.items():
            value = custom.get(name)
            where = f"{prefix}.custom.{name}"
            if _empty(value):
                if name in custom:
                    values = dict(custom) if values is None else values
                    del values[name]
                if (erasing and previous is not None) or not (
                    previous is None or definition.required
                ):
                    continue  # an optional value cleared stays cleared
                had = previous is not None and not _empty(previous.custom.get(name))
                default = definition.default
                if default is not None and not had:
                    values = dict(custom) if values is None else values
                    values[name] = default
                elif definition.required and (previous is None or had):
                    raise ValidationError(where, value, "is required (must have a value)")
                continue
            checked = convert(definition, value, where)
            if checked != value or type(checked) is not type(value):
                values = dict(custom) if values is None else values
                values[name] = checked
        if values is None:
            return entity
        return attrs.evolve(entity, custom=values)

    def query(self, entity: type[Entity], expr: Expr) -> Expr:
        """Query hook: check (and convert to the stored form) the values compared with
        defined custom fields."""
        cache = self._cache
        if cache is None:
            cache = self._definitions(reading=True)
        defs = cache.get(entity.collection)
        if not defs:
            return expr
        return self._rewrite(entity, defs, expr)

    def _rewrite(self, entity: type[Entity], defs: dict[str, FieldDefinition], expr: Expr) -> Expr:
        if isinstance(expr, And):
            return And(tuple(self._rewrite(entity, defs, i) for i in expr.items))
        if isinstance(expr, Or):
            return Or(tuple(self._rewrite(entity, defs, i) for i in expr.items))
        if isinstance(expr, Not):
            return Not(self._rewrite(entity, defs, expr.item))
        if not isinstance(expr, Cond) or not expr.field.startswith("custom."):
            return expr
        definition = defs.get(expr.field[len("custom.") :])
        if definition is None or expr.op is Op.EXISTS:
            return expr
        where = f"{_entity_name(entity)}.{expr.field}"
        kind = definition.type
        if expr.op in _TEXT_OPS:
            if kind not in (FieldType.TEXT, FieldType.ENUM, FieldType.MULTI_ENUM):
                raise ValidationError(where, expr.value, f"{expr.op.value}() needs a text field")
            return expr
        # a list field's elements are compared one by one
        single = (
            attrs.evolve(definition, type=FieldType.ENUM)
            if kind is FieldType.MULTI_ENUM
            else definition
        )
        if kind is FieldType.MULTI_ENUM and expr.op in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE):
            # as for a list field of the entity (``tags``)
            raise ValidationError(
                where,
                expr.value,
                f"is a list: use contains(), in_() or exists(), not {expr.op.value}",
            )
        if expr.op is Op.IN:
            value: Any = tuple(_compared(single, v, where) for v in expr.value)
            if kind is FieldType.MULTI_ENUM and value:  # any of its elements is one of them
                return Or(tuple(Cond(expr.field, Op.CONTAINS, v) for v in value))
        else:
            value = _compared(single, expr.value, where)
        return Cond(expr.field, expr.op, value)

    # --- indexes --------------------------------------------------------------------------

    def _create_index(
        self, entity: type[Entity], definition: FieldDefinition, *, replace: bool = False
    ) -> None:
        """Index ``custom.<name>`` in the database (nothing on the memory backend);
        ``replace``: the field had another type, whose SQL index expression differs."""
        backend = self._crm.backend
        name = definition.name
        if backend.name == "sql":
            if definition.type is FieldType.MULTI_ENUM and not replace:
                return
            _create_sql_index(self._crm, entity, definition, replace=replace)
        elif backend.name == "mongo":
            from pymongo import ASCENDING

            collection = backend.store(entity).collection  # type: ignore[attr-defined]
            try:
                collection.create_index([(f"custom.{name}", ASCENDING)])
            except Exception as exc:  # pymongo's errors: the driver has no common base here
                raise BackendError(f"cannot index custom.{name}: {exc}") from exc


def _create_sql_index(
    crm: CRM, entity: type[Entity], definition: FieldDefinition, *, replace: bool = False
) -> None:
    import sqlalchemy as sa

    from crmkit.backends.sql.backend import SqlBackend, translate_errors
    from crmkit.backends.sql.compile import _Custom

    backend = crm.backend
    assert isinstance(backend, SqlBackend)
    store = backend.store(entity)
    kind = {
        FieldType.INTEGER: "number",
        FieldType.DECIMAL: "number",
        FieldType.BOOLEAN: "bool",
    }.get(definition.type, "text")
    table = store.table
    # an unqualified column: index expressions name the indexed table's columns bare
    column = sa.column("custom", table.c.custom.type)
    expr = store.compiler._custom_value(_Custom(column, definition.name), kind)
    with (
        translate_errors(f"index {table.name}.custom.{definition.name}"),
        backend.writing() as conn,
    ):
        sql = expr.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        prep = conn.dialect.identifier_preparer
        name = prep.quote(f"ix_{table.name}_custom_{definition.name}")
        if replace:  # an index of the old type's expression would never be used again
            where = f"{prep.quote_schema(table.schema)}." if table.schema else ""
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {where}{name}")
        if definition.type is FieldType.MULTI_ENUM:
            return
        # built as text rather than with sa.Index, which would attach the index to the
        # shared table metadata (and so to every later create_all)
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {name} ON {prep.format_table(table)} (({sql}))"
        )
