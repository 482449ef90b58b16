"""Compile crmkit's query AST into SQLAlchemy Core expressions, for SQLite and PostgreSQL.

:class:`FilterCompiler` is a visitor with one method per operator (``visit_eq`` ...
``visit_exists``), each handling the four shapes a field can have: a column (or a value
extracted from a JSON mapping, like ``external_ids.crm``), a list field (child table), a
value object (``has_address`` flag) and a custom field (JSON, compared within one kind).

How crmkit's semantics (DESIGN.md, "Filters") are kept on both dialects:

- *Two-valued logic.* A condition on a NULL column is NULL in SQL; at the top of a
  ``WHERE`` (and inside ``AND``/``OR``, which are monotone) NULL acts as false, which is
  crmkit's rule. Only ``NOT`` would let NULL leak (``NOT NULL`` is NULL, not true), so
  ``~expr`` compiles to ``NOT coalesce(expr, false)``: plain conditions stay index-friendly
  and negation is exact.
- *Case-sensitive text, code-point order.* Text columns are ``BINARY`` on SQLite and
  ``COLLATE "C"`` on PostgreSQL (values extracted from JSON get ``COLLATE "C"`` too);
  ``contains`` is ``instr``/``strpos``, ``startswith`` is an escaped ``GLOB`` (SQLite;
  index-friendly and case-sensitive, unlike ``LIKE``) or ``starts_with`` (PostgreSQL).
- *Unicode ``icontains``.* SQLite's ``lower()`` folds ASCII only, so a deterministic SQL
  function ``crmkit_lower`` (Python's ``str.lower``) is registered on each connection that
  runs such a query; PostgreSQL uses ``lower()`` under an ICU collation (``und-x-icu``)
  when the server has one, else the database default, never ``"C"`` (ASCII-only).
- *None last.* ``ORDER BY ... NULLS LAST`` on nullable keys, in both directions.
- *Related records* (``F.related("interactions", expr)``) compile to a semi-join: the
  record's id (or, for a "belongs to" relation, its reference column) ``IN`` a subquery
  selecting the link values of the related rows matching ``expr`` (on an alias, so a
  relation of a table to itself works; list links read the child table). Negation goes
  through the same ``NOT coalesce(...)`` as any condition, so "has none" is exact.
- *Custom fields compare within one kind*: each comparison is guarded by the JSON type
  (``json_type`` / ``jsonb_typeof``), so ``5`` never equals ``"5"`` and ``true`` is not a
  number; on PostgreSQL the cast sits in a ``CASE`` so it never runs on a value of another
  kind.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from crmkit import geo
from crmkit.backends.sql import related_aggregate
from crmkit.backends.sql.frozen import FrozenClause
from crmkit.backends.sql.schema import EntityLayout, ScalarCodec, keyed_value
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
    Related,
    Relation,
    related_entity,
    relation,
    reusable,
)

__all__ = ["FOLD_FUNCTION", "CompiledFilter", "FilterCompiler", "fold"]

#: Name of the SQL function registered on SQLite connections for ``icontains``.
FOLD_FUNCTION = "crmkit_lower"

Clause = ColumnElement[Any]
Compare = Callable[[Any, Any], Any]


def fold(value: object) -> str | None:
    """``str.lower`` as a SQL function (deterministic; ``NULL`` for non-text)."""
    return value.lower() if isinstance(value, str) else None


@attrs.frozen
class CompiledFilter:
    """A compiled ``WHERE`` clause; ``needs_fold`` when SQLite must have :func:`fold`."""

    clause: Clause | None
    needs_fold: bool


# --- targets: what a field path resolves to --------------------------------------------------


@attrs.frozen
class _Column:
    """A scalar value: a column, or text/number extracted from JSON (``external_ids.x``)."""

    expr: Clause  # what comparisons and ORDER BY use
    raw: Clause  # what exists() tests for NULL
    codec: ScalarCodec | None
    as_float: bool = False  # SQLite decimals: stored as exact text, compared as REAL
    nullable: bool = True
    # a text mapping's value (external_ids.shop): its child table and owner column, and the
    # key; == and in_ look the "key<US>value" rows up in the child's value index
    keyed: tuple[_List, str] | None = None

    def bind(self, value: Any) -> Any:
        if self.as_float:
            return float(value)
        if self.codec is not None:
            return self.codec.dump(value)
        return value


@attrs.frozen
class _List:
    child: sa.Table
    owner: Clause


@attrs.frozen
class _Object:
    flag: Clause


@attrs.frozen
class _Custom:
    column: Clause
    key: str


_Target = _Column | _List | _Object | _Custom

_NUMBER = "number"
_SQLITE_KINDS = {"text": ("text",), "number": ("integer", "real"), "bool": ("true", "false")}
_PG_KINDS = {"text": "string", "number": "number", "bool": "boolean"}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float | Decimal):
        return _NUMBER
    raise ValidationError("custom", value, "custom fields compare with text, numbers or booleans")


@functools.lru_cache(maxsize=256)
def _layout_of(entity: Any, metadata: sa.MetaData, dialect: str) -> EntityLayout:
    # the layout of a related entity type, built once per (type, metadata, dialect)
    return EntityLayout(entity, metadata, dialect)


def glob_prefix(text: str) -> str:
    """A SQLite ``GLOB`` pattern matching text that starts with ``text`` (case-sensitively)."""
    escaped = text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")
    return escaped + "*"


#: Longest ``IN`` list given one bound parameter per value; longer lists use one
#: "expanding" parameter instead.
_SMALL_IN = 32


def _in(expr: Clause, values: list[Any]) -> Clause:
    """``expr IN (values)``. A short list gets one bound parameter per value, written into
    the cached SQL: an "expanding" parameter would have SQLAlchemy rewrite the statement's
    text on every execution, which costs more than running a lookup (a user view's scope has
    several short lists: its teams, their members)."""
    if not values or len(values) > _SMALL_IN:
        return expr.in_(values)
    return expr.in_([sa.bindparam(None, v, type_=expr.type) for v in values])


def _sql_text(value: str) -> Clause:
    """A SQL text literal of a checked key or a constant (no quotes inside)."""
    assert "'" not in value
    return sa.literal_column(f"'{value}'", sa.Text())


class FilterCompiler:
    """Compiles bound filters and orders of one entity type for one dialect.

    ``fold_collation`` (PostgreSQL) names the collation whose ``lower()`` folds all of
    Unicode (``"und-x-icu"``), or ``None`` for the database default.
    """

    def __init__(
        self,
        layout: EntityLayout,
        dialect: str,
        fold_collation: str | None = None,
        table: sa.FromClause | None = None,
        depth: int = 0,
    ) -> None:
        self.layout = layout
        self.entity = layout.entity
        #: the table conditions refer to (an alias of the layout's table in a subquery)
        self.table: Any = layout.table if table is None else table
        self.depth = depth  # how many related subqueries deep this compiler's table is
        # compilers of related collections (with their aliases), built once per relation
        self._related: dict[str, tuple[FilterCompiler, Any]] = {}
        self.sqlite = dialect == "sqlite"
        self.fold_collation = fold_collation
        self._targets: dict[str, _Target] = {}
        self._needs_fold = False
        # compiled ``Or``/``Related`` subtrees by expression: a user view adds the same
        # permission scope to every query, and building its clauses is most of the cost of
        # compiling a scoped lookup (SQLAlchemy clauses are immutable, so they are shared)
        self._memo: dict[Expr, tuple[Clause, bool]] = {}

    # --- entry points ----------------------------------------------------------------------

    def compile(self, expr: Expr | None) -> CompiledFilter:
        """The ``WHERE`` clause of a bound filter (``None`` for no filter)."""
        if expr is None:
            return CompiledFilter(None, False)
        visitor = FilterCompiler(
            self.layout,
            "sqlite" if self.sqlite else "postgresql",
            table=self.table,
            depth=self.depth,
        )
        visitor.fold_collation = self.fold_collation
        visitor._targets = self._targets  # resolved paths are shared; they are immutable
        visitor._related = self._related  # so are the related compilers and aliases
        visitor._memo = self._memo
        clause = visitor.visit(expr)
        return CompiledFilter(clause, visitor._needs_fold)

    def order_by(self, order: Sequence[Order]) -> list[Clause]:
        """``ORDER BY`` terms: each key ascending or descending, NULL last either way."""
        out: list[Clause] = []
        for o in order:
            target = self._target(o.field)
            if isinstance(target, _Custom):
                out += self._custom_order(target, o.desc)
                continue
            if not isinstance(target, _Column):
                raise ValidationError("order_by", o.field, "cannot be sorted on")
            term = target.expr.desc() if o.desc else target.expr.asc()
            out.append(term.nulls_last() if target.nullable else term)
        return out

    def _custom_order(self, target: _Custom, desc: bool) -> list[Clause]:
        """Sort terms of a typed custom field (``crm.schema``): its values share one kind.

        SQLite sorts the extracted JSON value itself; PostgreSQL sorts each kind's typed
        value (numbers numerically, text by code point), of which only one is not NULL.
        """
        values = (
            [self._custom_value(target, "text")]
            if self.sqlite
            else [self._custom_value(target, k) for k in (_NUMBER, "text", "bool")]
        )
        return [(v.desc() if desc else v.asc()).nulls_last() for v in values]

    # --- the visitor -----------------------------------------------------------------------

    def visit(self, expr: Expr) -> Clause:
        """Compile one node of the AST."""
        if isinstance(expr, And):
            return self.visit_and(expr)
        if isinstance(expr, Or | Related):
            return self._memoized(expr)
        if isinstance(expr, Not):
            return self.visit_not(expr)
        if isinstance(expr, Cond) and expr.op is Op.WITHIN_KM:
            return self.visit_within_km(expr)
        if isinstance(expr, Cond):
            method: Callable[[_Target, Any], Clause] = getattr(self, f"visit_{expr.op.value}")
            return method(self._target(expr.field), expr.value)
        raise ValidationError("query", expr, "is not a filter expression")

    def _memoized(self, expr: Or | Related) -> Clause:
        try:
            hit = self._memo.get(expr)
        except TypeError:  # a value that cannot be hashed (a list): compile it every time
            hit = None
            key = None
        else:
            key = expr
        if hit is not None:
            self._needs_fold = self._needs_fold or hit[1]
            return hit[0]
        outer, self._needs_fold = self._needs_fold, False
        clause = self.visit_or(expr) if isinstance(expr, Or) else self.visit_related(expr)
        if key is not None and reusable(expr):
            if len(self._memo) >= 256:
                self._memo.clear()
            clause = FrozenClause(clause)  # its part of the cache key is computed once
            self._memo[key] = (clause, self._needs_fold)
        self._needs_fold = outer or self._needs_fold
        return clause

    def visit_and(self, expr: And) -> Clause:
        """All items match (``true`` when there are none)."""
        if not expr.items:
            return sa.true()
        return sa.and_(*(self.visit(i) for i in expr.items))

    def visit_or(self, expr: Or) -> Clause:
        """Some item matches (``false`` when there are none)."""
        if not expr.items:
            return sa.false()
        return sa.or_(*(self.visit(i) for i in expr.items))

    def visit_not(self, expr: Not) -> Clause:
        """Two-valued negation: NULL (unknown) counts as "does not match", so NOT is true."""
        return sa.not_(sa.func.coalesce(self.visit(expr.item), sa.false()))

    def visit_related(self, expr: Related) -> Clause:
        """Some related record matches: ``id IN (SELECT link FROM related WHERE ...)``.

        An ``IN`` subquery rather than a correlated ``EXISTS``: the subquery runs once and
        both dialects probe its result by hash/index, where ``EXISTS`` re-runs it per row.
        """
        rel = relation(self.entity.collection, expr.relation)
        inner, child = self._related_compiler(rel)
        other = inner.table
        compiled = inner.compile(expr.where)
        condition = compiled.clause
        self._needs_fold = self._needs_fold or compiled.needs_fold
        if expr.aggregate is not None:  # count/sum/min/max compared: a grouped subquery
            return related_aggregate.aggregate_clause(  # type: ignore[no-any-return]
                self, rel, inner, child, condition, expr.aggregate
            )
        if rel.belongs:
            ids = sa.select(other.c.id)
            if condition is not None:
                ids = ids.where(condition)
            result: Clause = self.table.c[rel.field].in_(ids)
            return result
        if child is not None:
            links = sa.select(child.c.value)
            if condition is not None:
                links = links.select_from(child.join(other, other.c.id == child.c.owner_id)).where(
                    condition
                )
        else:
            column = other.c[rel.field]
            links = sa.select(column).where(column.is_not(None))
            if condition is not None:
                links = links.where(condition)
        result = self.table.c.id.in_(links)
        return result

    def _related_compiler(self, rel: Relation) -> tuple[FilterCompiler, Any]:
        """The compiler of ``rel``'s target on an alias named by depth (a subquery nested in
        another on the same table needs another name; siblings can share one), and the
        alias of the link's child table for a list link. Built once: aliases of wide tables
        are costly to set up."""
        found = self._related.get(rel.name)
        if found is not None:
            return found
        dialect = "sqlite" if self.sqlite else "postgresql"
        target: Any = related_entity(rel)  # a class is hashable (mypy cannot tell)
        layout = _layout_of(target, self.layout.table.metadata, dialect)
        depth = self.depth + 1
        other = layout.table.alias(f"{layout.table.name}_r{depth}")
        inner = FilterCompiler(layout, dialect, self.fold_collation, table=other, depth=depth)
        child = None
        if not rel.belongs:
            info = field_info(layout.entity, rel.field)
            if info.is_list:
                table = layout.children[info.column]
                child = table.alias(f"{table.name}_r{depth}")
        found = self._related[rel.name] = (inner, child)
        return found

    def visit_eq(self, target: _Target, value: Any) -> Clause:
        """``field == value``."""
        if isinstance(target, _Column) and target.keyed is not None:
            return self._keyed(target.keyed, (value,))
        return self._compare(target, value, operator.eq)

    def _keyed(self, keyed: tuple[_List, str], values: Sequence[Any]) -> Clause:
        """A text mapping's value is one of ``values``: an indexed lookup of the
        ``key<US>value`` rows of its child table (only text values can match)."""
        child, key = keyed
        rows = [keyed_value(key, v) for v in values if isinstance(v, str)]
        if not rows:
            return sa.false()
        return self._some_element(child, _in(child.child.c.value, rows))

    def visit_ne(self, target: _Target, value: Any) -> Clause:
        """``field != value``; never matches a missing value (NULL != x is not true)."""
        return self._compare(target, value, operator.ne)

    def visit_lt(self, target: _Target, value: Any) -> Clause:
        """``field < value``."""
        return self._compare(target, value, operator.lt)

    def visit_le(self, target: _Target, value: Any) -> Clause:
        """``field <= value``."""
        return self._compare(target, value, operator.le)

    def visit_gt(self, target: _Target, value: Any) -> Clause:
        """``field > value``."""
        return self._compare(target, value, operator.gt)

    def visit_ge(self, target: _Target, value: Any) -> Clause:
        """``field >= value``."""
        return self._compare(target, value, operator.ge)

    def visit_in(self, target: _Target, values: tuple[Any, ...]) -> Clause:
        """``field.in_(values)``; on a list, some element is one of the values."""
        if isinstance(target, _Column):
            if target.keyed is not None:
                return self._keyed(target.keyed, values)
            return _in(target.expr, [target.bind(v) for v in values])
        if isinstance(target, _List):
            return self._some_element(target, _in(target.child.c.value, list(values)))
        if isinstance(target, _Custom):
            by_kind: dict[str, list[Any]] = {}
            for v in values:
                by_kind.setdefault(_kind_of(v), []).append(v)
            if not by_kind:
                return sa.false()
            return sa.or_(
                *(
                    self._guarded(
                        target,
                        kind,
                        self._custom_value(target, kind).in_([self._custom_bind(v) for v in vs]),
                    )
                    for kind, vs in by_kind.items()
                )
            )
        raise self._unsupported(target, Op.IN)

    def visit_contains(self, target: _Target, value: Any) -> Clause:
        """A list has the element ``value``; a text has the substring ``value``."""
        if isinstance(target, _Column):
            return self._substring(target.expr, target.bind(value))
        if isinstance(target, _List):
            return self._some_element(target, target.child.c.value == value)
        if isinstance(target, _Custom):
            kind = _kind_of(value)
            in_array = sa.and_(
                self._custom_type_is(target, "array"), self._array_has(target, kind, value)
            )
            if kind != "text":
                return in_array
            text = self._custom_value(target, "text")
            return sa.or_(
                in_array, sa.and_(self._custom_is(target, "text"), self._substring(text, value))
            )
        raise self._unsupported(target, Op.CONTAINS)

    def visit_icontains(self, target: _Target, value: str) -> Clause:
        """The text (or some text element) contains ``value``, ignoring case (Unicode)."""
        folded = value.lower()
        return self._text_test(
            target, Op.ICONTAINS, lambda e: self._substring(self._fold(e), folded)
        )

    def visit_startswith(self, target: _Target, value: str) -> Clause:
        """The text (or some text element) starts with ``value``, case-sensitively."""
        return self._text_test(target, Op.STARTSWITH, lambda e: self._prefix(e, value))

    def visit_within_km(self, cond: Cond) -> Clause:
        """``F.address.within_km``: an index-friendly bounding box on the coordinate columns,
        then the exact test of :mod:`crmkit.geo`, spelled in the same operation order."""
        lat_t = self._target(f"{cond.field}.latitude")
        lon_t = self._target(f"{cond.field}.longitude")
        assert isinstance(lat_t, _Column)
        assert isinstance(lon_t, _Column)
        lat, lon, km = cond.value
        box = geo.bounding_box(lat, lon, km)

        def bound(t: _Column, v: float) -> Any:
            return sa.literal(t.bind(Decimal(repr(v))))

        parts: list[Clause] = [
            lat_t.raw.is_not(None),
            lat_t.expr >= bound(lat_t, box.min_lat),
            lat_t.expr <= bound(lat_t, box.max_lat),
        ]
        if box.lon_ranges:
            parts.append(
                sa.or_(
                    *(
                        sa.and_(lon_t.expr >= bound(lon_t, lo), lon_t.expr <= bound(lon_t, hi))
                        for lo, hi in box.lon_ranges
                    )
                )
            )
        deg = sa.literal(geo.RADIANS_PER_DEGREE, sa.Float())
        phi = sa.cast(lat_t.raw, sa.Float()) * deg
        lam = sa.cast(lon_t.raw, sa.Float()) * deg
        cos_phi = sa.func.cos(phi, type_=sa.Float())
        cx, cy, cz = (sa.literal(c, sa.Float()) for c in geo.unit_vector(lat, lon))
        dx = cos_phi * sa.func.cos(lam, type_=sa.Float()) - cx
        dy = cos_phi * sa.func.sin(lam, type_=sa.Float()) - cy
        dz = sa.func.sin(phi, type_=sa.Float()) - cz
        chord = ((dx * dx) + (dy * dy)) + (dz * dz)
        parts.append(chord <= sa.literal(geo.chord_limit(km), sa.Float()))
        return sa.and_(*parts)

    def visit_exists(self, target: _Target, value: Any = None) -> Clause:
        """The field has a value: not NULL; for a list, not empty; for JSON, not null/[]."""
        if isinstance(target, _Column):
            return target.raw.is_not(None)
        if isinstance(target, _List):
            child = target.child
            return sa.exists(
                sa.select(sa.literal(1)).select_from(child).where(child.c.owner_id == target.owner)
            )
        if isinstance(target, _Object):
            return target.flag.is_(sa.true())
        typ = self._custom_type(target)
        return sa.and_(
            typ.is_not(None),
            typ != ("null"),
            sa.or_(typ != "array", self._array_length(target) > 0),
        )

    # --- shared pieces ---------------------------------------------------------------------

    def _compare(self, target: _Target, value: Any, op: Compare) -> Clause:
        if isinstance(target, _Column):
            result: Clause = op(target.expr, target.bind(value))
            return result
        if isinstance(target, _Custom):
            kind = _kind_of(value)
            custom: Clause = op(self._custom_value(target, kind), self._custom_bind(value))
            return self._guarded(target, kind, custom)
        raise self._unsupported(target, Op.EQ)

    def _guarded(self, target: _Custom, kind: str, condition: Clause) -> Clause:
        # SQLite compares JSON values of any kind, so test the kind; on PostgreSQL the CASE
        # in _custom_value already yields NULL for another kind
        if self.sqlite:
            return sa.and_(self._custom_is(target, kind), condition)
        return condition

    def _text_test(self, target: _Target, op: Op, test: Callable[[Clause], Clause]) -> Clause:
        if isinstance(target, _Column):
            return test(target.expr)
        if isinstance(target, _List):
            return self._some_element(target, test(target.child.c.value))
        if isinstance(target, _Custom):
            scalar = sa.and_(
                self._custom_is(target, "text"), test(self._custom_value(target, "text"))
            )
            return sa.or_(scalar, self._array_any_text(target, test))
        raise self._unsupported(target, op)

    def _some_element(self, target: _List, condition: Clause) -> Clause:
        # "id IN (SELECT owner_id ... WHERE value = ?)": the value index drives the lookup on
        # both dialects (a correlated EXISTS makes SQLite scan the parent table instead).
        child = target.child
        return target.owner.in_(sa.select(child.c.owner_id).where(condition))

    def _substring(self, expr: Clause, needle: Any) -> Clause:
        func = sa.func.instr if self.sqlite else sa.func.strpos
        result: Clause = func(expr, needle) > 0
        return result

    def _prefix(self, expr: Clause, text: str) -> Clause:
        if self.sqlite:
            return expr.op("GLOB", return_type=sa.Boolean())(glob_prefix(text))
        result: Clause = sa.func.starts_with(expr, text)
        return result

    def _fold(self, expr: Clause) -> Clause:
        if self.sqlite:
            self._needs_fold = True
            result: Clause = getattr(sa.func, FOLD_FUNCTION)(expr)
            return result
        if self.fold_collation is not None:
            expr = expr.collate(self.fold_collation)
        else:
            expr = expr.collate("default")
        lowered: Clause = sa.func.lower(expr)
        return lowered

    # --- custom (JSON) fields ----------------------------------------------------------------

    # Keys and JSON type names are rendered as SQL literals, not bound parameters: an
    # expression index (``crm.schema.define_field(..., indexed=True)``) only matches a
    # query whose expression is textually the same. Keys are checked to be letters,
    # digits, "_" and "-" (``check_key``), so they cannot break out of the literal.

    def _path(self, target: _Custom) -> Clause:
        return _sql_text(f'$."{target.key}"')

    def _key(self, target: _Custom) -> Clause:
        return _sql_text(target.key)

    def _json(self, target: _Custom) -> Clause:
        result: Clause = target.column.op("->", return_type=JSONB())(self._key(target))
        return result

    def _custom_type(self, target: _Custom) -> Clause:
        if self.sqlite:
            result: Clause = sa.func.json_type(target.column, self._path(target))
        else:
            result = sa.func.jsonb_typeof(self._json(target))
        return result

    def _custom_type_is(self, target: _Custom, json_type: str) -> Clause:
        result: Clause = self._custom_type(target) == _sql_text(json_type)
        return result

    def _custom_is(self, target: _Custom, kind: str) -> Clause:
        typ = self._custom_type(target)
        if self.sqlite:
            return typ.in_([_sql_text(k) for k in _SQLITE_KINDS[kind]])
        result: Clause = typ == _sql_text(_PG_KINDS[kind])
        return result

    def _custom_value(self, target: _Custom, kind: str) -> Clause:
        """The value as SQL of ``kind`` (NULL on PostgreSQL when the stored kind differs)."""
        if self.sqlite:
            result: Clause = sa.func.json_extract(target.column, self._path(target))
            return result
        text: Clause = target.column.op("->>", return_type=sa.Text())(self._key(target))
        if kind == "text":
            return sa.case((self._custom_is(target, "text"), text)).collate("C")
        cast_to: Any = sa.Numeric() if kind == _NUMBER else sa.Boolean()
        return sa.case((self._custom_is(target, kind), sa.cast(text, cast_to)))

    def _custom_bind(self, value: Any) -> Any:
        if isinstance(value, bool):
            return sa.literal(value, sa.Boolean())
        if isinstance(value, Decimal) and self.sqlite:
            return float(value)
        if isinstance(value, int | float | Decimal) and not self.sqlite:
            return sa.literal(Decimal(str(value)), sa.Numeric())
        return value

    def _array_length(self, target: _Custom) -> Clause:
        if self.sqlite:
            result: Clause = sa.func.json_array_length(target.column, self._path(target))
            return result
        return sa.func.jsonb_array_length(self._array_or_empty(target))

    def _array_or_empty(self, target: _Custom) -> Clause:
        # PostgreSQL's array functions raise on a non-array: feed them [] instead
        return sa.case(
            (self._custom_type_is(target, "array"), self._json(target)),
            else_=sa.cast(sa.literal("[]"), JSONB()),
        )

    def _array_has(self, target: _Custom, kind: str, value: Any) -> Clause:
        if self.sqlite:
            each = sa.func.json_each(target.column, self._path(target)).table_valued(
                "value", "type"
            )
            return sa.exists(
                sa.select(sa.literal(1))
                .select_from(each)
                .where(
                    each.c.type.in_(_SQLITE_KINDS[kind]), each.c.value == self._custom_bind(value)
                )
            )
        probe = json.dumps([value if not isinstance(value, Decimal) else float(value)])
        result: Clause = self._json(target).op("@>", return_type=sa.Boolean())(
            sa.cast(sa.literal(probe), JSONB())
        )
        return result

    def _array_any_text(self, target: _Custom, test: Callable[[Clause], Clause]) -> Clause:
        if self.sqlite:
            each = sa.func.json_each(target.column, self._path(target)).table_valued(
                "value", "type"
            )
            return sa.and_(
                self._custom_type_is(target, "array"),
                sa.exists(
                    sa.select(sa.literal(1))
                    .select_from(each)
                    .where(each.c.type == "text", test(each.c.value))
                ),
            )
        elements = sa.func.jsonb_array_elements(self._array_or_empty(target)).table_valued("value")
        text = elements.c.value.op("#>>", return_type=sa.Text())(sa.literal_column("'{}'")).collate(
            "C"
        )
        return sa.exists(
            sa.select(sa.literal(1))
            .select_from(elements)
            .where(sa.func.jsonb_typeof(elements.c.value) == "string", test(text))
        )

    # --- field resolution ------------------------------------------------------------------

    def _unsupported(self, target: _Target, op: Op) -> ValidationError:
        return ValidationError("op", op.value, f"does not apply to {type(target).__name__}")

    def _target(self, path: str) -> _Target:
        target = self._targets.get(path)
        if target is None:
            target = self._targets[path] = self._resolve(field_info(self.entity, path))
        return target

    def _resolve(self, info: FieldInfo) -> _Target:
        table = self.table
        if info.kind == "any":
            assert info.key is not None
            return _Custom(table.c[info.column], info.key)
        if info.key is not None and info.column not in self.layout.object_fields:
            # a text value of a mapping (external_ids.salesforce)
            column = table.c[info.column]
            if self.sqlite:
                extracted: Clause = sa.func.json_extract(column, f'$."{info.key}"')
            else:
                extracted = column.op("->>", return_type=sa.Text())(info.key).collate("C")
            keyed = None
            if info.column in self.layout.keyed:
                keyed = (_List(self.layout.children[info.column], table.c.id), info.key)
            return _Column(extracted, extracted, None, keyed=keyed)
        if info.is_list:
            return _List(self.layout.children[info.column], table.c.id)
        if info.kind == "object":
            return _Object(table.c[f"has_{info.column}"])
        name = info.column if info.key is None else f"{info.column}_{info.key}"
        column = table.c[name]
        codec = self.layout.codecs[info.path]
        as_float = self.sqlite and info.kind == "decimal"
        expr: Clause = sa.cast(column, sa.Float()) if as_float else column
        return _Column(expr, column, codec, as_float, bool(column.nullable))
