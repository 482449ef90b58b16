"""Bound crmkit queries -> MongoDB query documents and find plans.

:class:`FilterCompiler` is a visitor with one method per operator, so each operator's
MongoDB meaning can be read next to the memory backend's predicate and the SQL compiler.

How crmkit's semantics are kept (see DESIGN.md, "Filters"):

- *None never matches a comparison*: MongoDB's ``$ne`` matches missing and null values, so
  ``ne`` (and every range comparison) also requires the field's BSON ``$type``; that also
  excludes every other type where a driver or mongomock would compare across types.
- *Two-valued negation*: MongoDB's query language is two-valued already; ``~expr`` is
  ``$nor: [expr]``.
- *Custom fields compare within one kind*: a ``$type`` of ``string``, ``number`` or ``bool``
  goes with every comparison (booleans are not numbers), and ``$not: {$type: "array"}``
  keeps list values out of comparisons and ``in_``.
- *Case-insensitive text*: ``icontains`` matches the lower-cased shadow (``_lc``) that the
  converter stores with ``str.lower()``, falling back to the field itself where lower-casing
  changed nothing, so case folding is exactly Python's, for all of Unicode.
- *Decimals* compare through their order-preserving key (``_dec``, see
  :func:`crmkit.backends.mongo.convert.decimal_key`).
- *User values are data, never syntax*: every value is type-checked against the field's
  kind (a ``dict`` can never get in) and only ever appears as the argument of ``$eq``,
  ``$ne``, ``$lt``, ``$lte``, ``$gt``, ``$gte``, ``$in`` or an escaped ``$regex``; field
  paths come from the entity schema, never from values.
- *Related records* (``F.related("deals", expr)``): the inner filter is compiled for the
  related collection and resolved by the backend (``related``) to the link values of the
  matching documents, which become ``_id: {$in: [...]}`` (or ``account_id: {$in: [...]}``
  for a "belongs to" relation). That is one extra query per related node and keeps every
  find/count a plain query document; ``$nor`` around it gives exactly "has none".
- *None sorts last*: when a sort key can be missing, the find runs as an aggregation that
  sorts on a computed "is null" flag first, still with ``$skip``/``$limit`` in the database.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs

from crmkit import geo
from crmkit.entities import Entity
from crmkit.entities.schema import FieldInfo, field_info
from crmkit.errors import ValidationError
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
    Relation,
    related_entity,
    relation,
)

from .convert import DECIMAL, GEO, LOWER, SHADOW_FIELDS, bson_date, bson_duration, decimal_key

__all__ = ["FilterCompiler", "FindPlan", "SortKey", "compile_find", "nothing", "projection"]

Filter = dict[str, Any]
#: Resolves a related node: the link values of the related documents matching the filter.
RelatedKeys = Callable[[Relation, Filter], list[Any]]
#: Resolves an aggregate condition on related records (``F.related(...).count() > 2``) to
#: the query document of the records that pass (``MongoStore`` supplies it).
RelatedAggregates = Callable[[Relation, Related], Filter]


def nothing() -> Filter:
    """A filter no document matches (every document has an ``_id``)."""
    return {"_id": {"$in": []}}


#: The operators a user value may appear under (the injection tests check this).
VALUE_OPERATORS = frozenset({"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$regex"})

_RANGE = {Op.LT: "$lt", Op.LE: "$lte", Op.GT: "$gt", Op.GE: "$gte"}
_BSON_TYPE = {
    "text": "string",
    "text_list": "string",
    "int": "number",
    "duration": "number",
    "bool": "bool",
    "datetime": "date",
    "date": "date",
    "decimal": "string",  # the order key under _dec
    "object": "object",
}


def _not_array() -> Filter:
    return {"$not": {"$type": "array"}}


_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")
_STORAGE_FIELDS = frozenset({"id", "version", "created_at", "updated_at"})
_INT64 = 2**63


@attrs.frozen
class _Target:
    """Where a queried field lives in the document, and how it is compared."""

    info: FieldInfo
    path: str  # the document path ("_id" for id)
    lower_path: str  # the lower-cased shadow
    key_path: str  # the decimal key (decimals), else ``path``

    @classmethod
    def of(cls, info: FieldInfo) -> _Target:
        for part in info.path.split("."):
            # field_info already validated the path; this keeps the compiler safe on its own
            if not _PATH_PART.match(part):
                raise ValidationError("field", info.path, "is not a valid field path")
        path = "_id" if info.path == "id" else info.path
        key_path = f"{DECIMAL}.{info.path}" if info.kind == "decimal" else path
        return cls(info, path, f"{LOWER}.{info.path}", key_path)

    @property
    def kind(self) -> str:
        return self.info.kind


def _kind_of(value: Any) -> str:
    """The BSON ``$type`` alias of a custom-field query value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    return "number"


