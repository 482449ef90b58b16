"""crmkit's relational schema, and the mapping between entities and rows.

:func:`make_metadata` builds one table per entity type (``crm_contacts``, ``crm_deals`` ...)
with a typed column for every standard field, plus one child table per list field
(``crm_contacts_emails``: ``owner_id``, ``value``). A host application adds these tables to
its own Alembic migrations by importing the metadata (``metadata.tables``).

Layout of an entity table:

- scalar fields (text, numbers, dates, enums) are typed columns named like the field;
  text is ``TEXT`` (``COLLATE "C"`` on PostgreSQL, so comparison and sorting are by code
  point, like SQLite's default ``BINARY``);
- a value object (``address``, ``amount``) is flattened into ``address_city`` ... columns
  plus a ``has_address`` flag (an empty ``Address()`` is not the same as no address);
- list fields are stored twice: in order, as a JSON array on the row (what reads use, so
  reading N records is one query) and one row per element in the child table (what filters
  use: ``F.emails.contains(x)`` is an indexed lookup);
- free-form mappings (``custom``, ``external_ids``) are JSON (``JSONB`` on PostgreSQL).

Foreign keys: only the child tables have them (``owner_id`` -> parent, ``ON DELETE
CASCADE``): an element of a contact's email list belongs to that contact. References between
records (``account_id``, ``owner_id``, ``team_id``, ``pipeline_id``, ``stage`` ...) are
indexed but *not* constrained: crmkit lets a record point at an id that does not exist yet
or was deleted (imports arrive out of order; deleting an account must neither fail nor
silently rewrite or delete its contacts, which ``RESTRICT``, ``SET NULL`` or ``CASCADE``
would do, the last two without bumping any version). Dangling references are resolved by
services, exactly as on the memory and Mongo backends.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

from crmkit.entities import ENTITY_TYPES, Entity, FrozenDict
from crmkit.entities._fields import EMPTY, thaw, to_json
from crmkit.entities.schema import indexed_fields

__all__ = [
    "DEFAULT_PREFIX",
    "EntityLayout",
    "JsonType",
    "TextType",
    "child_table_name",
    "make_metadata",
    "metadata",
    "table_name",
]

#: Table-name prefix used unless the host chooses another one.
DEFAULT_PREFIX = "crm_"

#: Text compares and sorts by code point on every dialect: SQLite's default ``BINARY``
#: collation is byte order of UTF-8, which is code-point order; PostgreSQL's ``"C"`` too.
TextType: sa.types.TypeEngine[str] = sa.Text().with_variant(
    postgresql.TEXT(collation="C"), "postgresql"
)


def _integral_floats(value: Any, found: list[float]) -> Any:
    if isinstance(value, float) and abs(value) >= 1e16:
        found.append(value)
        return f"\x00{len(found) - 1}"
    if isinstance(value, dict):
        return {k: _integral_floats(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats(v, found) for v in value]
    return value


def jsonb_dumps(value: Any) -> str:
    """JSON text for a ``JSONB`` column that keeps floats floats.

    ``JSONB`` stores numbers as ``numeric``, which prints ``3.5e+16`` back as
    ``35000000000000000``: an int once parsed. Such floats are written positionally with a
    ``.0`` (exact, since every float is a dyadic rational) so they read back as the same float.
    """
    text = json.dumps(value, separators=(",", ":"))
    if "e+" not in text:
        return text
    found: list[float] = []
    text = json.dumps(_integral_floats(value, found), separators=(",", ":"))
    for i, number in enumerate(found):
        text = text.replace(f'"\\u0000{i}"', f"{int(number)}.0", 1)
    return text


class _Jsonb(TypeDecorator[Any]):
    """``JSONB`` whose values are serialized by :func:`jsonb_dumps`."""

    impl = postgresql.JSONB
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any]:
        def process(value: Any) -> Any:
            return None if value is None else jsonb_dumps(value)

        return process


#: JSON documents: ``JSON`` (text checked by SQLite's JSON1 functions) or ``JSONB``.
JsonType: sa.types.TypeEngine[Any] = sa.JSON().with_variant(_Jsonb(), "postgresql")

# SQLite has no decimal, timestamp or date types: decimals are stored as their exact text
# (a REAL would round money), datetimes as fixed-width ISO text in UTC
# ("2024-05-01 09:30:00.000+00:00", which sorts chronologically) and dates as ISO text.
_DECIMAL: sa.types.TypeEngine[Any] = sa.Numeric(asdecimal=True).with_variant(sa.Text(), "sqlite")
_DATETIME: sa.types.TypeEngine[Any] = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_DATE: sa.types.TypeEngine[Any] = sa.Date().with_variant(sa.Text(), "sqlite")

_SCALAR_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "text": TextType,
    "bool": sa.Boolean(),
    "int": sa.BigInteger(),
    "decimal": _DECIMAL,
    "datetime": _DATETIME,
    "date": _DATE,
    "duration": sa.BigInteger(),  # whole milliseconds
}


def table_name(prefix: str, entity: type[Entity]) -> str:
    """The name of ``entity``'s table: ``prefix`` + collection (``crm_contacts``)."""
    return f"{prefix}{entity.collection}"


