"""Aggregates computed by the database: groups and metrics over one collection.

``repo.aggregate(where, group_by=[...], metrics=[...])`` returns one row (a ``dict``) per
group, with the group values and the metric values under their names (without groups:
exactly one row, for the whole selection). Every backend
computes the groups and metrics itself (SQL ``GROUP BY``, a MongoDB ``$group`` stage, the
memory backend's dictionaries) and agrees on the semantics:

- a group value is the field's stored value, or ``None`` when the record has none: records
  without a value form their own ``None`` group (last when rows are sorted);
- a :class:`Group` with ``trunc`` (``"day"``, ``"week"``, ``"month"``, ``"year"``) on a
  date or datetime field groups by the first day of the period (a :class:`datetime.date`,
  periods in UTC; weeks start on Monday, as in ISO 8601);
- a :class:`Group` on a list field (``"contact_ids"``, ``"tags"``) groups by each element:
  a record with two elements counts in both groups, a record with an empty list forms the
  ``None`` group; at most one group of a request may be a list field;
- ``count`` without a path counts records; with a path it counts records whose value is
  set; ``sum`` adds the set values exactly (``Decimal`` stays ``Decimal``, durations are
  ``timedelta``) and is zero when none is set; ``min``/``max`` are ``None`` when none is
  set; ``avg`` is ``sum / count`` of the set values (``Decimal`` for decimals, ``timedelta``
  for durations, ``float`` for whole numbers), ``None`` when none is set.

Custom fields defined through ``crm.schema`` group and measure like typed fields, by their
definition's type: ``custom.<name>`` of a text, enum, integer, decimal, boolean, date or
datetime field groups by its value (a ``Decimal``, ``datetime.date`` or aware
``datetime.datetime`` for those types), a multi-enum groups by each of its choices, like a
list field; integers and decimals can be summed and averaged (decimal sums are exact:
each stored number counts as its shortest decimal text), dates, datetimes, numbers and
text have a ``min``/``max``; dates and datetimes truncate like typed ones (a datetime by
its UTC date). An undefined key is refused: define the field first.

Money is aggregated per currency by grouping on ``amount.currency`` and summing
``amount.amount``; a sum without that group (or a filter on one currency) adds amounts
whatever their currency.

>>> from crmkit.aggregation import Group, Metric
>>> Metric.sum("amount.amount").name
'sum_amount.amount'
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Context, Decimal
from typing import Any, Final, Literal

import attrs

from crmkit.entities.schema import FieldInfo, field_info
from crmkit.errors import ValidationError

__all__ = [
    "CUSTOM_KINDS",
    "EXACT",
    "GROUPABLE",
    "SUMMABLE",
    "Group",
    "Metric",
    "Trunc",
    "aggregate_records",
    "check_spec",
    "custom_value",
    "field_getter",
    "finish_rows",
    "week_start",
]

#: The decimal context sums are computed in: enough digits for any sum of stored decimals
#: (Decimal128 holds 34), so that sums are exact on every backend, as PostgreSQL's numeric.
EXACT: Final = Context(prec=1000)

Trunc = Literal["day", "week", "month", "year"]
MetricOp = Literal["count", "sum", "min", "max", "avg"]

#: Field kinds a group may use.
GROUPABLE = frozenset({"text", "bool", "int", "date", "datetime", "decimal", "duration"})
#: Field kinds ``sum`` and ``avg`` accept.
SUMMABLE = frozenset({"int", "decimal", "duration"})
_ORDERABLE = frozenset({"text", "int", "decimal", "date", "datetime", "duration"})
_TRUNCS = ("day", "week", "month", "year")
#: The aggregate kind of each custom field type (:class:`crmkit.entities.FieldType` values).
CUSTOM_KINDS: Mapping[str, str] = {
    "text": "text",
    "enum": "text",
    "integer": "int",
    "decimal": "decimal",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
    "multi_enum": "text_list",
}
_OPS = ("count", "sum", "min", "max", "avg")


def _trunc(value: Any) -> Any:
    if value is not None and value not in _TRUNCS:
        raise ValidationError("group.trunc", value, f"is not one of: {', '.join(_TRUNCS)}")
    return value


@attrs.frozen
class Group:
    """Group by the value of ``path`` (``"owner_id"``, ``"amount.currency"``).

    ``trunc`` (``"day"``, ``"week"``, ``"month"``, ``"year"``) groups a date or datetime by
    period (weeks start on Monday, UTC); a list field groups by each of its elements;
    ``name`` is the key of the value in result rows (default: ``path``, or
    ``"path:trunc"``).
    """

    path: str
    trunc: Trunc | None = attrs.field(default=None, converter=_trunc)
    name: str = attrs.field()
    #: The kind of a ``custom.<name>`` path, set by :func:`check_spec` from the field's
    #: definition (backends read it instead of the entity schema); ``None`` otherwise.
    kind: str | None = attrs.field(default=None, kw_only=True)

    @name.default
    def _name(self) -> str:
        return self.path if self.trunc is None else f"{self.path}:{self.trunc}"


def _op(value: Any) -> Any:
    if value not in _OPS:
        raise ValidationError("metric.op", value, f"is not one of: {', '.join(_OPS)}")
    return value


@attrs.frozen
class Metric:
    """One aggregate of each group: ``count``, ``sum``, ``min``, ``max`` or ``avg`` of a path.

    Build with :meth:`count`, :meth:`sum`, :meth:`min`, :meth:`max`, :meth:`avg`; ``name``
    is the key of the value in result rows (default ``"op_path"``, or ``"count"``).
    """

    op: MetricOp = attrs.field(converter=_op)
    path: str | None = None
    name: str = attrs.field()
    #: The kind of a ``custom.<name>`` path, set by :func:`check_spec` (see :class:`Group`).
    kind: str | None = attrs.field(default=None, kw_only=True)

    @name.default
    def _name(self) -> str:
        return self.op if self.path is None else f"{self.op}_{self.path}"

    @classmethod
    def count(cls, path: str | None = None, *, name: str | None = None) -> Metric:
        """Records in the group (with ``path``: records whose ``path`` is set)."""
        return cls("count", path) if name is None else cls("count", path, name)

    @classmethod
    def sum(cls, path: str, *, name: str | None = None) -> Metric:
        """Exact sum of a number or duration field (zero when no value is set)."""
        return cls("sum", path) if name is None else cls("sum", path, name)

    @classmethod
    def min(cls, path: str, *, name: str | None = None) -> Metric:
        """Smallest set value (``None`` when none is set)."""
        return cls("min", path) if name is None else cls("min", path, name)

    @classmethod
    def max(cls, path: str, *, name: str | None = None) -> Metric:
        """Largest set value (``None`` when none is set)."""
        return cls("max", path) if name is None else cls("max", path, name)

    @classmethod
    def avg(cls, path: str, *, name: str | None = None) -> Metric:
        """Mean of the set values: ``sum / count`` (``None`` when none is set)."""
        return cls("avg", path) if name is None else cls("avg", path, name)


def _info(entity: type[Any], path: str, custom: Mapping[str, str], where: str) -> FieldInfo:
    """The field info of ``path``; a ``custom.<name>`` path takes its defined type's kind."""
    info = field_info(entity, path)
    if info.column != "custom" or info.key is None or info.kind != "any":
        return info
    type_ = custom.get(info.key)
    if type_ is None:
        raise ValidationError(
            where,
            path,
            "is not a defined custom field: define it with crm.schema.define_field "
            "to group or measure it",
        )
    return FieldInfo(path, CUSTOM_KINDS[type_], info.column, info.key)  # type: ignore[arg-type]


