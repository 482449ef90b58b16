"""The query language: filter expressions, ordering and paging.

Build filters with :data:`F`::

    from crmkit.query import F
    (F.account_id == acme.id) & F.emails.contains("ada@example.com")
    ~(F.title == "CEO") | F.created_at.within_last(timedelta(days=30))

Semantics (identical on every backend, checked by the conformance suite):

- a missing or ``None`` value never matches a comparison, ``!=`` included;
- ``~expr`` matches exactly the records ``expr`` does not match (two-valued logic);
- text comparison is case-sensitive; ``icontains`` compares lower-cased text (Unicode-aware);
- text orders by Unicode code point; ``None`` sorts last whatever the direction;
- on a list field (``emails``, ``tags``) ``contains(x)`` means "has the element ``x``",
  ``icontains``/``startswith`` match when any element does, ``in_`` when any element is
  one of the values, and ``exists()`` when the list is not empty;
- a custom field (``F.custom.tier``) compares only with values of the same kind (text with
  text, numbers with numbers, booleans with booleans);
- ``F.address.within_km(lat, lon, km)`` matches a record whose address has coordinates at
  most ``km`` kilometres (great circle, :mod:`crmkit.geo`) from the point; a record without
  coordinates never matches, so ``~`` of it matches those;
- ``F.related("interactions", expr)`` matches a record that has at least one related record
  (found through :data:`RELATIONS`) matching ``expr``; ``~F.related(...)`` one that has none;
- ``F.related("orders", expr).sum("total.amount") > 1000`` (also ``.count()``, ``.min()``,
  ``.max()`` and any comparison) compares an aggregate of the related records matching
  ``expr`` (on a to-many relation): a record without any has a count and a sum of zero
  (``count() < 1`` matches it) and no minimum or maximum (no comparison of those matches
  it); sums add the set values exactly and skip missing ones; ``~`` negates as usual. A
  money amount is summed whatever its currency: select one in ``expr``
  (``F.total.currency == "EUR"``), as :func:`crmkit.commerce.spent_more_than` does.

An expression converts to and from plain JSON-compatible data with :meth:`Expr.to_dict`
and :func:`from_dict`, so it can be stored (segments). :func:`bind` checks an expression
against an entity type and is what repositories call before handing it to a backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import math
import operator
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from crmkit.entities.schema import FieldInfo, field_info, queryable_fields
from crmkit.errors import ValidationError

if TYPE_CHECKING:
    from crmkit.entities import Entity

__all__ = [
    "RELATIONS",
    "And",
    "Cond",
    "Expr",
    "F",
    "Field",
    "Not",
    "Op",
    "Or",
    "Order",
    "Query",
    "Related",
    "RelatedAggregate",
    "RelatedMetric",
    "Relation",
    "bind",
    "from_dict",
    "map_related",
    "parse_order",
    "related_entity",
    "related_nodes",
    "relation",
    "reusable",
]


class Op(enum.StrEnum):
    """Condition operators. Backends implement all but ``between`` and ``within_last``,
    which :func:`bind` rewrites into ``ge``/``le`` conditions. ``within_km``'s value is
    ``(latitude, longitude, km)`` as floats."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    IN = "in"
    CONTAINS = "contains"
    ICONTAINS = "icontains"
    STARTSWITH = "startswith"
    EXISTS = "exists"
    BETWEEN = "between"
    WITHIN_LAST = "within_last"
    WITHIN_KM = "within_km"


#: The comparison operators, each with its Python operator (on SQLAlchemy columns the same
#: operators build SQL).
COMPARISONS: Mapping[Op, Callable[[Any, Any], Any]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}
_TEXT_OPS = frozenset({Op.CONTAINS, Op.ICONTAINS, Op.STARTSWITH})
_ORDERED_KINDS = frozenset({"text", "int", "decimal", "datetime", "date", "duration", "bool"})


class Expr:
    """A filter expression; combine with ``&``, ``|`` and ``~``."""

    __slots__ = ()

    def __and__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return And(_flatten(And, (self, other)))

    def __or__(self, other: Expr) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return Or(_flatten(Or, (self, other)))

    def __invert__(self) -> Expr:
        if isinstance(self, Not):
            return self.item
        return Not(self)

    def __bool__(self) -> bool:
        # ``a == b and c`` or ``if F.x == 1`` is always a mistake with expressions
        raise TypeError("a crmkit filter has no truth value: combine filters with & | ~")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data that :func:`from_dict` turns back into this expression."""
        raise NotImplementedError


def _flatten(kind: type[And] | type[Or], items: Iterable[Expr]) -> tuple[Expr, ...]:
    out: list[Expr] = []
    for item in items:
        out.extend(item.items if isinstance(item, kind) else (item,))
    return tuple(out)


@attrs.frozen(eq=True)
class Cond(Expr):
    """One condition: ``field`` (a dotted path), an operator and its value."""

    field: str
    op: Op
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        """``{"field": ..., "op": ..., "value": ...}`` with typed values tagged."""
        out: dict[str, Any] = {"field": self.field, "op": self.op.value}
        if self.op is not Op.EXISTS:
            out["value"] = _encode(self.value)
        return out


@attrs.frozen(eq=True)
class And(Expr):
    """All of ``items`` match."""

    items: tuple[Expr, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"and": [...]}``."""
        return {"and": [i.to_dict() for i in self.items]}