def child_table_name(prefix: str, entity: type[Entity], field: str) -> str:
    """The name of the child table of a list field or a text mapping
    (``crm_contacts_emails``, ``crm_contacts_external_ids``)."""
    return f"{prefix}{entity.collection}_{field}"


def _check_prefix(prefix: str) -> None:
    from crmkit.errors import ValidationError

    if not isinstance(prefix, str) or not all(c.isalnum() or c == "_" for c in prefix):
        raise ValidationError("prefix", prefix, "must be letters, digits and '_' only")


def make_metadata(prefix: str = DEFAULT_PREFIX, schema: str | None = None) -> sa.MetaData:
    """Build crmkit's tables in a new :class:`sqlalchemy.MetaData`.

    ``prefix`` starts every table name (default ``"crm_"``; ``""`` for none) and ``schema``
    puts the tables in a PostgreSQL schema. Include the result in a host application's
    Alembic ``target_metadata`` to manage crmkit's tables with its own migrations::

        target_metadata = [app_metadata, crmkit.backends.sql.make_metadata("crm_")]

    Raises :class:`crmkit.ValidationError` for a prefix that is not a plain identifier.
    """
    _check_prefix(prefix)
    md = sa.MetaData(schema=schema)
    md.info["crmkit"] = {"prefix": prefix, "schema": schema}
    for entity in ENTITY_TYPES.values():
        _entity_tables(md, prefix, entity)
    return md


def _entity_tables(md: sa.MetaData, prefix: str, entity: type[Entity]) -> None:
    name = table_name(prefix, entity)
    columns: list[sa.Column[Any]] = []
    lists: list[str] = []
    for a in attrs.fields(entity):
        kind = a.metadata.get("kind")
        if a.name == "id":
            columns.append(sa.Column("id", TextType, primary_key=True))
        elif kind in _SCALAR_TYPES:
            nullable = a.name not in ("version", "created_at", "updated_at")
            columns.append(sa.Column(a.name, _SCALAR_TYPES[kind], nullable=nullable))
        elif kind == "text_list":
            columns.append(sa.Column(a.name, JsonType, nullable=False))
            if a.metadata.get("filterable", True):  # else: kept in the JSON column only
                lists.append(a.name)
        elif kind == "object":
            columns.append(sa.Column(f"has_{a.name}", sa.Boolean(), nullable=False))
            for sub in attrs.fields(a.metadata["type"]):
                columns.append(
                    sa.Column(f"{a.name}_{sub.name}", _SCALAR_TYPES[sub.metadata["kind"]])
                )
        elif kind in ("objects", "mapping", "text_mapping", "json"):
            columns.append(sa.Column(a.name, JsonType, nullable=False))
            if kind == "text_mapping":  # looked up by key and value (external_ids.shop)
                lists.append(a.name)
        else:  # pragma: no cover - a new field kind must be mapped here first
            raise TypeError(f"{entity.__name__}.{a.name}: no SQL mapping for kind {kind!r}")
    table = sa.Table(name, md, *columns, info={"crmkit_entity": entity.collection})
    for field in indexed_fields(entity):
        if field not in lists:
            sa.Index(f"ix_{name}_{field}", table.c[field])
    for field in lists:
        child = child_table_name(prefix, entity, field)
        parent = f"{md.schema}.{name}.id" if md.schema else f"{name}.id"
        sa.Table(
            child,
            md,
            sa.Column(
                "owner_id",
                TextType,
                sa.ForeignKey(parent, ondelete="CASCADE", name=f"fk_{child}_owner"),
                primary_key=True,
            ),
            sa.Column("value", TextType, primary_key=True),
            sa.Index(f"ix_{child}_value", "value", "owner_id"),
            info={"crmkit_list": (entity.collection, field)},
        )