def check_spec(
    entity: type[Any],
    group_by: Sequence[Group | str],
    metrics: Sequence[Metric],
    custom: Mapping[str, str] | None = None,
) -> tuple[tuple[Group, ...], tuple[Metric, ...], dict[str, FieldInfo]]:
    """Validate a request; return groups, the metrics backends compute, and field infos.

    Backends are asked for ``count``/``sum``/``min``/``max`` only: ``avg`` becomes a sum
    and a count (named ``name + "/sum"`` and ``name + "/count"``) that :func:`finish_rows`
    divides, so every backend's average is the same exact division.
    ``custom`` maps the names of ``entity``'s defined custom fields to their types
    (``"integer"``, ``"multi_enum"``...): groups and metrics on those ``custom.<name>``
    paths come back with their ``kind`` set; other custom keys are refused.
    Raises ``ValidationError`` for an unknown path, a kind the operation does not apply to,
    or a name used twice.
    """
    defined: Mapping[str, str] = custom or {}
    groups = tuple(Group(g) if isinstance(g, str) else g for g in group_by)
    checked: list[Group] = []
    infos: dict[str, FieldInfo] = {}
    names: list[str] = []
    lists = 0
    for g in groups:
        if not isinstance(g, Group):
            raise ValidationError("group_by", g, "must be a Group or a field path")
        info = _info(entity, g.path, defined, "group_by")
        if info.kind == "text_list":
            lists += 1
            if lists > 1:
                raise ValidationError("group_by", g.path, "is a second list field (one at most)")
        elif info.kind not in GROUPABLE:
            raise ValidationError("group_by", g.path, f"cannot be grouped ({info.kind} field)")
        if g.trunc is not None and info.kind not in ("date", "datetime"):
            raise ValidationError("group_by", g.path, "is not a date or datetime (trunc)")
        is_custom = info.column == "custom"
        checked.append(attrs.evolve(g, kind=info.kind if is_custom else None))
        infos[g.path] = info
        names.append(g.name)
    wanted: list[Metric] = []
    for m in metrics:
        if not isinstance(m, Metric):
            raise ValidationError("metrics", m, "must be a Metric")
        names.append(m.name)
        if m.path is None:
            if m.op != "count":
                raise ValidationError("metrics", m.op, "needs a field path")
            wanted.append(m)
            continue
        info = _info(entity, m.path, defined, "metrics")
        infos[m.path] = info
        kind = info.kind if info.column == "custom" else None
        if m.op in ("sum", "avg") and info.kind not in SUMMABLE:
            raise ValidationError("metrics", m.path, f"cannot be summed ({info.kind} field)")
        if m.op in ("min", "max") and info.kind not in _ORDERABLE:
            raise ValidationError("metrics", m.path, f"has no order ({info.kind} field)")
        if m.op == "count" and info.kind not in GROUPABLE:
            raise ValidationError("metrics", m.path, f"cannot be counted ({info.kind} field)")
        if m.op == "avg":
            wanted.append(Metric("sum", m.path, f"{m.name}/sum", kind=kind))
            wanted.append(Metric("count", m.path, f"{m.name}/count", kind=kind))
        else:
            wanted.append(attrs.evolve(m, kind=kind))
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ValidationError("aggregate", name, "is used as a name twice")
    return tuple(checked), tuple(wanted), infos