@attrs.frozen(eq=True)
class Or(Expr):
    """At least one of ``items`` matches."""

    items: tuple[Expr, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"or": [...]}``."""
        return {"or": [i.to_dict() for i in self.items]}


@attrs.frozen(eq=True)
class Not(Expr):
    """``item`` does not match (missing values included)."""

    item: Expr

    def to_dict(self) -> dict[str, Any]:
        """``{"not": {...}}``."""
        return {"not": self.item.to_dict()}


_AGGREGATE_OPS = ("count", "sum", "min", "max")
#: Field kinds a related aggregate (``sum``, ``min``, ``max``) may measure.
_AGGREGATE_KINDS = frozenset({"int", "decimal", "duration"})


@attrs.frozen(eq=True)
class RelatedAggregate:
    """``op`` (``"count"``, ``"sum"``, ``"min"``, ``"max"``) of ``path`` over the related
    records, compared with ``value`` by ``compare`` (one of :data:`COMPARISONS`).

    ``count`` has no path. Without related records the count and the sum are zero and the
    minimum and maximum are missing (so no comparison of them holds).
    """

    op: str
    path: str | None
    compare: Op
    value: Any

    def to_dict(self) -> dict[str, Any]:
        """``{"op": ..., "path": ..., "compare": ..., "value": ...}`` (no path for count)."""
        out: dict[str, Any] = {"op": self.op, "compare": self.compare.value}
        if self.path is not None:
            out["path"] = self.path
        out["value"] = _encode(self.value)
        return out

    def holds(self, result: Any) -> bool:
        """Whether an aggregate ``result`` (``None``: no value) satisfies the comparison."""
        if result is None and self.op in ("count", "sum"):
            result = self.zero()
        if result is None:
            return False
        return bool(COMPARISONS[self.compare](result, self.value))

    def zero(self) -> Any:
        """The count or sum of no records (``None`` for ``min``/``max``)."""
        if self.op == "count":
            return 0
        if self.op == "sum":
            return dt.timedelta(0) if isinstance(self.value, dt.timedelta) else 0
        return None

    def holds_empty(self) -> bool:
        """Whether a record without related records matches (``count() < 1`` does)."""
        return self.holds(self.zero())

    def metric(self) -> Any:
        """The :class:`crmkit.aggregation.Metric` computing the aggregate (named ``"value"``)."""
        from crmkit.aggregation import Metric

        return Metric(self.op, self.path, "value")

    def links(self, rows: Iterable[Mapping[str, Any]], key: str) -> tuple[bool, set[Any]]:
        """From :meth:`metric` rows grouped by the link field ``key``: ``(False, keys)``
        when the matching records are those whose id is in ``keys``, ``(True, keys)`` when
        they are those whose id is not (the comparison holds for no related records)."""
        empty = self.holds_empty()
        keys = {
            row[key]
            for row in rows
            if row.get(key) is not None and self.holds(row.get("value")) is not empty
        }
        return empty, keys


@attrs.frozen(eq=True)
class Related(Expr):
    """Some record related through ``relation`` (a name in :data:`RELATIONS`) matches
    ``where`` (``None``: any related record). ``~Related(...)`` means "has none".

    With ``aggregate``: an aggregate of the related records matching ``where`` satisfies
    a comparison instead (build it with :meth:`count`, :meth:`sum`, :meth:`min`,
    :meth:`max`: ``F.related("orders").sum("total.amount") > 1000``).
    """

    relation: str
    where: Expr | None = None
    aggregate: RelatedAggregate | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"related": name, "where": {...}, "aggregate": {...}}`` (no ``where`` for "any
        related record", no ``aggregate`` for "has one")."""
        out: dict[str, Any] = {"related": self.relation}
        if self.where is not None:
            out["where"] = self.where.to_dict()
        if self.aggregate is not None:
            out["aggregate"] = self.aggregate.to_dict()
        return out

    def count(self) -> RelatedMetric:
        """The number of related records matching ``where``: compare it
        (``F.related("orders").count() >= 3``)."""
        return self._metric("count", None)

    def sum(self, path: str) -> RelatedMetric:
        """The exact sum of a number or duration field of the related records matching
        ``where`` (zero without any; missing values are skipped). Amounts are added
        whatever their currency: select one in ``where``."""
        return self._metric("sum", path)

    def min(self, path: str) -> RelatedMetric:
        """The smallest set value of a number or duration field of the related records
        matching ``where`` (missing without any: no comparison holds)."""
        return self._metric("min", path)

    def max(self, path: str) -> RelatedMetric:
        """The largest set value of a number or duration field of the related records
        matching ``where`` (missing without any: no comparison holds)."""
        return self._metric("max", path)

    def _metric(self, op: str, path: str | None) -> RelatedMetric:
        if self.aggregate is not None:
            raise ValidationError("related", self.relation, "already has an aggregate condition")
        if op != "count":
            if not isinstance(path, str) or not path:
                raise ValidationError(f"related.{self.relation}", path, "must be a field path")
            target = _unique_target(self.relation)
            if target is not None:  # check the field now when the relation name tells its type
                try:
                    _aggregate_info(target, op, path)
                except ValidationError as exc:
                    raise exc.prefixed(f"related.{self.relation}") from None
        return RelatedMetric(self, op, path)


