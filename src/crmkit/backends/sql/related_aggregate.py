"""Aggregate conditions on related records in SQL (``F.related("orders").sum(...) > x``).

A condition compiles to a grouped subquery over the related rows matching the inner
filter, one group per link value (the record's id; each element of a list link):

- when the comparison does not hold for a record without related rows (``count() >= 3``,
  ``sum(...) > 0``, any ``min``/``max``): ``id IN (SELECT link ... GROUP BY link HAVING
  cond)``;
- when it does (``count() < 1``, ``sum(...) <= 100``): ``id NOT IN (SELECT link ... GROUP
  BY link HAVING NOT cond)``, so records without related rows match as well.

Sums are ``coalesce(SUM(x), 0)`` (zero when no value is set), as in
:mod:`crmkit.backends.sql.aggregate`; PostgreSQL's ``numeric`` is exact. On SQLite, where
decimals are stored as exact text, decimal sums, minimums and maximums use the exact
aggregate functions of :mod:`crmkit.backends.sql.aggregate` and the result is compared with
``crmkit_dec_cmp`` (a three-way comparison of two decimal texts as ``Decimal`` values).
The backend registers these functions on each SQLite connection it opens, and on a host's
connection before a statement that needs them (like :func:`crmkit.backends.sql.backend.fold`).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crmkit.entities.schema import field_info
from crmkit.query import COMPARISONS, RelatedAggregate, Relation

if TYPE_CHECKING:
    from crmkit.backends.sql.compile import FilterCompiler

__all__ = ["COMPARE_FUNCTION", "aggregate_clause", "decimal_compare", "install"]

#: Name of the SQLite function comparing two decimal texts exactly (-1, 0, 1 or NULL).
COMPARE_FUNCTION = "crmkit_dec_cmp"


def decimal_compare(left: Any, right: Any) -> int | None:
    """``-1``, ``0`` or ``1`` as ``Decimal(left)`` is below, equal to or above
    ``Decimal(right)``; ``None`` when either is NULL or not a number."""
    if left is None or right is None:
        return None
    try:
        a, b = Decimal(str(left)), Decimal(str(right))
    except InvalidOperation:
        return None
    return (a > b) - (a < b)


def install(dbapi_conn: Any) -> None:
    """Register the exact decimal aggregates and :data:`COMPARE_FUNCTION` on a SQLite
    DBAPI connection (other connections are left alone)."""
    if not isinstance(dbapi_conn, sqlite3.Connection):
        return
    from crmkit.backends.sql import aggregate

    # the same exact folds Repository.aggregate uses (registered there per call, on the
    # SQLAlchemy connection; a filter has no hook at execution time, so here at connect)
    folds: tuple[tuple[str, Any], ...] = (
        ("sum", aggregate._DecimalSum),
        ("min", aggregate._DecimalMin),
        ("max", aggregate._DecimalMax),
    )
    for op, fold in folds:
        dbapi_conn.create_aggregate(aggregate._SQLITE_DECIMAL[op], 1, fold)
    dbapi_conn.create_function(COMPARE_FUNCTION, 2, decimal_compare, deterministic=True)


def _measure(outer: FilterCompiler, inner: FilterCompiler, aggregate: RelatedAggregate) -> Any:
    """The comparison of the aggregate over the group's rows (``inner``'s table)."""
    compare = COMPARISONS[aggregate.compare]
    if aggregate.op == "count":
        return compare(sa.func.count(), aggregate.value)
    assert aggregate.path is not None
    target: Any = inner._target(aggregate.path)
    raw = target.raw
    kind = field_info(inner.entity, aggregate.path).kind
    if inner.sqlite and kind == "decimal":
        from crmkit.backends.sql.aggregate import _SQLITE_DECIMAL

        outer._needs_fold = True  # the functions below, on a host's connection too

        exact: Any = getattr(sa.func, _SQLITE_DECIMAL[aggregate.op])(raw)
        if aggregate.op == "sum":
            exact = sa.func.coalesce(exact, "0")
        three_way = getattr(sa.func, COMPARE_FUNCTION)(exact, str(aggregate.value))
        return compare(three_way, 0)
    metric: Any = getattr(sa.func, aggregate.op)(raw)
    if aggregate.op == "sum":
        metric = sa.func.coalesce(metric, 0)
    return compare(metric, target.bind(aggregate.value))


def aggregate_clause(
    outer: FilterCompiler,
    rel: Relation,
    inner: FilterCompiler,
    child: Any,
    condition: Any,
    aggregate: RelatedAggregate,
) -> Any:
    """The clause on ``outer``'s table of ``aggregate`` over its ``rel`` records matching
    ``condition`` (compiled by ``inner``; ``child`` is the alias of a list link's table)."""
    other = inner.table
    if child is not None:
        link = child.c.value
        source: Any = child.join(other, other.c.id == child.c.owner_id)
    else:
        link = other.c[rel.field]
        source = other
    test = _measure(outer, inner, aggregate)
    empty = aggregate.holds_empty()
    links = sa.select(link).select_from(source).where(link.is_not(None))
    if condition is not None:
        links = links.where(condition)
    if empty:  # records without related rows match: exclude the groups that fail
        links = links.group_by(link).having(sa.not_(sa.func.coalesce(test, sa.false())))
        return outer.table.c.id.not_in(links)
    return outer.table.c.id.in_(links.group_by(link).having(test))