def custom_value(kind: str, value: Any) -> Any:
    """A custom field's stored (JSON) value as a value of its aggregate ``kind``.

    Decimals are stored as binary floating point numbers: each counts as its shortest
    decimal text (``0.1`` is ``Decimal("0.1")``), which is what every backend sums.

    >>> custom_value("decimal", 19.99)
    Decimal('19.99')
    >>> custom_value("date", "2024-03-05")
    datetime.date(2024, 3, 5)
    """
    if value is None:
        return None
    if kind == "decimal":
        if isinstance(value, Decimal):
            return value
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    if kind == "datetime" and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def week_start(day: dt.date) -> dt.date:
    """The Monday starting the (ISO) week of ``day``: how ``trunc="week"`` groups.

    >>> week_start(dt.date(2024, 3, 10))
    datetime.date(2024, 3, 4)
    """
    return day - dt.timedelta(days=day.weekday())


def _zero(kind: str) -> Any:
    return {"int": 0, "decimal": Decimal(0), "duration": dt.timedelta(0)}[kind]


def _sort_key(row: Mapping[str, Any], groups: Sequence[Group]) -> tuple[Any, ...]:
    return tuple(((v := row.get(g.name)) is None, v) for g in groups)


def finish_rows(
    rows: Sequence[Mapping[str, Any]],
    groups: Sequence[Group],
    metrics: Sequence[Metric],
    infos: Mapping[str, FieldInfo],
) -> list[dict[str, Any]]:
    """Turn backend rows into result rows: zero empty sums, compute averages, sort by group
    values (``None`` last)."""
    out: list[dict[str, Any]] = []
    for raw in rows:
        row: dict[str, Any] = {g.name: _plain(raw.get(g.name)) for g in groups}
        for m in metrics:
            if m.op == "avg":
                assert m.path is not None
                total, n = raw.get(f"{m.name}/sum"), raw.get(f"{m.name}/count") or 0
                row[m.name] = None if not n or total is None else _divide(total, n)
            elif m.op == "sum":
                assert m.path is not None
                value = raw.get(m.name)
                row[m.name] = _zero(infos[m.path].kind) if value is None else value
            elif m.op == "count":
                row[m.name] = int(raw.get(m.name) or 0)
            else:
                row[m.name] = raw.get(m.name)
        out.append(row)
    out.sort(key=lambda r: _sort_key(r, groups))
    return out


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _divide(total: Any, n: int) -> Any:
    if isinstance(total, dt.timedelta):
        return dt.timedelta(milliseconds=round(total / dt.timedelta(milliseconds=1) / n))
    if isinstance(total, Decimal):
        return total / n
    return total / n