class RelatedMetric:
    """An aggregate of related records being compared (``F.related("orders").count()``):
    ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` make a :class:`Related` filter."""

    __slots__ = ("_node", "_op", "_path")
    __hash__ = None  # type: ignore[assignment]  # == builds a condition

    def __init__(self, node: Related, op: str, path: str | None) -> None:
        self._node = node
        self._op = op
        self._path = path

    def __repr__(self) -> str:
        path = "" if self._path is None else repr(self._path)
        return f"F.related({self._node.relation!r}, ...).{self._op}({path})"

    def _cond(self, compare: Op, value: Any) -> Related:
        node = self._node
        checked = _aggregate_value(f"related.{node.relation}", self._op, value)
        return Related(
            node.relation, node.where, RelatedAggregate(self._op, self._path, compare, checked)
        )

    def __eq__(self, value: object) -> Related:  # type: ignore[override]
        return self._cond(Op.EQ, value)

    def __ne__(self, value: object) -> Related:  # type: ignore[override]
        return self._cond(Op.NE, value)

    def __lt__(self, value: Any) -> Related:
        return self._cond(Op.LT, value)

    def __le__(self, value: Any) -> Related:
        return self._cond(Op.LE, value)

    def __gt__(self, value: Any) -> Related:
        return self._cond(Op.GT, value)

    def __ge__(self, value: Any) -> Related:
        return self._cond(Op.GE, value)


def _aggregate_value(where: str, op: str, value: Any) -> Any:
    """A comparison value of a related aggregate: a whole number for ``count``, a number or
    a duration otherwise (converted to the field's type by :func:`bind`)."""
    from crmkit.entities._fields import check_int64

    if op == "count":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(where, value, "count() compares with a whole number")
        check_int64(value, where)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(where, value, f"{op}() compares with a finite number")
        return Decimal(repr(value))
    if isinstance(value, bool) or not isinstance(value, int | Decimal | dt.timedelta):
        raise ValidationError(where, value, f"{op}() compares with a number or a duration")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValidationError(where, value, f"{op}() compares with a finite number")
    return value


def _unique_target(name: str) -> type[Entity] | None:
    """The entity type every relation called ``name`` leads to (``None``: unknown, or
    relations of that name lead to different types)."""
    targets = {r.target for rels in RELATIONS.values() for n, r in rels.items() if n == name}
    if len(targets) != 1:
        return None
    from crmkit.entities import ENTITY_TYPES

    return ENTITY_TYPES.get(targets.pop())


def _aggregate_info(entity: type[Entity], op: str, path: str) -> FieldInfo:
    """The field ``op`` measures on ``entity``; raises :class:`crmkit.ValidationError`."""
    info = field_info(entity, path)
    if info.kind not in _AGGREGATE_KINDS or info.is_list:
        raise ValidationError(f"{op}()", path, "needs a number or duration field")
    return info


@attrs.frozen
class Relation:
    """How records of ``source`` link to records of ``target`` (both collection names).

    ``belongs`` is False when ``field`` is on the target and holds the source record's id
    ("a contact's interactions": ``interactions.contact_ids``; scalar or list field), and
    True when ``field`` is on the source and holds the target's id ("a contact's account":
    ``contacts.account_id``).
    """

    source: str
    name: str
    target: str
    field: str
    belongs: bool = False


def _relations(*items: Relation) -> dict[str, dict[str, Relation]]:
    out: dict[str, dict[str, Relation]] = {}
    for r in items:
        out.setdefault(r.source, {})[r.name] = r
    return out


#: The relations ``F.related`` can follow, by source collection and relation name.
RELATIONS: Mapping[str, Mapping[str, Relation]] = _relations(
    Relation("contacts", "account", "accounts", "account_id", belongs=True),
    Relation("contacts", "interactions", "interactions", "contact_ids"),
    Relation("contacts", "deals", "deals", "contact_ids"),
    Relation("contacts", "tickets", "tickets", "contact_id"),
    Relation("contacts", "tasks", "tasks", "contact_id"),
    Relation("accounts", "parent", "accounts", "parent_id", belongs=True),
    Relation("accounts", "children", "accounts", "parent_id"),
    Relation("accounts", "contacts", "contacts", "account_id"),
    Relation("accounts", "interactions", "interactions", "account_id"),
    Relation("accounts", "deals", "deals", "account_id"),
    Relation("accounts", "tickets", "tickets", "account_id"),
    Relation("accounts", "tasks", "tasks", "account_id"),
    Relation("deals", "account", "accounts", "account_id", belongs=True),
    Relation("deals", "interactions", "interactions", "deal_id"),
    Relation("deals", "tasks", "tasks", "deal_id"),
    Relation("tickets", "contact", "contacts", "contact_id", belongs=True),
    Relation("tickets", "account", "accounts", "account_id", belongs=True),
    Relation("tickets", "interactions", "interactions", "ticket_id"),
    Relation("interactions", "account", "accounts", "account_id", belongs=True),
    Relation("interactions", "deal", "deals", "deal_id", belongs=True),
    Relation("interactions", "ticket", "tickets", "ticket_id", belongs=True),
    Relation("tasks", "contact", "contacts", "contact_id", belongs=True),
    Relation("tasks", "account", "accounts", "account_id", belongs=True),
    Relation("tasks", "deal", "deals", "deal_id", belongs=True),
    Relation("tasks", "ticket", "tickets", "ticket_id", belongs=True),
    Relation("contacts", "orders", "orders", "contact_id"),
    Relation("accounts", "orders", "orders", "account_id"),
    Relation("orders", "contact", "contacts", "contact_id", belongs=True),
    Relation("orders", "account", "accounts", "account_id", belongs=True),
    Relation("account_contacts", "contact", "contacts", "contact_id", belongs=True),
    Relation("account_contacts", "account", "accounts", "account_id", belongs=True),
    # explicit grants of a record (``Share.record_id``), used by permission scopes
    *(
        Relation(source, "shares", "shares", "record_id")
        for source in (
            "accounts",
            "contacts",
            "deals",
            "tickets",
            "interactions",
            "tasks",
            "segments",
            "campaigns",
            "articles",
            "orders",
            "survey_responses",
        )
    ),
)


