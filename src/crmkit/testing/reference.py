"""A brute-force reference evaluator of crmkit queries, for differential tests.

It answers ``find``/``count`` over a plain list of entities by looking at every record, with
the semantics written down in DESIGN.md and the :mod:`crmkit.query` docstring. It shares no
code with any backend (it never imports ``crmkit.backends``) and does not use
:func:`crmkit.query.bind`: it reads the expression exactly as the user built it. Being slow
and obvious is the point: when a backend and this module disagree, one of them is wrong and
this one is short enough to check by eye.

The rules, in one place:

- a missing or ``None`` value never matches a comparison (``!=`` included), ``in_``,
  ``contains``, ``icontains``, ``startswith``, ``between`` or ``within_last``;
- ``~expr`` is plain boolean negation, ``&`` / ``|`` are ``all`` / ``any``;
- text compares by Unicode code point and case-sensitively; ``icontains`` compares
  ``str.lower()`` of both sides;
- on a list field, ``contains(x)`` means "has the element ``x``", ``in_`` "some element is
  one of the values", ``icontains`` / ``startswith`` "some element does", ``exists``
  "the list is not empty";
- custom fields (``custom.<key>``) hold text, numbers, booleans or lists of those and compare
  only within one kind: text with text, numbers (int/float) with numbers, booleans with
  booleans. A list value matches ``contains`` (an element of the same kind), ``icontains`` /
  ``startswith`` (a text element) and ``exists`` (non-empty); comparisons and ``in_`` need a
  single value;
- ``F.related(name, expr)`` holds when some record of the related collection (given in
  ``related``, by collection name) is linked to the record as :data:`crmkit.query.RELATIONS`
  declares and matches ``expr`` (any linked record when ``expr`` is None); with an
  aggregate (``.count() >= 3``, ``.sum(path) > x``...) the linked records matching ``expr``
  are counted, or their set values at the path summed (zero for none) or their smallest /
  largest taken (none: the comparison does not hold), and the result compared;
- sorting puts ``None`` last in both directions and always ends with the id.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from crmkit import geo
from crmkit.aggregation import EXACT
from crmkit.query import (
    And,
    Cond,
    Expr,
    Not,
    Op,
    Or,
    Order,
    Related,
    RelatedAggregate,
    relation,
)

#: Records of other collections by collection name, for ``F.related`` nodes.
RelatedRecords = Mapping[str, Iterable[Any]]

__all__ = ["count", "find", "matches", "sort"]

_MISSING = None


def _column_kind(record: Any, column: str) -> str | None:
    for a in attrs.fields(type(record)):
        if a.name == column:
            kind: str | None = a.metadata.get("kind")
            return kind
    raise KeyError(column)


def _resolve(record: Any, path: str) -> tuple[Any, bool]:
    """The value at ``path`` and whether it is a custom (free-form) field."""
    column, _, rest = path.partition(".")
    value = getattr(record, column)
    custom = False
    if rest:
        kind = _column_kind(record, column)
        if kind == "mapping":
            custom = True
        if value is None:
            return _MISSING, custom
        if isinstance(value, Mapping):
            return value.get(rest), custom
        return getattr(value, rest), custom
    return value, custom


def _truncate_ms(value: dt.datetime) -> dt.datetime:
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float | Decimal):
        return "number"
    return type(value).__name__


def _plain(value: Any) -> Any:
    """Enum members compare as their values; datetimes at millisecond precision."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return _truncate_ms(value)
    return value


def _compare(op: Op, left: Any, right: Any) -> bool:
    if op is Op.EQ:
        return bool(left == right)
    if op is Op.NE:
        return bool(left != right)
    if op is Op.LT:
        return bool(left < right)
    if op is Op.LE:
        return bool(left <= right)
    if op is Op.GT:
        return bool(left > right)
    if op is Op.GE:
        return bool(left >= right)
    raise AssertionError(op)


_COMPARISONS = (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE)