#: crmkit's tables with the default prefix ``crm_`` and no PostgreSQL schema.
metadata = make_metadata()


# --- entities <-> rows ----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value object's field as JSON data (enums by value, decimals as text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if attrs.has(type(value)):  # a value object inside one (an order line's Money)
        return _object_to_json(value)
    return value


def _object_to_json(obj: Any) -> dict[str, Any]:
    return {a.name: _plain(getattr(obj, a.name)) for a in attrs.fields(type(obj))}


def _freeze_plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# Most stored lists and mappings are empty: their JSON text is recognised without parsing
# (reading a row decodes every JSON column, so this is on the hot path of every read).
_EMPTY_LIST = "[]"
_EMPTY_OBJECT = "{}"


def _load_mapping(value: Any) -> FrozenDict:
    if isinstance(value, str):
        if value == _EMPTY_OBJECT:
            return EMPTY
        value = json.loads(value)
    if not value:
        return EMPTY
    return FrozenDict({k: _freeze_plain(v) for k, v in value.items()})


#: Separates a key from its value in the child rows of a text mapping. Keys are plain
#: identifiers (``[A-Za-z0-9_-]``), so the first separator always ends the key.
KEY_SEPARATOR = "\x1f"


def keyed_value(key: str, value: str) -> str:
    """The child-table value of one entry of a text mapping: ``"shop\x1fC-1042"``, so that
    ``external_ids.shop == "C-1042"`` is one lookup in the child table's value index."""
    return f"{key}{KEY_SEPARATOR}{value}"


def _load_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        if value == _EMPTY_LIST:
            return ()
        value = json.loads(value)
    return tuple(value)