def relation(source: str, name: str) -> Relation:
    """The relation ``name`` of collection ``source``; raises :class:`crmkit.ValidationError`."""
    found = RELATIONS.get(source, {}).get(name)
    if found is None:
        known = ", ".join(sorted(RELATIONS.get(source, {}))) or "none"
        raise ValidationError("related", name, f"is not a relation of {source} (known: {known})")
    return found


def related_entity(rel: Relation) -> type[Entity]:
    """The entity type of ``rel``'s target collection."""
    from crmkit.entities import ENTITY_TYPES

    return ENTITY_TYPES[rel.target]


def related_nodes(expr: Expr | None) -> Iterator[Related]:
    """The outermost :class:`Related` nodes of ``expr`` (not those nested inside them)."""
    if isinstance(expr, Related):
        yield expr
    elif isinstance(expr, And | Or):
        for item in expr.items:
            yield from related_nodes(item)
    elif isinstance(expr, Not):
        yield from related_nodes(expr.item)


def map_related(expr: Expr | None, change: Callable[[Related], Expr]) -> Expr | None:
    """``expr`` with each outermost :class:`Related` node replaced by ``change(node)``."""
    return None if expr is None else _map_related(expr, change)


def _map_related(expr: Expr, change: Callable[[Related], Expr]) -> Expr:
    if isinstance(expr, Related):
        return change(expr)
    if isinstance(expr, And):
        return And(tuple(_map_related(i, change) for i in expr.items))
    if isinstance(expr, Or):
        return Or(tuple(_map_related(i, change) for i in expr.items))
    if isinstance(expr, Not):
        return Not(_map_related(expr.item, change))
    return expr


class Field:
    """A field path being built (``F.address.city``); operators make conditions."""

    __slots__ = ("_path",)
    __hash__ = None  # type: ignore[assignment]  # == builds a condition

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        return Field(f"{self._path}.{name}")

    def __repr__(self) -> str:
        return f"F.{self._path}"

    @property
    def path(self) -> str:
        """The dotted field path."""
        return self._path

    def _cond(self, op: Op, value: Any) -> Cond:
        if value is None or isinstance(value, Field):
            raise ValidationError(
                self._path,
                value,
                "cannot be compared with None or another field; use .exists() or ~.exists()",
            )
        return Cond(self._path, op, _check_value(self._path, value))

    def __eq__(self, value: object) -> Cond:  # type: ignore[override]
        return self._cond(Op.EQ, value)

    def __ne__(self, value: object) -> Cond:  # type: ignore[override]
        return self._cond(Op.NE, value)

    def __lt__(self, value: Any) -> Cond:
        return self._cond(Op.LT, value)

    def __le__(self, value: Any) -> Cond:
        return self._cond(Op.LE, value)

    def __gt__(self, value: Any) -> Cond:
        return self._cond(Op.GT, value)

    def __ge__(self, value: Any) -> Cond:
        return self._cond(Op.GE, value)

    def in_(self, values: Iterable[Any]) -> Cond:
        """The value is one of ``values`` (for a list field: any element is)."""
        if isinstance(values, str | bytes | Mapping):
            raise ValidationError(self._path, values, "in_() takes a list of values")
        items = tuple(values)
        for v in items:
            if v is None:
                raise ValidationError(self._path, items, "in_() values cannot include None")
        return Cond(self._path, Op.IN, _check_value(self._path, items))

    def contains(self, value: Any) -> Cond:
        """A list field has the element ``value``; a text field has the substring ``value``."""
        return self._cond(Op.CONTAINS, value)

    def icontains(self, text: str) -> Cond:
        """Like :meth:`contains` on text, ignoring case (Unicode lower-casing)."""
        return self._text_cond(Op.ICONTAINS, text)

    def startswith(self, text: str) -> Cond:
        """The text (or any element of a list field) starts with ``text``, case-sensitively."""
        return self._text_cond(Op.STARTSWITH, text)

    def _text_cond(self, op: Op, text: str) -> Cond:
        if not isinstance(text, str):
            raise ValidationError(self._path, text, f"{op.value}() takes text")
        return Cond(self._path, op, text)

    def exists(self) -> Cond:
        """The field has a value (not None; for a list, not empty)."""
        return Cond(self._path, Op.EXISTS, None)

    def between(self, low: Any, high: Any) -> Cond:
        """``low <= value <= high``."""
        if low is None or high is None:
            raise ValidationError(self._path, (low, high), "between() bounds cannot be None")
        return Cond(self._path, Op.BETWEEN, _check_value(self._path, (low, high)))

    def within_last(self, period: dt.timedelta) -> Cond:
        """A datetime no older than ``period`` before the moment the query runs."""
        if not isinstance(period, dt.timedelta) or period < dt.timedelta(0):
            raise ValidationError(self._path, period, "within_last() takes a positive timedelta")
        return Cond(self._path, Op.WITHIN_LAST, period)

    def within_km(self, latitude: Any, longitude: Any, km: Any) -> Cond:
        """The address (a value object with coordinates) lies at most ``km`` kilometres from
        the point ``latitude``/``longitude`` (degrees), along a great circle of the sphere in
        :mod:`crmkit.geo`. A record without coordinates never matches."""
        lat = _geo_number(self._path, "latitude", latitude, -90.0, 90.0)
        lon = _geo_number(self._path, "longitude", longitude, -180.0, 180.0)
        radius = _geo_number(self._path, "km", km, 0.0, math.inf)
        if not radius > 0.0 or math.isinf(radius):
            raise ValidationError(self._path, km, "within_km() takes a finite radius > 0")
        return Cond(self._path, Op.WITHIN_KM, (lat, lon, radius))

    def asc(self) -> Order:
        """Ascending order on this field (None last)."""
        return Order(self._path, False)

    def desc(self) -> Order:
        """Descending order on this field (None last)."""
        return Order(self._path, True)