def _scalar(op: Op, value: Any, arg: Any, now: dt.datetime) -> bool:
    """A declared (typed) single-valued field; ``value`` is not None."""
    value = _plain(value)
    if op in _COMPARISONS:
        return _compare(op, value, _plain(arg))
    if op is Op.BETWEEN:
        low, high = arg
        return bool(_plain(low) <= value <= _plain(high))
    if op is Op.WITHIN_LAST:
        return bool(value >= _truncate_ms(now - arg))
    if op is Op.IN:
        return any(value == _plain(a) for a in arg)
    if op is Op.CONTAINS:
        return bool(arg in value)
    if op is Op.ICONTAINS:
        return bool(arg.lower() in value.lower())
    if op is Op.STARTSWITH:
        return bool(value.startswith(arg))
    raise AssertionError(op)


def _element(op: Op, elements: tuple[Any, ...], arg: Any) -> bool:
    """A declared list field (emails, tags...)."""
    if op is Op.CONTAINS:
        return arg in elements
    if op is Op.IN:
        return any(e in arg for e in elements)
    if op is Op.ICONTAINS:
        return any(arg.lower() in e.lower() for e in elements)
    if op is Op.STARTSWITH:
        return any(e.startswith(arg) for e in elements)
    raise AssertionError(f"{op} on a list field")


def _same_kind_compare(op: Op, value: Any, arg: Any) -> bool:
    return _kind(value) == _kind(arg) and _compare(op, value, arg)


def _custom(op: Op, value: Any, arg: Any) -> bool:
    """A custom field: text, number, boolean or a list of those; one kind at a time."""
    if isinstance(value, tuple):
        if op is Op.CONTAINS:
            return any(_kind(e) == _kind(arg) and e == arg for e in value)
        if op in (Op.ICONTAINS, Op.STARTSWITH):
            return any(isinstance(e, str) and _scalar(op, e, arg, _NEVER) for e in value)
        return False
    if op in _COMPARISONS:
        return _same_kind_compare(op, value, arg)
    if op is Op.BETWEEN:
        low, high = arg
        return _same_kind_compare(Op.GE, value, low) and _same_kind_compare(Op.LE, value, high)
    if op is Op.IN:
        return any(_same_kind_compare(Op.EQ, value, a) for a in arg)
    if op in (Op.CONTAINS, Op.ICONTAINS, Op.STARTSWITH):
        return isinstance(value, str) and isinstance(arg, str) and _scalar(op, value, arg, _NEVER)
    raise AssertionError(f"{op} on a custom field")


_NEVER = dt.datetime(1, 1, 1, tzinfo=dt.UTC)


def _linked(record: Any, field: str, target: Any) -> bool:
    """``target``'s ``field`` (a reference or a list of them) points at ``record``."""
    value = getattr(target, field)
    if isinstance(value, tuple):
        return record.id in value
    return value is not None and value == record.id


def _aggregate_holds(aggregate: RelatedAggregate, records: Sequence[Any]) -> bool:
    """``count`` of the records, or ``sum`` / ``min`` / ``max`` of their set values at the
    path (the sum of none is zero, their min and max are missing), compared."""
    if aggregate.op == "count":
        result: Any = len(records)
    else:
        assert aggregate.path is not None
        values = [v for v in (_resolve(r, aggregate.path)[0] for r in records) if v is not None]
        if aggregate.op == "sum":
            zero = dt.timedelta(0) if isinstance(aggregate.value, dt.timedelta) else Decimal(0)
            result = zero
            for v in values:
                v = Decimal(v) if isinstance(v, int) else v
                result = EXACT.add(result, v) if isinstance(v, Decimal) else result + v
        elif not values:
            return False
        else:
            result = min(values) if aggregate.op == "min" else max(values)
    return _compare(aggregate.compare, result, aggregate.value)