def _build(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """Make a stored (already validated) attrs instance without re-running converters."""
    obj = object.__new__(cls)
    setter = object.__setattr__
    for name, value in values.items():
        setter(obj, name, value)
    return obj


_MS = dt.timedelta(milliseconds=1)


class ScalarCodec:
    """Encode/decode one scalar kind for one dialect (SQLite stores some kinds as text)."""

    def __init__(self, kind: str, dialect: str, choices: type[enum.Enum] | None) -> None:
        sqlite = dialect == "sqlite"
        self.encode: Callable[[Any], Any] | None = None
        self.decode: Callable[[Any], Any] | None = None
        if choices is not None:
            members = {m.value: m for m in choices}
            self.encode = _enum_value
            self.decode = members.get
        elif kind == "decimal" and sqlite:
            self.encode = _str_or_none
            self.decode = _decimal_or_none
        elif kind == "datetime":
            self.encode = _iso_datetime if sqlite else None
            self.decode = _parse_datetime if sqlite else _utc_or_none
        elif kind == "date" and sqlite:
            self.encode = _iso_date
            self.decode = _parse_date
        elif kind == "duration":
            self.encode = _duration_ms
            self.decode = _ms_duration
        elif kind == "bool" and sqlite:
            self.decode = _bool_or_none

    def dump(self, value: Any) -> Any:
        """The column value of ``value``."""
        return value if self.encode is None else self.encode(value)


def _enum_value(v: Any) -> Any:
    # stored entities hold enum members; query values arrive as their plain text
    return v.value if isinstance(v, enum.Enum) else v


def _str_or_none(v: Any) -> Any:
    return None if v is None else str(v)


def _decimal_or_none(v: Any) -> Any:
    return None if v is None else Decimal(v)


# The last datetime written and its text: a bulk write stamps every record with the same
# datetime object (created_at = updated_at = now), so formatting it once per batch instead
# of twice per record saves most of the cost of turning a record into a row. One tuple,
# replaced whole, so threads never see a datetime paired with another one's text.
_last_iso: tuple[Any, str] = (None, "")


def _iso_datetime(v: Any) -> Any:
    global _last_iso
    if v is None:
        return None
    last = _last_iso
    if last[0] is v:
        return last[1]
    text: str = v.isoformat(" ", "milliseconds")
    _last_iso = (v, text)
    return text


def _parse_datetime(v: Any) -> Any:
    if v is None or isinstance(v, dt.datetime):
        return v
    return dt.datetime.fromisoformat(v)


def _utc_or_none(v: Any) -> Any:
    return None if v is None else v.astimezone(dt.UTC)


def _iso_date(v: Any) -> Any:
    return None if v is None else v.isoformat()


def _parse_date(v: Any) -> Any:
    if v is None or isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(v)


def _duration_ms(v: Any) -> Any:
    return None if v is None else v // _MS


def _ms_duration(v: Any) -> Any:
    return None if v is None else dt.timedelta(milliseconds=v)


def _bool_or_none(v: Any) -> Any:
    return None if v is None else bool(v)


def _dump_texts(values: tuple[str, ...]) -> str:
    # the hot path of every write: a list of text as JSON without json.dumps' overhead
    if not values:
        return "[]"
    return "[" + ",".join(map(_encode_string, values)) + "]"


_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def _load_json(value: Any, *, where: str) -> Any:
    if value == _EMPTY_OBJECT:
        return EMPTY
    return to_json(_loaded(value), where)


def _load_objects(value: Any, *, cls: type[Any]) -> tuple[Any, ...]:
    items: list[dict[str, Any]] = json.loads(value) if isinstance(value, str) else value
    return tuple(cls(**d) for d in items)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class EntityLayout:
    """How one entity type maps to its table (and child tables) on one dialect.

    ``to_values`` turns a stored entity into the tuple of its column values (in
    :attr:`columns` order, JSON already serialized) for driver-level inserts; ``from_row``
    rebuilds the entity from a row selected as :attr:`columns`. Both are the hot path of every
    write and read, so the per-field work is prepared once here.
    """

    def __init__(self, entity: type[Entity], md: sa.MetaData, dialect: str) -> None:
        prefix = md.info["crmkit"]["prefix"]
        schema = md.schema
        self.entity = entity
        self.dialect = dialect
        key = f"{schema}.{table_name(prefix, entity)}" if schema else table_name(prefix, entity)
        self.table: sa.Table = md.tables[key]
        #: the child table of each list field and each text mapping (``external_ids``)
        self.children: dict[str, sa.Table] = {}
        #: the text mappings among :attr:`children`: their rows hold :func:`keyed_value`
        self.keyed: set[str] = set()
        self.object_fields: frozenset[str] = frozenset(
            a.name for a in attrs.fields(entity) if a.metadata.get("kind") == "object"
        )
        self.codecs: dict[str, ScalarCodec] = {}
        dump_json = _dumps if dialect == "sqlite" else jsonb_dumps
        # to_values is generated: one tuple expression over the entity's attributes is several
        # times faster than a loop of per-field closures, and this runs for every row written
        env: dict[str, Any] = {"thaw": thaw, "texts": _dump_texts, "dumps": dump_json}
        parts: list[str] = []
        readers: list[Callable[[Sequence[Any]], Any]] = []
        names: list[str] = []
        columns: list[sa.Column[Any]] = []

        def column_index(name: str) -> int:
            columns.append(self.table.c[name])
            return len(columns) - 1

        def use(value: Any) -> str:
            env[f"v{len(env)}"] = value
            return f"v{len(env) - 1}"

        for a in attrs.fields(entity):
            kind = a.metadata.get("kind")
            names.append(a.name)
            get = f"e.{a.name}"
            if kind == "text_list":
                if a.metadata.get("filterable", True):
                    ckey = child_table_name(prefix, entity, a.name)
                    self.children[a.name] = md.tables[f"{schema}.{ckey}" if schema else ckey]
                parts.append(f"texts({get})")
                readers.append(_reader(column_index(a.name), _load_list))
            elif kind == "object":
                cls = a.metadata["type"]
                parts.append(f"{get} is not None")
                for sub in attrs.fields(cls):
                    codec = ScalarCodec(sub.metadata["kind"], dialect, sub.metadata.get("choices"))
                    self.codecs[f"{a.name}.{sub.name}"] = codec
                    value = f"{get}.{sub.name}"
                    if codec.encode is not None:
                        value = f"{use(codec.encode)}({value})"
                    parts.append(f"(None if {get} is None else {value})")
                readers.append(self._object_reader(a.name, cls, column_index))
            elif kind in ("mapping", "text_mapping", "json"):
                if kind == "text_mapping":
                    ckey = child_table_name(prefix, entity, a.name)
                    self.children[a.name] = md.tables[f"{schema}.{ckey}" if schema else ckey]
                    self.keyed.add(a.name)
                parts.append(f'(dumps(thaw({get})) if {get} else "{{}}")')
                if kind == "json":
                    where = f"{entity.__name__.lower()}.{a.name}"
                    loader: Callable[[Any], Any] = functools.partial(_load_json, where=where)
                else:
                    loader = _load_mapping
                readers.append(_reader(column_index(a.name), loader))
            elif kind == "objects":
                cls = a.metadata["type"]
                parts.append(
                    f'(dumps([{use(_object_to_json)}(o) for o in {get}]) if {get} else "[]")'
                )
                readers.append(
                    _reader(
                        column_index(a.name),
                        functools.partial(_load_objects, cls=cls),
                    )
                )
            else:
                codec = ScalarCodec(kind, dialect, a.metadata.get("choices"))
                self.codecs[a.name] = codec
                parts.append(get if codec.encode is None else f"{use(codec.encode)}({get})")
                readers.append(_reader(column_index(a.name), codec.decode))
        self.columns: tuple[sa.Column[Any], ...] = tuple(columns)
        self._readers = tuple(zip(names, readers, strict=True))
        source = f"def to_values(e):\n    return ({', '.join(parts)},)\n"
        exec(compile(source, f"<crmkit to_values {entity.__name__}>", "exec"), env)
        self.to_values: Callable[[Any], tuple[Any, ...]] = env["to_values"]

    def from_row(self, row: Sequence[Any]) -> Any:
        """The entity stored in ``row`` (selected as :attr:`columns`)."""
        obj = object.__new__(self.entity)
        setter = object.__setattr__
        for name, read in self._readers:
            setter(obj, name, read(row))
        return obj

    def child_values(self, field: str, entities: Sequence[Any]) -> list[tuple[str, str]]:
        """``(owner_id, value)`` rows of ``field``'s child table for ``entities``."""
        if field in self.keyed:
            return [
                (e.id, keyed_value(k, v)) for e in entities for k, v in getattr(e, field).items()
            ]
        return [(e.id, v) for e in entities for v in getattr(e, field)]

    def elements(self, field: str, value: Any) -> tuple[str, ...]:
        """The child-table values of ``field`` holding ``value`` (the field's value, or its
        column as read from a row)."""
        if field in self.keyed:
            mapping = value if isinstance(value, Mapping) else _load_mapping(value)
            return tuple(keyed_value(k, v) for k, v in mapping.items())
        return value if isinstance(value, tuple) else _load_list(value)

    def _object_reader(
        self, name: str, cls: type[Any], column_index: Callable[[str], int]
    ) -> Callable[[Sequence[Any]], Any]:
        flag = column_index(f"has_{name}")
        subs = []
        for sub in attrs.fields(cls):
            codec = self.codecs[f"{name}.{sub.name}"]
            subs.append((sub.name, column_index(f"{name}_{sub.name}"), codec.decode))

        def read(row: Sequence[Any]) -> Any:
            if not row[flag]:
                return None
            return _build(
                cls,
                {attr: row[i] if decode is None else decode(row[i]) for attr, i, decode in subs},
            )

        return read


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _reader(index: int, decode: Callable[[Any], Any] | None) -> Callable[[Sequence[Any]], Any]:
    if decode is None:
        return lambda row: row[index]
    return lambda row: decode(row[index])