class _FieldRoot:
    """``F.name`` starts a field path."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        return Field(name)

    def __call__(self, path: str) -> Field:
        """``F("address.city")`` for a path held in a variable."""
        return Field(path)

    def related(self, relation: str, where: Expr | None = None) -> Related:
        """Has a related record (via :data:`RELATIONS`) matching ``where`` (default: any).

        ``F.related("interactions", F.kind == "email")`` on contacts: the contact has an
        email interaction; ``~F.related("tickets")``: the contact has no ticket.
        """
        if not isinstance(relation, str) or not relation:
            raise ValidationError("related", relation, "must be a relation name")
        if where is not None and not isinstance(where, Expr):
            raise ValidationError("related", where, "must be a filter expression")
        return Related(relation, where)


#: The field builder: ``F.last_name == "Lovelace"``, ``F.custom.tier.in_(["gold"])``.
F = _FieldRoot()


# --- values -------------------------------------------------------------------------------


def _geo_number(path: str, name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError(path, value, f"within_km() takes a number as {name}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValidationError(path, value, f"within_km() takes a finite {name}") from None
    if math.isnan(number) or not low <= number <= high:
        raise ValidationError(path, value, f"within_km() takes a {name} in [{low}, {high}]")
    return number


_SCALARS = (str, int, float, bool, Decimal, dt.date, dt.timedelta)


def _check_value(path: str, value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, tuple):
        return tuple(_check_value(path, v) for v in value)
    if isinstance(value, list):
        return tuple(_check_value(path, v) for v in value)
    if isinstance(value, dt.datetime) and value.utcoffset() is None:
        raise ValidationError(path, value, "must be a timezone-aware datetime")
    if isinstance(value, float) and value != value:
        raise ValidationError(path, value, "NaN is not a comparable value")
    if not isinstance(value, _SCALARS):
        raise ValidationError(path, value, f"has unsupported type {type(value).__name__}")
    return value


def _encode(value: Any) -> Any:
    # JSON has no datetime/date/decimal/duration: tag them as one-key objects (query values
    # are never plain objects, so the tag is unambiguous).
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"datetime": value.astimezone(dt.UTC).isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dt.timedelta):
        return {"seconds": value.total_seconds()}
    return value


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_decode(v, where) for v in value)
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValidationError(where, value, "is not a valid query value")
        ((tag, raw),) = value.items()
        try:
            if tag == "datetime":
                return dt.datetime.fromisoformat(raw)
            if tag == "date":
                return dt.date.fromisoformat(raw)
            if tag == "decimal":
                return Decimal(raw)
            if tag == "seconds":
                return dt.timedelta(seconds=raw)
        except (TypeError, ValueError, ArithmeticError):
            raise ValidationError(where, value, f"is not a valid {tag} value") from None
        raise ValidationError(where, value, f"has an unknown value type {tag!r}")
    return value


def _aggregate_from_dict(node: Related, data: Any) -> Related:
    if not isinstance(data, Mapping) or not set(data) <= {"op", "path", "compare", "value"}:
        raise ValidationError("aggregate", data, "must be {op, path, compare, value}")
    op, path = data.get("op"), data.get("path")
    builders: dict[str, Callable[[], RelatedMetric]] = {
        "count": node.count,
        "sum": lambda: node.sum(path),  # type: ignore[arg-type]
        "min": lambda: node.min(path),  # type: ignore[arg-type]
        "max": lambda: node.max(path),  # type: ignore[arg-type]
    }
    if op not in builders:
        raise ValidationError("aggregate.op", op, "is not count, sum, min or max")
    if op == "count" and path is not None:
        raise ValidationError("aggregate.path", path, "count() takes no field")
    try:
        compare = Op(str(data.get("compare")))
    except ValueError:
        compare = None
    if compare not in COMPARISONS:
        raise ValidationError("aggregate.compare", data.get("compare"), "is not a comparison")
    if "value" not in data:
        raise ValidationError("aggregate.value", None, "is required")
    value = _decode(data["value"], "aggregate.value")
    metric = builders[op]()
    assert compare is not None
    return metric._cond(compare, value)


def from_dict(data: Mapping[str, Any]) -> Expr:
    """Rebuild an expression from :meth:`Expr.to_dict` output.

    Raises :class:`crmkit.ValidationError` for an unknown operator, a malformed node or a bad
    value. Field names are checked when the expression is used on an entity type (:func:`bind`).
    """
    if not isinstance(data, Mapping):
        raise ValidationError("query", data, "must be a mapping")
    keys = set(data)
    if keys in ({"and"}, {"or"}):
        (key,) = keys
        items = data[key]
        if not isinstance(items, list | tuple) or not items:
            raise ValidationError(f"query.{key}", items, "must be a non-empty list")
        parts = tuple(from_dict(i) for i in items)
        return And(parts) if key == "and" else Or(parts)
    if keys == {"not"}:
        return Not(from_dict(data["not"]))
    if "related" in keys and keys <= {"related", "where", "aggregate"}:
        name = data["related"]
        if not isinstance(name, str) or not name:
            raise ValidationError("query.related", name, "must be a relation name")
        inner = data.get("where")
        try:
            where = None if inner is None else from_dict(inner)
            node = Related(name, where)
            if "aggregate" in data:
                return _aggregate_from_dict(node, data["aggregate"])
        except ValidationError as exc:
            raise exc.prefixed(f"related.{name}") from None
        return node
    if keys not in ({"field", "op", "value"}, {"field", "op"}):
        raise ValidationError(
            "query", dict(data), "is not a query node (field/op/value, and, or, not, related)"
        )
    path, op_name = data["field"], data["op"]
    if not isinstance(path, str) or not path:
        raise ValidationError("query.field", path, "must be a field path")
    try:
        op = Op(op_name)
    except ValueError:
        raise ValidationError("query.op", op_name, "is not a known operator") from None
    field = Field(path)
    if op is Op.EXISTS:
        return field.exists()
    if "value" not in data:
        raise ValidationError(f"query.{path}", None, f"operator {op.value} needs a value")
    value = _decode(data["value"], f"query.{path}")
    builders: dict[Op, Callable[[Any], Cond]] = {
        Op.EQ: field.__eq__,
        Op.NE: field.__ne__,
        Op.LT: field.__lt__,
        Op.LE: field.__le__,
        Op.GT: field.__gt__,
        Op.GE: field.__ge__,
        Op.IN: field.in_,
        Op.CONTAINS: field.contains,
        Op.ICONTAINS: field.icontains,
        Op.STARTSWITH: field.startswith,
        Op.WITHIN_LAST: field.within_last,
    }
    if op is Op.WITHIN_KM:
        if not isinstance(value, tuple) or len(value) != 3:
            raise ValidationError(f"query.{path}", value, "within_km needs [lat, lon, km]")
        return field.within_km(*value)
    if op is Op.BETWEEN:
        if not isinstance(value, tuple) or len(value) != 2:
            raise ValidationError(f"query.{path}", value, "between needs [low, high]")
        return field.between(*value)
    result: Cond = builders[op](value)
    return result


# --- binding to an entity type ------------------------------------------------------------


def bind(expr: Expr | None, entity: type[Entity], *, now: dt.datetime | None = None) -> Expr | None:
    """Check ``expr`` against ``entity`` and return the form backends compile.

    Unknown fields, operators that do not apply to a field's kind and values of the wrong
    type raise :class:`crmkit.ValidationError`. Values are converted to the field's stored
    type (ISO strings to datetimes, numbers to ``Decimal``...), ``between`` becomes two
    bounds and ``within_last`` a lower bound relative to ``now`` (default: the current time).
    """
    if expr is None:
        return None
    if now is None:
        now = dt.datetime.now(dt.UTC)
    return _bind(expr, entity, now)


#: Bound ``Or``/``Related`` subtrees by (expression, entity type): a user view adds the same
#: permission scope to every query, and binding it again each time is most of the cost of
#: a scoped lookup. Only subtrees for which :func:`reusable` holds are kept.
_BOUND: dict[tuple[Expr, type[Entity]], Expr] = {}
_BOUND_LIMIT = 256


def reusable(expr: Expr) -> bool:
    """Whether the bound or compiled form of ``expr`` may be reused for an equal expression:
    it holds no relative date (``within_last`` depends on the time) and only text values
    (``1 == True == 1.0`` in Python, while crmkit compares numbers and booleans apart, so
    equal expressions with other values may differ)."""
    if isinstance(expr, Cond):
        value = expr.value
        if expr.op is Op.WITHIN_LAST:
            return False
        if isinstance(value, tuple):
            return all(isinstance(v, str) for v in value)
        return value is None or isinstance(value, str)
    if isinstance(expr, And | Or):
        return all(reusable(i) for i in expr.items)
    if isinstance(expr, Not):
        return reusable(expr.item)
    if isinstance(expr, Related):
        # an aggregate compares with a number (see above)
        return expr.aggregate is None and (expr.where is None or reusable(expr.where))
    return False


def _bind_kept(expr: Or | Related, entity: type[Entity], now: dt.datetime) -> Expr:
    key = (expr, entity)
    try:
        hit = _BOUND.get(key)
    except TypeError:  # a value that cannot be hashed: bind it every time
        return _bind_node(expr, entity, now)
    if hit is not None:
        return hit
    bound = _bind_node(expr, entity, now)
    if reusable(expr):
        if len(_BOUND) >= _BOUND_LIMIT:
            _BOUND.clear()
        _BOUND[key] = bound
    return bound


def _bind(expr: Expr, entity: type[Entity], now: dt.datetime) -> Expr:
    if isinstance(expr, Or | Related):
        return _bind_kept(expr, entity, now)
    return _bind_node(expr, entity, now)


def _bind_node(expr: Expr, entity: type[Entity], now: dt.datetime) -> Expr:
    if isinstance(expr, And):
        return And(tuple(_bind(i, entity, now) for i in expr.items))
    if isinstance(expr, Or):
        return Or(tuple(_bind(i, entity, now) for i in expr.items))
    if isinstance(expr, Not):
        return Not(_bind(expr.item, entity, now))
    if isinstance(expr, Related):
        rel = relation(entity.collection, expr.relation)
        aggregate = expr.aggregate
        try:
            if aggregate is not None:
                aggregate = _bind_aggregate(rel, aggregate)
            if expr.where is None:
                return expr if aggregate is expr.aggregate else Related(rel.name, None, aggregate)
            inner = _bind(expr.where, related_entity(rel), now)
        except ValidationError as exc:
            raise exc.prefixed(f"related.{expr.relation}") from None
        return Related(expr.relation, inner, aggregate)
    if not isinstance(expr, Cond):
        raise ValidationError("query", expr, "is not a filter expression")
    info = field_info(entity, expr.field)
    op, value = expr.op, expr.value
    if op is Op.EXISTS:
        return expr
    if op is Op.WITHIN_KM:
        fields = queryable_fields(entity)
        if (
            info.kind != "object"
            or f"{expr.field}.latitude" not in fields
            or f"{expr.field}.longitude" not in fields
        ):
            raise ValidationError(
                expr.field, value, "within_km() needs an address with latitude/longitude"
            )
        return expr
    if op is Op.WITHIN_LAST:
        if info.kind not in ("datetime", "any"):
            raise ValidationError(expr.field, value, "within_last() needs a datetime field")
        return Cond(expr.field, Op.GE, _coerce(info, now - value))
    if op is Op.BETWEEN:
        low, high = (_coerce(info, v) for v in value)
        _check_ordered(info, op)
        if isinstance(low, bool) or isinstance(high, bool):
            raise ValidationError(expr.field, value, "true/false values cannot be range-compared")
        return And((Cond(expr.field, Op.GE, low), Cond(expr.field, Op.LE, high)))
    if info.kind == "object":
        raise ValidationError(expr.field, value, "only supports exists(); query its parts")
    if info.is_list:
        if op in COMPARISONS:
            raise ValidationError(
                expr.field, value, f"is a list: use contains(), in_() or exists(), not {op.value}"
            )
    elif op in _TEXT_OPS and info.kind not in ("text", "any"):
        raise ValidationError(expr.field, value, f"{op.value}() needs a text field or a list")
    if op in (Op.LT, Op.LE, Op.GT, Op.GE):
        _check_ordered(info, op)
        if isinstance(value, bool):  # custom fields: booleans are not ordered either
            raise ValidationError(expr.field, value, "true/false values cannot be range-compared")
    if op is Op.IN:
        return Cond(expr.field, op, tuple(_coerce(info, v) for v in value))
    if op in (Op.ICONTAINS, Op.STARTSWITH):
        return expr
    return Cond(expr.field, op, _coerce(info, value))


def _bind_aggregate(rel: Relation, aggregate: RelatedAggregate) -> RelatedAggregate:
    """``aggregate`` checked against ``rel``'s target, its value of the field's type."""
    if rel.belongs:
        raise ValidationError(
            "aggregate", aggregate.op, f"needs a to-many relation ({rel.name} is one record)"
        )
    if aggregate.op not in _AGGREGATE_OPS:
        raise ValidationError("aggregate.op", aggregate.op, "is not count, sum, min or max")
    if aggregate.compare not in COMPARISONS:
        raise ValidationError("aggregate.compare", aggregate.compare, "is not a comparison")
    value = _aggregate_value("aggregate", aggregate.op, aggregate.value)
    if aggregate.op == "count":
        if aggregate.path is not None:
            raise ValidationError("aggregate.path", aggregate.path, "count() takes no field")
        return aggregate if value is aggregate.value else attrs.evolve(aggregate, value=value)
    if aggregate.path is None:
        raise ValidationError("aggregate.path", None, f"{aggregate.op}() needs a field")
    info = _aggregate_info(related_entity(rel), aggregate.op, aggregate.path)
    if isinstance(value, dt.timedelta) is not (info.kind == "duration"):
        raise ValidationError(
            aggregate.path, value, "a duration compares with a timedelta, a number with a number"
        )
    return attrs.evolve(aggregate, value=_coerce(info, value))


def _check_ordered(info: FieldInfo, op: Op) -> None:
    if info.kind == "bool":
        raise ValidationError(info.path, op.value, "true/false values cannot be range-compared")
    if info.kind not in _ORDERED_KINDS and info.kind != "any":
        raise ValidationError(info.path, op.value, "cannot be range-compared")


def _coerce(info: FieldInfo, value: Any) -> Any:
    """Convert a query value to the stored type of ``info``'s field."""
    from crmkit.entities import _fields as conv

    kind = info.kind
    where = info.path
    if isinstance(value, tuple):
        raise ValidationError(where, value, "takes a single value here, not a list")
    if kind in ("text", "text_list"):
        if info.choices is not None:
            return conv.to_enum(info.choices, value, where).value
        if not isinstance(value, str):
            raise ValidationError(where, value, "is a text field: compare it with text")
        return value
    if kind == "bool":
        return conv.to_bool(value, where)
    if kind == "int":
        return conv.to_int(value, where)
    if kind == "decimal":
        if isinstance(value, float):
            return Decimal(repr(value))
        return conv.to_decimal(value, where)
    if kind == "datetime":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            raise ValidationError(where, value, "is a datetime field: compare it with a datetime")
        return conv.to_datetime(value, where)
    if kind == "date":
        return conv.to_date(value, where)
    if kind == "duration":
        return conv.to_timedelta(value, where)
    if kind == "any":
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            # beyond what storage binds as a whole number: compared as the decimal it is
            # (a typed custom field converts it again)
            return Decimal(value)
        if isinstance(value, str | bool | int | float) and not isinstance(value, Decimal):
            return value
        # dates and datetimes as the text custom fields store them (crmkit.customfields):
        # ISO dates, and UTC datetimes with milliseconds, whose text order is time order
        if isinstance(value, dt.datetime):
            when = conv.to_datetime(value, where)
            return when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return value
        raise ValidationError(
            where, value, "custom fields compare with text, numbers or booleans only"
        )
    raise ValidationError(where, value, "cannot be compared")