def matches(
    expr: Expr | None,
    record: Any,
    *,
    now: dt.datetime | None = None,
    related: RelatedRecords | None = None,
) -> bool:
    """True when ``record`` satisfies ``expr`` (``None`` matches everything).

    ``now`` is the moment ``within_last`` counts back from (default: the current time);
    ``related`` holds the records ``F.related`` nodes look at, by collection name.
    """
    if expr is None:
        return True
    when = now if now is not None else dt.datetime.now(dt.UTC)
    if isinstance(expr, And):
        return all(matches(e, record, now=when, related=related) for e in expr.items)
    if isinstance(expr, Or):
        return any(matches(e, record, now=when, related=related) for e in expr.items)
    if isinstance(expr, Not):
        return not matches(expr.item, record, now=when, related=related)
    if isinstance(expr, Related):
        rel = relation(type(record).collection, expr.relation)
        others = list((related or {}).get(rel.target, ()))
        if rel.belongs:
            ref = getattr(record, rel.field)
            linked = [t for t in others if ref is not None and t.id == ref]
        else:
            linked = [t for t in others if _linked(record, rel.field, t)]
        hits = [t for t in linked if matches(expr.where, t, now=when, related=related)]
        if expr.aggregate is None:
            return bool(hits)
        return _aggregate_holds(expr.aggregate, hits)
    assert isinstance(expr, Cond), expr
    if expr.op is Op.WITHIN_KM:
        place, _ = _resolve(record, expr.field)
        lat, lon, km = expr.value
        return place is not None and geo.within(
            place.latitude, place.longitude, geo.unit_vector(lat, lon), geo.chord_limit(km)
        )
    value, custom = _resolve(record, expr.field)
    op, arg = expr.op, expr.value
    if op is Op.EXISTS:
        return value is not None and value != ()
    if value is None:
        return False
    if custom:
        return _custom(op, value, arg)
    if isinstance(value, tuple):
        return _element(op, value, arg)
    return _scalar(op, value, arg, when)


def _orders(order_by: str | Order | Sequence[str | Order] | None) -> list[Order]:
    if order_by is None:
        items: Sequence[str | Order] = ()
    elif isinstance(order_by, str | Order):
        items = (order_by,)
    else:
        items = order_by
    out = [i if isinstance(i, Order) else Order(i.lstrip("-+"), i.startswith("-")) for i in items]
    if not any(o.field == "id" for o in out):
        out.append(Order("id"))
    return out


def _cmp(a: Any, b: Any, orders: Sequence[Order]) -> int:
    for o in orders:
        x, _ = _resolve(a, o.field)
        y, _ = _resolve(b, o.field)
        x, y = _plain(x), _plain(y)
        if x == y:
            continue
        if x is None:
            return 1  # None last, whatever the direction
        if y is None:
            return -1
        less = x < y
        return (1 if less else -1) if o.desc else (-1 if less else 1)
    return 0


def sort(
    records: Iterable[Any], order_by: str | Order | Sequence[str | Order] | None = None
) -> list[Any]:
    """``records`` sorted as ``repository.find(order_by=...)`` must return them."""
    orders = _orders(order_by)
    key: Callable[[Any], Any] = functools.cmp_to_key(lambda a, b: _cmp(a, b, orders))
    return sorted(records, key=key)


def find(
    records: Iterable[Any],
    where: Expr | None = None,
    *,
    order_by: str | Order | Sequence[str | Order] | None = None,
    limit: int | None = None,
    offset: int = 0,
    now: dt.datetime | None = None,
    related: RelatedRecords | None = None,
) -> list[Any]:
    """What ``repository.find(where, order_by=..., limit=..., offset=...)`` must return."""
    when = now if now is not None else dt.datetime.now(dt.UTC)
    hits = [r for r in records if matches(where, r, now=when, related=related)]
    ordered = sort(hits, order_by)
    end = None if limit is None else offset + limit
    return ordered[offset:end]


def count(
    records: Iterable[Any],
    where: Expr | None = None,
    *,
    now: dt.datetime | None = None,
    related: RelatedRecords | None = None,
) -> int:
    """What ``repository.count(where)`` must return."""
    when = now if now is not None else dt.datetime.now(dt.UTC)
    return sum(1 for r in records if matches(where, r, now=when, related=related))