def _escape(text: str) -> str | None:
    # re.escape only emits backslash + non-alphanumeric, which PCRE (MongoDB) reads as the
    # literal character too. Stored text never holds NUL, and MongoDB rejects it in a
    # pattern: None means "matches nothing".
    if "\x00" in text:
        return None
    return re.escape(text)


class FilterCompiler:
    """Compiles a bound filter on one entity type into a MongoDB query document.

    >>> from crmkit import Contact
    >>> from crmkit.query import F, bind
    >>> FilterCompiler(Contact).compile(bind(F.last_name == "Lovelace", Contact))
    {'last_name': {'$eq': 'Lovelace'}}

    Raises ``ValidationError`` for an unknown field, an operator that does not apply to the
    field, or a value of the wrong type (``crmkit.query.bind`` normally catches all three).
    """

    def __init__(
        self,
        entity: type[Entity],
        related: RelatedKeys | None = None,
        *,
        geo_index: bool = False,
        aggregates: RelatedAggregates | None = None,
    ) -> None:
        self.entity = entity
        #: how ``F.related`` nodes are resolved (the backend's; None refuses them)
        self.related = related
        #: how aggregate conditions on related records are resolved (None refuses them)
        self.aggregates = aggregates
        #: ``within_km`` pre-filters with ``$geoWithin`` (the 2dsphere index; real servers)
        #: instead of a latitude/longitude box (mongomock lacks ``$geoWithin``)
        self.geo_index = geo_index
        self._ops: dict[Op, Callable[[_Target, Any], Filter]] = {
            Op.EQ: self.op_eq,
            Op.NE: self.op_ne,
            Op.LT: self.op_range,
            Op.LE: self.op_range,
            Op.GT: self.op_range,
            Op.GE: self.op_range,
            Op.IN: self.op_in,
            Op.CONTAINS: self.op_contains,
            Op.ICONTAINS: self.op_icontains,
            Op.STARTSWITH: self.op_startswith,
            Op.EXISTS: self.op_exists,
        }
        self._op: Op = Op.EQ

    def compile(self, expr: Expr | None) -> Filter:
        """The query document for ``expr`` (``{}`` for no filter)."""
        if expr is None:
            return {}
        return self.visit(expr)

    # --- structure ---------------------------------------------------------------------------

    def visit(self, expr: Expr) -> Filter:
        """Dispatch on the node type."""
        if isinstance(expr, Cond):
            return self.visit_cond(expr)
        if isinstance(expr, And):
            return self.visit_and(expr)
        if isinstance(expr, Or):
            return self.visit_or(expr)
        if isinstance(expr, Not):
            return self.visit_not(expr)
        if isinstance(expr, Related):
            return self.visit_related(expr)
        raise ValidationError("query", expr, "is not a filter expression")

    def visit_and(self, expr: And) -> Filter:
        """All items match."""
        return {"$and": [self.visit(i) for i in expr.items]}

    def visit_or(self, expr: Or) -> Filter:
        """At least one item matches."""
        return {"$or": [self.visit(i) for i in expr.items]}

    def visit_not(self, expr: Not) -> Filter:
        """Exactly the documents the item does not match ($nor is two-valued)."""
        return {"$nor": [self.visit(expr.item)]}

    def visit_related(self, expr: Related) -> Filter:
        """Some related document matches: the link values are resolved now (one query)."""
        rel = relation(self.entity.collection, expr.relation)
        if self.related is None:
            raise ValidationError("related", expr.relation, "cannot be used here")
        if expr.aggregate is not None:  # count/sum/min/max compared
            if self.aggregates is None:
                raise ValidationError("related", expr.relation, "aggregates cannot be used here")
            return self.aggregates(rel, expr)
        compiler = FilterCompiler(
            related_entity(rel),
            self.related,
            geo_index=self.geo_index,
            aggregates=self.aggregates,
        )
        inner = compiler.compile(expr.where)
        keys = self.related(rel, inner)
        if rel.belongs:
            return {_Target.of(field_info(self.entity, rel.field)).path: {"$in": keys}}
        return {"_id": {"$in": keys}}

    def visit_cond(self, cond: Cond) -> Filter:
        """One condition: resolve the field, then the operator's method."""
        info = field_info(self.entity, cond.field)
        if cond.op is Op.WITHIN_KM:
            return self.op_within_km(_Target.of(info), cond.value)
        method = self._ops.get(cond.op)
        if method is None:
            raise ValidationError(cond.field, cond.op, "is not an operator backends compile")
        self._op = cond.op
        return method(_Target.of(info), cond.value)

    def op_within_km(self, t: _Target, value: tuple[float, float, float]) -> Filter:
        """A pre-filter, then the exact test of :mod:`crmkit.geo` on the ``_geo`` shadow's
        unit vector, in the same operation order (``$expr`` arithmetic: no trigonometry at
        query time), so the result is the other backends' to the last bit.

        The pre-filter only narrows the search (it is a superset of the exact test): with
        ``geo_index`` (real servers) ``$geoWithin``/``$centerSphere`` on the shadow's
        GeoJSON ``point``, which the 2dsphere index answers, with the slightly widened cap
        of :func:`crmkit.geo.cap_radians`; otherwise (mongomock, which lacks
        ``$geoWithin``, or a radius reaching nearly the antipode) a bounding box on the
        shadow's ``lat``/``lon``."""
        lat, lon, km = value
        base = f"{GEO}.{t.path}"
        radians = geo.cap_radians(km) if self.geo_index else None
        parts: list[Filter]
        if radians is not None:
            cap = {"$centerSphere": [[lon, lat], radians]}
            parts = [{f"{base}.point": {"$geoWithin": cap}}]
        else:
            box = geo.bounding_box(lat, lon, km)
            parts = [{f"{base}.lat": {"$gte": box.min_lat, "$lte": box.max_lat}}]
            if box.lon_ranges:
                parts.append(
                    {
                        "$or": [
                            {f"{base}.lon": {"$gte": lo, "$lte": hi}} for lo, hi in box.lon_ranges
                        ]
                    }
                )
        centre = geo.unit_vector(lat, lon)

        def square(axis: str, c: float) -> dict[str, Any]:
            diff = {"$subtract": [f"${base}.{axis}", c]}
            return {"$multiply": [diff, diff]}

        chord = {
            "$add": [
                {"$add": [square("x", centre[0]), square("y", centre[1])]},
                square("z", centre[2]),
            ]
        }
        parts.append({"$expr": {"$lte": [chord, geo.chord_limit(km)]}})
        return {"$and": parts}

    # --- values --------------------------------------------------------------------------

    def _value(self, t: _Target, value: Any) -> Any:
        """``value`` in its stored form for ``t``'s kind; anything else is refused."""
        kind = t.kind
        if isinstance(value, enum.Enum):
            value = value.value
        ok: bool
        if kind in ("text", "text_list"):
            ok = isinstance(value, str)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "decimal":
            if isinstance(value, int) and not isinstance(value, bool):
                value = Decimal(value)
            ok = isinstance(value, Decimal) and value.is_finite()
            if ok:
                return decimal_key(value)
        elif kind == "datetime":
            ok = isinstance(value, dt.datetime) and value.utcoffset() is not None
            if ok:
                return value.astimezone(dt.UTC)
        elif kind == "date":
            ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
            if ok:
                return bson_date(value)
        elif kind == "duration":
            ok = isinstance(value, dt.timedelta)
            if ok:
                return bson_duration(value)
        elif kind == "any":
            ok = isinstance(value, str | bool | int | float | Decimal)
        else:
            ok = False
        if not ok:
            raise ValidationError(t.info.path, value, f"is not a valid {kind} query value")
        return value

    def _custom_number(self, value: Any) -> tuple[Any, Any]:
        """A custom-field number as (lower bound, upper bound) BSON numbers.

        Stored custom numbers are ints and doubles, and mongomock cannot compare Decimal128,
        so a Decimal query value becomes the int or double equal to it; a decimal no double
        can represent exactly lies strictly between two doubles, returned as the bounds.
        """
        if not isinstance(value, Decimal):
            return value, value
        if value == value.to_integral_value() and -_INT64 <= value < _INT64:
            return int(value), int(value)
        near = float(value)
        exact = Decimal(near)
        if exact == value:
            return near, near
        if exact > value:
            return math.nextafter(near, -math.inf), near
        return near, math.nextafter(near, math.inf)

    # --- operators -----------------------------------------------------------------------

    def op_eq(self, t: _Target, value: Any) -> Filter:
        """Equal (a list field has no ``==``: bind refuses it)."""
        self._scalar_only(t, value)
        if t.kind == "any":
            v = self._value(t, value)
            low, high = self._custom_number(v) if _kind_of(v) == "number" else (v, v)
            if low != high:
                return nothing()  # no stored int or double equals this decimal
            return {t.path: {"$eq": low, "$type": _kind_of(v), **_not_array()}}
        return {t.key_path: {"$eq": self._value(t, value)}}

    def op_ne(self, t: _Target, value: Any) -> Filter:
        """Not equal, and present: a missing or None value does not match ``!=``."""
        self._scalar_only(t, value)
        if t.kind == "any":
            v = self._value(t, value)
            low, high = self._custom_number(v) if _kind_of(v) == "number" else (v, v)
            clause: Filter = {"$type": _kind_of(v), **_not_array()}
            if low == high:
                clause["$ne"] = low
            return {t.path: clause}
        return {t.key_path: {"$ne": self._value(t, value), "$type": _BSON_TYPE[t.kind]}}

    def op_range(self, t: _Target, value: Any) -> Filter:
        """``<``, ``<=``, ``>``, ``>=`` within the field's own type (text by code point)."""
        self._scalar_only(t, value)
        op = self._op
        if t.kind == "any":
            v = self._value(t, value)
            bound = v
            if _kind_of(v) == "number":
                low, high = self._custom_number(v)
                if low != high:  # strictly between two doubles: < and <= agree, as do > and >=
                    op = Op.LE if op in (Op.LT, Op.LE) else Op.GE
                    bound = low if op is Op.LE else high
                else:
                    bound = low
            return {t.path: {_RANGE[op]: bound, "$type": _kind_of(v), **_not_array()}}
        return {t.key_path: {_RANGE[op]: self._value(t, value), "$type": _BSON_TYPE[t.kind]}}

    def op_in(self, t: _Target, values: Any) -> Filter:
        """One of ``values`` (a list field: any element is one of them)."""
        if not isinstance(values, tuple | list):
            raise ValidationError(t.info.path, values, "in_() takes a list of values")
        if t.kind == "object":
            raise ValidationError(t.info.path, values, "only supports exists()")
        if t.kind != "any":
            return {t.key_path: {"$in": [self._value(t, v) for v in values]}}
        by_kind: dict[str, list[Any]] = {}
        for v in values:
            v = self._value(t, v)
            kind = _kind_of(v)
            if kind == "number":
                low, high = self._custom_number(v)
                if low != high:
                    continue  # equals no stored number
                v = low
            by_kind.setdefault(kind, []).append(v)
        clauses = [
            {t.path: {"$in": items, "$type": kind, **_not_array()}}
            for kind, items in by_kind.items()
        ]
        if not clauses:
            return nothing()
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}

    def op_contains(self, t: _Target, value: Any) -> Filter:
        """A list has the element ``value``; a text has the substring ``value``."""
        v = self._value(t, value)
        if t.kind == "text_list":
            return {t.path: {"$eq": v}}
        if t.kind == "text":
            pattern = _escape(v)
            return nothing() if pattern is None else {t.path: {"$regex": pattern}}
        if t.kind != "any":
            raise ValidationError(t.info.path, value, "contains() needs a text or list field")
        kind = _kind_of(v)
        element = v
        if kind == "number":
            low, high = self._custom_number(v)
            if low != high:
                return nothing()
            element = low
        clauses: list[Filter] = [{t.path: {"$elemMatch": {"$eq": element, "$type": kind}}}]
        if kind == "string":
            pattern = _escape(v)
            if pattern is not None:
                clauses.append({t.path: {"$regex": pattern, **_not_array()}})
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}

    def op_icontains(self, t: _Target, value: Any) -> Filter:
        """Substring after ``str.lower()`` of both sides (any element of a list)."""
        self._text_only(t, value)
        pattern = _escape(value.lower())
        if pattern is None:
            return nothing()
        return {
            "$or": [
                {t.lower_path: {"$regex": pattern}},
                # no shadow: lower-casing the stored text changed nothing
                {t.lower_path: {"$exists": False}, t.path: {"$regex": pattern}},
            ]
        }

    def op_startswith(self, t: _Target, value: Any) -> Filter:
        """Starts with ``value``, case-sensitively (any element of a list)."""
        self._text_only(t, value)
        pattern = _escape(value)
        return nothing() if pattern is None else {t.path: {"$regex": "^" + pattern}}

    def op_exists(self, t: _Target, value: Any) -> Filter:
        """Has a value: not missing, not None, and for a list not empty."""
        if t.kind == "text_list":
            return {f"{t.path}.0": {"$exists": True}}
        if t.kind == "any":
            # a non-empty list has elements of these types too
            return {"$or": [{t.path: {"$type": k}} for k in ("string", "number", "bool")]}
        return {t.key_path: {"$type": _BSON_TYPE[t.kind]}}

    # --- checks --------------------------------------------------------------------------

    def _scalar_only(self, t: _Target, value: Any) -> None:
        if t.kind in ("text_list", "object"):
            raise ValidationError(
                t.info.path, value, f"{self._op.value} does not apply to this field"
            )

    def _text_only(self, t: _Target, value: Any) -> None:
        if t.kind not in ("text", "text_list", "any") or not isinstance(value, str):
            raise ValidationError(t.info.path, value, f"{self._op.value}() needs text")


