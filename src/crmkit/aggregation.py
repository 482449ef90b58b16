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

Money is aggregated per currency by grouping on ``amount.currency`` and summing
``amount.amount``: amounts in different currencies are never added together.

>>> from crmkit.aggregation import Group, Metric
>>> Metric.sum("amount.amount").name
'sum_amount.amount'
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import attrs

from crmkit.entities.schema import FieldInfo, field_info
from crmkit.errors import ValidationError

__all__ = [
    "GROUPABLE",
    "SUMMABLE",
    "Group",
    "Metric",
    "Trunc",
    "check_spec",
    "finish_rows",
    "week_start",
]

Trunc = Literal["day", "week", "month", "year"]
MetricOp = Literal["count", "sum", "min", "max", "avg"]

#: Field kinds a group may use.
GROUPABLE = frozenset({"text", "bool", "int", "date", "datetime", "decimal", "duration"})
#: Field kinds ``sum`` and ``avg`` accept.
SUMMABLE = frozenset({"int", "decimal", "duration"})
_ORDERABLE = frozenset({"text", "int", "decimal", "date", "datetime", "duration"})
_TRUNCS = ("day", "week", "month", "year")
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


def check_spec(
    entity: type[Any], group_by: Sequence[Group | str], metrics: Sequence[Metric]
) -> tuple[tuple[Group, ...], tuple[Metric, ...], dict[str, FieldInfo]]:
    """Validate a request; return groups, the metrics backends compute, and field infos.

    Backends are asked for ``count``/``sum``/``min``/``max`` only: ``avg`` becomes a sum
    and a count (named ``name + "/sum"`` and ``name + "/count"``) that :func:`finish_rows`
    divides, so every backend's average is the same exact division.
    Raises ``ValidationError`` for an unknown path, a kind the operation does not apply to,
    or a name used twice.
    """
    groups = tuple(Group(g) if isinstance(g, str) else g for g in group_by)
    infos: dict[str, FieldInfo] = {}
    names: list[str] = []
    lists = 0
    for g in groups:
        if not isinstance(g, Group):
            raise ValidationError("group_by", g, "must be a Group or a field path")
        info = field_info(entity, g.path)
        if info.kind == "text_list":
            lists += 1
            if lists > 1:
                raise ValidationError("group_by", g.path, "is a second list field (one at most)")
        elif info.kind not in GROUPABLE:
            raise ValidationError("group_by", g.path, f"cannot be grouped ({info.kind} field)")
        if g.trunc is not None and info.kind not in ("date", "datetime"):
            raise ValidationError("group_by", g.path, "is not a date or datetime (trunc)")
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
        info = field_info(entity, m.path)
        infos[m.path] = info
        if m.op in ("sum", "avg") and info.kind not in SUMMABLE:
            raise ValidationError("metrics", m.path, f"cannot be summed ({info.kind} field)")
        if m.op in ("min", "max") and info.kind not in _ORDERABLE:
            raise ValidationError("metrics", m.path, f"has no order ({info.kind} field)")
        if m.op == "count" and info.kind not in GROUPABLE:
            raise ValidationError("metrics", m.path, f"cannot be counted ({info.kind} field)")
        if m.op == "avg":
            wanted.append(Metric("sum", m.path, f"{m.name}/sum"))
            wanted.append(Metric("count", m.path, f"{m.name}/count"))
        else:
            wanted.append(m)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ValidationError("aggregate", name, "is used as a name twice")
    return groups, tuple(wanted), infos


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
