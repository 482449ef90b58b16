"""Aggregate conditions on related records: building, validation, storage and SQL shape
(behaviour on every backend: :mod:`crmkit.testing.conformance_related`)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmkit import Account, Contact
from crmkit.backends.sql.compile import FilterCompiler
from crmkit.backends.sql.related_aggregate import decimal_compare
from crmkit.backends.sql.schema import EntityLayout, make_metadata
from crmkit.errors import ValidationError
from crmkit.query import F, Op, Related, RelatedAggregate, bind, from_dict, reusable

MINUTE = dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    "rule",
    [
        F.related("deals").count() >= 2,
        F.related("deals", F.stage == "won").count() < 1,
        F.related("orders", F.total.currency == "EUR").sum("total.amount") > Decimal("999.99"),
        F.related("interactions").sum("duration") == 30 * MINUTE,
        F.related("deals").min("probability") <= Decimal("0.5"),
        F.related("deals").max("amount.amount") != 7,
        ~(F.related("tickets").count() == 0),
    ],
)
def test_rules_round_trip_through_plain_data(rule: object) -> None:
    assert from_dict(rule.to_dict()) == rule  # type: ignore[attr-defined]


def test_the_node_holds_the_aggregate() -> None:
    rule = F.related("deals", F.stage == "won").sum("amount.amount") > 100
    assert rule == Related(
        "deals", F.stage == "won", RelatedAggregate("sum", "amount.amount", Op.GT, 100)
    )
    assert rule.to_dict()["aggregate"] == {
        "op": "sum",
        "compare": "gt",
        "path": "amount.amount",
        "value": 100,
    }
    assert not reusable(rule)  # a number: never memoized
    assert reusable(F.related("deals", F.stage == "won"))


def test_records_without_related_records() -> None:
    count = RelatedAggregate("count", None, Op.LT, 1)
    assert count.zero() == 0
    assert count.holds_empty()
    assert not RelatedAggregate("count", None, Op.GE, 1).holds_empty()
    assert RelatedAggregate("sum", "duration", Op.LE, MINUTE).zero() == dt.timedelta(0)
    assert RelatedAggregate("sum", "x", Op.EQ, Decimal(0)).holds_empty()
    assert RelatedAggregate("sum", "x", Op.EQ, Decimal(0)).holds(None)  # nothing set: zero
    assert not RelatedAggregate("min", "x", Op.LT, 5).holds_empty()
    assert not RelatedAggregate("max", "x", Op.NE, 5).holds(None)


def test_links_from_grouped_rows() -> None:
    rows = [{"k": "a", "value": 3}, {"k": "b", "value": 1}, {"k": None, "value": 9}]
    assert RelatedAggregate("count", None, Op.GE, 2).links(rows, "k") == (False, {"a"})
    # holds for no related records: the failing groups are excluded instead
    assert RelatedAggregate("count", None, Op.LT, 2).links(rows, "k") == (True, {"a"})


def test_bind_converts_values_and_checks_the_relation() -> None:
    bound = bind(F.related("deals").sum("amount.amount") > 5, Contact)
    assert isinstance(bound, Related)
    assert bound.aggregate is not None
    assert bound.aggregate.value == Decimal(5)
    assert isinstance(bound.aggregate.value, Decimal)
    with pytest.raises(ValidationError):
        bind(F.related("account").count() > 0, Contact)  # "belongs to": one record
    with pytest.raises(ValidationError):
        bind(F.related("deals").sum("cycle_time") > 5, Contact)  # a duration, not a number
    with pytest.raises(ValidationError):
        bind(F.related("deals").sum("amount.amount") > MINUTE, Contact)
    assert bind(F.related("deals").count() > 0, Account) is not None
    with pytest.raises(ValidationError):
        bind(F.related("friends").count() > 0, Account)


@pytest.mark.parametrize(
    "build",
    [
        lambda: F.related("deals").sum("nope"),
        lambda: F.related("deals").sum("name"),
        lambda: F.related("deals").min("tags"),
        lambda: F.related("deals").sum(""),
        lambda: F.related("deals").count() > 1.5,
        lambda: F.related("deals").count() > None,
        lambda: F.related("deals").sum("amount.amount") > float("inf"),
        lambda: F.related("deals").sum("amount.amount") > Decimal("NaN"),
        lambda: F.related("deals").sum("amount.amount") > "5",
        lambda: (F.related("deals").count() > 1).count(),
    ],
)
def test_bad_rules_fail_when_built(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "data",
    [
        {"related": "deals", "aggregate": {"op": "avg", "compare": "gt", "value": 1}},
        {"related": "deals", "aggregate": {"op": "count", "compare": "in", "value": 1}},
        {
            "related": "deals",
            "aggregate": {"op": "count", "path": "x", "compare": "gt", "value": 1},
        },
        {"related": "deals", "aggregate": {"op": "sum", "compare": "gt", "value": 1}},
        {"related": "deals", "aggregate": {"op": "count", "compare": "gt"}},
        {"related": "deals", "aggregate": {"op": "count", "compare": "gt", "value": 1, "x": 1}},
        {"related": "deals", "aggregate": []},
    ],
)
def test_bad_stored_rules(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        from_dict(data)


def _sql(rule: object) -> str:
    compiler = FilterCompiler(EntityLayout(Contact, make_metadata(), "sqlite"), "sqlite")
    clause = compiler.compile(bind(rule, Contact)).clause  # type: ignore[arg-type]
    return str(clause)


def test_sql_shape() -> None:
    some = _sql(F.related("deals").count() >= 2)
    assert " IN (SELECT" in some
    assert "NOT IN" not in some
    assert "HAVING count(*) >=" in some
    none = _sql(F.related("tickets").count() < 1)
    assert "NOT IN (SELECT" in none
    assert "HAVING NOT" in none
    exact = _sql(F.related("deals").sum("amount.amount") > 1)
    assert "crmkit_dec_cmp(coalesce(crmkit_dec_sum(" in exact


def test_decimal_compare() -> None:
    assert decimal_compare("0.3", "0.30") == 0
    assert decimal_compare("0.30000000000000001", "0.3") == 1
    assert decimal_compare("-1", "1E+1") == -1
    assert decimal_compare(None, "1") is None
    assert decimal_compare("x", "1") is None


def test_python_sums_are_exact_beyond_the_default_context() -> None:
    """The sums computed in Python (the memory backend's, the reference evaluator's) keep
    every digit, as SQL's do: Python's default decimal context keeps 28."""
    from crmkit.aggregation import Metric, aggregate_records
    from crmkit.entities import Deal, Money
    from crmkit.testing import reference

    deals = [
        Deal(name=str(i), amount=Money(amount=Decimal(a), currency="EUR"), contact_ids=("c",))
        for i, a in enumerate(["1E+25", "0.001"])
    ]
    exact = Decimal("10000000000000000000000000.001")
    [row] = aggregate_records(Deal, deals, (), [Metric.sum("amount.amount")])
    assert row["sum_amount.amount"] == exact
    rule = F.related("deals").sum("amount.amount") == exact
    assert isinstance(rule, Related)
    assert rule.aggregate is not None
    assert reference._aggregate_holds(rule.aggregate, deals)