# --- finding: order, window, plan -----------------------------------------------------------


@attrs.frozen
class SortKey:
    """One sort key: a document path, its direction, and whether it can be missing/None."""

    path: str
    desc: bool
    nullable: bool


def _never_null(entity: type[Entity], info: FieldInfo) -> bool:
    if info.path in _STORAGE_FIELDS:
        return True  # stores receive complete entities
    if info.key is not None:
        return False  # a part of an optional value object
    a = attrs.fields_dict(entity)[info.column]
    if info.kind == "bool":
        return True  # flags refuse None
    if a.default is attrs.NOTHING:
        return True  # required fields refuse None
    return info.kind == "int" and a.default is not None


def sort_keys(entity: type[Entity], order: Sequence[Order]) -> tuple[SortKey, ...]:
    """The document paths to sort on for ``order`` (decimals sort on their order key)."""
    keys = []
    for o in order:
        t = _Target.of(field_info(entity, o.field))
        keys.append(SortKey(t.key_path, o.desc, not _never_null(entity, t.info)))
    return tuple(keys)


def projection() -> dict[str, int]:
    """A projection that leaves the shadow fields on the server (a new dict every time:
    mongomock adds keys to the projection it is given)."""
    return dict.fromkeys(SHADOW_FIELDS, 0)