def aggregate_records(
    entity: type[Any],
    records: Iterable[Any],
    group_by: Sequence[Group],
    metrics: Sequence[Metric],
) -> list[dict[str, Any]]:
    """Groups and metrics computed in Python over ``records`` (already filtered): the
    semantics every backend's ``Store.aggregate`` implements in its database, and the
    implementation of backends that keep records in Python (memory, or a third party's).

    Rows are unordered and unfinished (see :func:`finish_rows`).
    """
    keys = [(g.name, _group_getter(entity, g)) for g in group_by]
    # a list field groups by each of its elements (an empty list: the None group)
    listed = [(g.kind or field_info(entity, g.path).kind) == "text_list" for g in group_by]
    values = [(m, None if m.path is None else _metric_getter(entity, m)) for m in metrics]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record, key in _group_keys(records, keys, listed):
        row = groups.get(key)
        if row is None:
            row = groups[key] = {name: v for (name, _), v in zip(keys, key, strict=True)}
            for m, _ in values:
                row[m.name] = 0 if m.op == "count" else None
        for m, get in values:
            value = None if get is None else get(record)
            if m.op == "count":
                row[m.name] += get is None or value is not None
            elif value is None:
                continue
            elif row[m.name] is None:
                row[m.name] = value
            elif m.op == "sum":
                total = row[m.name]
                row[m.name] = EXACT.add(total, value) if type(total) is Decimal else total + value
            elif m.op == "min":
                row[m.name] = min(row[m.name], value)
            else:
                row[m.name] = max(row[m.name], value)
    return list(groups.values())


def _group_keys(
    entities: Iterable[Any], keys: Sequence[tuple[str, Callable[[Any], Any]]], listed: list[bool]
) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """``(entity, group key)`` pairs: one per element combination of list-field groups."""
    if not any(listed):
        for entity in entities:
            yield entity, tuple(get(entity) for _, get in keys)
        return
    for entity in entities:
        options = [
            (tuple(get(entity)) or (None,)) if is_list else (get(entity),)
            for (_, get), is_list in zip(keys, listed, strict=True)
        ]
        for key in itertools.product(*options):
            yield entity, key


def _truncate(value: Any, trunc: str) -> Any:
    if value is None:
        return None
    day: dt.date = value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value
    if trunc == "week":
        return week_start(day)
    if trunc == "month":
        return day.replace(day=1)
    if trunc == "year":
        return day.replace(month=1, day=1)
    return day


def _custom_getter(entity: type[Any], path: str, kind: str) -> Callable[[Any], Any]:
    """A defined custom field's value in its aggregate kind (see ``Group.kind``)."""
    raw = field_getter(field_info(entity, path))
    if kind == "text_list":
        return lambda e: raw(e) or ()
    return lambda e: custom_value(kind, raw(e))


def _metric_getter(entity: type[Any], metric: Metric) -> Callable[[Any], Any]:
    assert metric.path is not None
    if metric.kind is not None:
        return _custom_getter(entity, metric.path, metric.kind)
    return field_getter(field_info(entity, metric.path))


def _group_getter(entity: type[Any], group: Group) -> Callable[[Any], Any]:
    if group.kind is not None:
        get = _custom_getter(entity, group.path, group.kind)
    else:
        get = field_getter(field_info(entity, group.path))
    trunc = group.trunc
    if trunc is None:
        return get
    return lambda e: _truncate(get(e), trunc)


def field_getter(info: FieldInfo) -> Callable[[Any], Any]:
    """A function reading the value at ``info``'s path from a record (``None`` if unset)."""
    column, key = info.column, info.key
    if key is None:
        return lambda e: getattr(e, column)
    if info.kind in ("any",) or info.column in ("custom", "external_ids", "contact_roles"):
        return lambda e: getattr(e, column).get(key)

    def nested(e: Any) -> Any:
        obj = getattr(e, column)
        return None if obj is None else getattr(obj, key)

    return nested
