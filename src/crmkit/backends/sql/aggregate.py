"""``Store.aggregate`` in SQL: one ``SELECT ... GROUP BY`` per call.

Groups are the field's column (a date or datetime truncated to its day, week, month or
year in UTC: ``substr`` of SQLite's ISO text - ``date(day, '-6 days', 'weekday 1')`` for
the Monday of the week - and ``date_trunc`` on PostgreSQL, whose weeks start on Monday too;
a list field is its child table, outer-joined so that a record with no element forms the
``None`` group), metrics are ``COUNT``,
``SUM``, ``MIN`` and ``MAX``. PostgreSQL's ``numeric`` arithmetic is exact. SQLite has no
decimal type (crmkit stores decimals as their exact text, see
:mod:`crmkit.backends.sql.schema`) and its ``SUM``/``MIN``/``MAX`` would read that text as
binary floating point, so decimal metrics run in small aggregate functions registered on
the connection that add and compare ``Decimal`` values exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmkit.aggregation import EXACT, custom_value
from crmkit.backends.sql.compile import _Custom
from crmkit.entities.schema import field_info

if TYPE_CHECKING:
    from crmkit.aggregation import Group, Metric
    from crmkit.backends.sql.backend import SqlStore
    from crmkit.query import Expr

__all__ = ["aggregate_statement", "install_decimal_aggregates", "read_rows"]

_SQLITE_TRUNC = {"day": (10, ""), "month": (7, "-01"), "year": (4, "-01-01")}


class _DecimalSum:
    """SQLite aggregate: the exact sum of decimal text values (``None`` when none is set)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            number = Decimal(str(value))
            self.total = number if self.total is None else EXACT.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _DecimalMin:
    """SQLite aggregate: the smallest decimal text value, compared as a number."""

    def __init__(self) -> None:
        self.best: Decimal | None = None
        self.text: str | None = None

    def better(self, number: Decimal, best: Decimal) -> bool:
        return number < best

    def step(self, value: Any) -> None:
        if value is not None:
            number = Decimal(str(value))
            if self.best is None or self.better(number, self.best):
                self.best, self.text = number, str(value)

    def finalize(self) -> str | None:
        return self.text


class _DecimalMax(_DecimalMin):
    """SQLite aggregate: the largest decimal text value, compared as a number."""

    def better(self, number: Decimal, best: Decimal) -> bool:
        return number > best


_SQLITE_DECIMAL = {"sum": "crmkit_dec_sum", "min": "crmkit_dec_min", "max": "crmkit_dec_max"}


def install_decimal_aggregates(conn: Connection) -> None:
    """Register the exact decimal aggregates on a SQLite connection."""
    raw: Any = conn.connection.dbapi_connection
    raw.create_aggregate(_SQLITE_DECIMAL["sum"], 1, _DecimalSum)
    raw.create_aggregate(_SQLITE_DECIMAL["min"], 1, _DecimalMin)
    raw.create_aggregate(_SQLITE_DECIMAL["max"], 1, _DecimalMax)


def _truncated(column: Any, kind: str, trunc: str, sqlite: bool) -> Any:
    if sqlite and trunc == "week":  # back 6 days, then on to the next Monday (or that day)
        return sa.func.date(sa.func.substr(column, 1, 10), "-6 days", "weekday 1")
    if sqlite:  # ISO text in UTC: the period's start is a prefix plus a constant
        length, suffix = _SQLITE_TRUNC[trunc]
        prefix = sa.func.substr(column, 1, length)
        return prefix if not suffix else prefix.op("||")(sa.literal(suffix))
    if kind == "datetime":
        column = sa.func.timezone("UTC", column)
    return sa.cast(sa.func.date_trunc(trunc, column), sa.Date())


_CUSTOM_SQL = {"int": "number", "decimal": "number", "bool": "bool"}


def _custom_target(store: SqlStore[Any], path: str) -> _Custom:
    target = store.compiler._target(path)
    assert isinstance(target, _Custom)
    return target


def _custom_metric_value(store: SqlStore[Any], path: str, kind: str, sqlite: bool) -> Any:
    """A defined custom field's value in SQL, by the compiler's JSON extraction: numbers
    as ``numeric`` on PostgreSQL (exact), SQLite's JSON numbers for the decimal folds."""
    return store.compiler._custom_value(_custom_target(store, path), _CUSTOM_SQL.get(kind, "text"))