# --- ordering and paging ------------------------------------------------------------------


@attrs.frozen
class Order:
    """Sort by ``field``; ``desc`` reverses. ``None`` sorts last either way."""

    field: str
    desc: bool = False

    def to_str(self) -> str:
        """``"-field"`` for descending, ``"field"`` otherwise."""
        return f"-{self.field}" if self.desc else self.field


OrderSpec = str | Order | Sequence[str | Order] | None


def parse_order(
    order_by: OrderSpec, entity: type[Entity], *, sortable: Container[str] = ()
) -> tuple[Order, ...]:
    """Turn ``"last_name"``, ``"-created_at"``, ``F.x.desc()`` or a list of them into orders.

    The id is appended as the final key (unless present), so every order is total and
    paging is deterministic. ``sortable`` lists the custom paths with a declared scalar type
    (``custom.score``, see :mod:`crmkit.customfields`). Raises
    :class:`crmkit.ValidationError` for a field that cannot be sorted (lists, custom fields
    without a type, value objects).
    """
    if order_by is None:
        items: Sequence[str | Order] = ()
    elif isinstance(order_by, str | Order):
        items = (order_by,)
    else:
        items = order_by
    out: list[Order] = []
    for item in items:
        if isinstance(item, str):
            item = Order(item[1:], True) if item.startswith("-") else Order(item.lstrip("+"))
        if not isinstance(item, Order):
            raise ValidationError("order_by", item, "must be a field name or F.field.asc()/.desc()")
        info = field_info(entity, item.field)
        if info.kind not in _ORDERED_KINDS and item.field not in sortable:
            raise ValidationError("order_by", item.field, "cannot be sorted on")
        if any(o.field == item.field for o in out):
            raise ValidationError("order_by", item.field, "is listed twice")
        out.append(item)
    if not any(o.field == "id" for o in out):
        out.append(Order("id"))
    return tuple(out)