@attrs.frozen
class FindPlan:
    """How to run one ``find``: a plain ``find`` with sort/skip/limit when no sort key can
    be None, otherwise an aggregation pipeline that sorts None last."""

    filter: Filter
    keys: tuple[SortKey, ...]
    skip: int
    limit: int | None

    @property
    def needs_pipeline(self) -> bool:
        """True when a sort key can be missing (MongoDB would sort it first ascending)."""
        return any(k.nullable for k in self.keys)

    @property
    def sort(self) -> list[tuple[str, int]]:
        """The ``find`` sort specification."""
        return [(k.path, -1 if k.desc else 1) for k in self.keys]

    def pipeline(self) -> list[dict[str, Any]]:
        """``$match``, a null flag per nullable key, ``$sort``, ``$skip``, ``$limit``."""
        flags: dict[str, Any] = {}
        sort: dict[str, int] = {}
        for i, k in enumerate(self.keys):
            if k.nullable:
                flag = f"_null{i}"
                # 1 when missing or None, so it sorts after every value in both directions
                flags[flag] = {"$cond": [{"$eq": [{"$ifNull": [f"${k.path}", None]}, None]}, 1, 0]}
                sort[flag] = 1
            sort[k.path] = -1 if k.desc else 1
        stages: list[dict[str, Any]] = [{"$match": self.filter}]
        if flags:
            stages.append({"$addFields": flags})
        stages.append({"$sort": sort})
        if self.skip:
            stages.append({"$skip": self.skip})
        if self.limit is not None:
            stages.append({"$limit": self.limit})
        stages.append({"$project": {**dict.fromkeys(flags, 0), **projection()}})
        return stages


def compile_find(
    entity: type[Entity],
    query: Query,
    related: RelatedKeys | None = None,
    *,
    geo_index: bool = False,
    aggregates: RelatedAggregates | None = None,
) -> FindPlan:
    """The plan for ``query`` on ``entity``; raises ``ValidationError`` like the compiler.
    ``geo_index`` and ``aggregates``: as for :class:`FilterCompiler`."""
    return FindPlan(
        FilterCompiler(entity, related, geo_index=geo_index, aggregates=aggregates).compile(
            query.where
        ),
        sort_keys(entity, query.order),
        query.offset,
        query.limit,
    )