def _custom_group(
    store: SqlStore[Any], source: Any, g: Group, i: int, sqlite: bool
) -> tuple[Any, Any]:
    """The (possibly joined) source and the group expression of a defined custom field."""
    assert g.kind is not None
    compiler = store.compiler
    target = _custom_target(store, g.path)
    if g.kind == "text_list":  # a multi-enum: one row per element, none -> the None group
        if sqlite:
            each: Any = sa.func.json_each(target.column, compiler._path(target))
            elements = each.table_valued("value").alias(f"l{i}")
        else:
            each = sa.func.jsonb_array_elements_text(compiler._array_or_empty(target))
            elements = each.table_valued("value").lateral(f"l{i}")
        return source.outerjoin(elements, sa.true()), elements.c.value
    expr = compiler._custom_value(target, _CUSTOM_SQL.get(g.kind, "text"))
    if g.trunc is not None:
        if not sqlite:  # ISO text: a date or an instant in UTC
            typ: Any = sa.Date() if g.kind == "date" else sa.DateTime(timezone=True)
            expr = sa.cast(expr, typ)
        expr = _truncated(expr, g.kind, g.trunc, sqlite)
    return source, expr


def aggregate_statement(
    store: SqlStore[Any], where: Expr | None, group_by: Sequence[Group], metrics: Sequence[Metric]
) -> tuple[sa.Select[Any], bool]:
    """The ``SELECT`` computing the aggregate, and whether SQLite needs the fold function."""
    sqlite = store.backend.dialect == "sqlite"
    compiled = store.compiler.compile(where)
    keys: list[Any] = []
    columns: list[Any] = []
    source: Any = store.table
    for i, g in enumerate(group_by):
        if g.kind is not None:  # a defined custom field (JSON)
            source, expr = _custom_group(store, source, g, i, sqlite)
            keys.append(expr)
            columns.append(expr.label(f"g{i}"))
            continue
        target: Any = store.compiler._target(g.path)
        if field_info(store.entity, g.path).kind == "text_list":
            # an alias: a filter's own subqueries on the child table must not correlate to it
            child = store.layout.children[field_info(store.entity, g.path).column].alias(f"l{i}")
            source = source.outerjoin(child, child.c.owner_id == store.table.c.id)
            keys.append(child.c.value)
            columns.append(child.c.value.label(f"g{i}"))
            continue
        expr = target.raw
        if g.trunc is not None:
            expr = _truncated(expr, field_info(store.entity, g.path).kind, g.trunc, sqlite)
        keys.append(expr)
        columns.append(expr.label(f"g{i}"))
    for i, m in enumerate(metrics):
        if m.path is None:
            columns.append(sa.func.count().label(f"m{i}"))
            continue
        if m.kind is not None:  # a defined custom field (JSON)
            raw, kind = _custom_metric_value(store, m.path, m.kind, sqlite), m.kind
        else:
            raw = store.compiler._target(m.path).raw  # type: ignore[union-attr]
            kind = field_info(store.entity, m.path).kind
        if m.op == "count":
            metric: Any = sa.func.count(raw)
        elif sqlite and kind == "decimal":
            metric = getattr(sa.func, _SQLITE_DECIMAL[m.op])(raw)
        else:
            metric = getattr(sa.func, m.op)(raw)
        columns.append(metric.label(f"m{i}"))
    stmt = sa.select(*columns).select_from(source)
    if compiled.clause is not None:
        stmt = stmt.where(compiled.clause)
    if keys:
        stmt = stmt.group_by(*keys)
    return stmt, compiled.needs_fold


def _decode(store: SqlStore[Any], path: str, value: Any, kind: str | None = None) -> Any:
    if value is None:
        return None
    if kind is not None:  # a defined custom field
        return custom_value(kind, value)
    kind = field_info(store.entity, path).kind
    codec = store.layout.codecs.get(path)
    if kind == "decimal":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if kind == "duration":
        return dt.timedelta(milliseconds=int(value))
    if kind == "int":
        return int(value)
    return value if codec is None or codec.decode is None else codec.decode(value)


def read_rows(
    store: SqlStore[Any], rows: Sequence[Any], group_by: Sequence[Group], metrics: Sequence[Metric]
) -> list[dict[str, Any]]:
    """Result rows in crmkit's types."""
    out: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {}
        for i, g in enumerate(group_by):
            value = row[i]
            if g.trunc is not None and value is not None:
                item[g.name] = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            else:
                item[g.name] = _decode(store, g.path, value, g.kind)
        for j, m in enumerate(metrics):
            value = row[len(group_by) + j]
            if m.op == "count" or m.path is None:
                item[m.name] = int(value or 0)
            else:
                item[m.name] = _decode(store, m.path, value, m.kind)
        out.append(item)
    return out