@attrs.frozen
class Query:
    """What a backend is asked for: a bound filter, a total order, and a window."""

    where: Expr | None = None
    order: tuple[Order, ...] = (Order("id"),)
    limit: int | None = None
    offset: int = 0


_MAX_LIMIT = 2**31 - 1


def check_window(limit: int | None, offset: int) -> None:
    """Validate ``limit`` and ``offset``; raises :class:`crmkit.ValidationError`."""
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= _MAX_LIMIT
    ):
        raise ValidationError("limit", limit, "must be a whole number >= 0")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= _MAX_LIMIT:
        raise ValidationError("offset", offset, "must be a whole number >= 0")


class Cursor:
    """Keyset paging: encode where a page ended, and turn that into a filter.

    A cursor is an opaque URL-safe string holding the sort-key values of the last record
    on a page. The "after" filter is an ordinary expression, so every backend pages with the
    same operators it already compiles (and None-last ordering is respected).
    """

    VERSION: ClassVar[int] = 1

    @staticmethod
    def encode(order: Sequence[Order], values: Sequence[Any]) -> str:
        """Encode the sort-key ``values`` of the last record of a page."""
        payload = [Cursor.VERSION, [o.to_str() for o in order], [_encode(v) for v in values]]
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def after(cursor: str, order: Sequence[Order]) -> Expr:
        """The filter matching records strictly after ``cursor`` in ``order``."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            version, keys, encoded = json.loads(raw)
        except (ValueError, TypeError):
            raise ValidationError("after", cursor, "is not a valid page cursor") from None
        if version != Cursor.VERSION or keys != [o.to_str() for o in order]:
            raise ValidationError("after", cursor, "was made for a different ordering")
        values = [_decode(v, "after") for v in encoded]
        alternatives: list[Expr] = []
        ties: list[Expr] = []
        for o, v in zip(order, values, strict=True):
            field = Field(o.field)
            if v is None:
                # None sorts last: nothing is after it on this key, only ties
                step: Expr | None = None
                tie: Expr = ~field.exists()
            elif isinstance(v, bool):
                # booleans cannot be range-compared (bind refuses it): False < True spelled out
                tie = Cond(o.field, Op.EQ, v)
                if v is o.desc:  # ascending after False, or descending after True
                    step = Cond(o.field, Op.EQ, not v) | ~field.exists()
                else:
                    step = ~field.exists()
            else:
                beyond = Cond(o.field, Op.LT if o.desc else Op.GT, v)
                step = beyond | ~field.exists()
                tie = Cond(o.field, Op.EQ, v)
            if step is not None:
                alternatives.append(And((*ties, step)) if ties else step)
            ties.append(tie)
        if not alternatives:
            return ~Field("id").exists()  # matches nothing: every record has an id
        return alternatives[0] if len(alternatives) == 1 else Or(tuple(alternatives))


@attrs.frozen
class Page(Sequence[Any]):
    """One page of results and the cursor of the next (``None`` on the last page)."""

    items: tuple[Any, ...]
    next_cursor: str | None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]
