"""Pure logic of crmkit.analytics: quintile scores, periods, week starts and row types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from crmkit.aggregation import Group, check_spec, week_start
from crmkit.analytics import PriorityRow, RfmRow, period_starts, quintile_scores
from crmkit.entities import Deal, Interaction
from crmkit.errors import ValidationError

UTC = dt.UTC


def test_quintiles_of_distinct_values_give_each_fifth_a_score() -> None:
    values = {str(i): i for i in range(10)}
    assert list(quintile_scores(values).values()) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert list(quintile_scores(values, higher_is_better=False).values()) == [
        5, 5, 4, 4, 3, 3, 2, 2, 1, 1,
    ]  # fmt: skip


def test_quintile_ties_share_the_lowest_score_of_their_ranks() -> None:
    # worse-than counts: 0, 0, 0, 3, 4 of n=5 -> 1 + 5*w//5
    assert quintile_scores({"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}) == {
        "a": 1, "b": 1, "c": 1, "d": 4, "e": 5,
    }  # fmt: skip
    assert quintile_scores({"only": Decimal(7)}) == {"only": 1}
    assert quintile_scores({"a": 5, "b": 5}) == {"a": 1, "b": 1}
    assert quintile_scores({}) == {}


def test_week_starts_on_monday() -> None:
    assert week_start(dt.date(2024, 3, 4)) == dt.date(2024, 3, 4)  # a Monday
    assert week_start(dt.date(2024, 3, 10)) == dt.date(2024, 3, 4)  # Sunday
    assert week_start(dt.date(2024, 1, 2)) == dt.date(2024, 1, 1)


def test_period_starts_cover_the_range() -> None:
    since = dt.datetime(2024, 2, 28, 12, tzinfo=UTC)
    until = dt.datetime(2024, 3, 12, tzinfo=UTC)
    assert period_starts(since, until, "week") == [
        dt.date(2024, 2, 26),
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 11),
    ]
    assert period_starts(since, until, "month") == [dt.date(2024, 2, 1), dt.date(2024, 3, 1)]
    december = dt.datetime(2023, 12, 5, tzinfo=UTC)
    assert period_starts(december, dt.datetime(2024, 1, 2, tzinfo=UTC), "month") == [
        dt.date(2023, 12, 1),
        dt.date(2024, 1, 1),
    ]


def test_aggregate_spec_accepts_week_and_one_list_group() -> None:
    groups, _, _ = check_spec(Interaction, [Group("occurred_at", "week"), "contact_ids"], [])
    assert groups[0].name == "occurred_at:week"
    with pytest.raises(ValidationError):
        check_spec(Deal, ["contact_ids", "tags"], [])
    with pytest.raises(ValidationError):
        Group("occurred_at", "fortnight")
    with pytest.raises(ValidationError):
        check_spec(Interaction, [Group("contact_ids", "week")], [])


def test_row_helpers() -> None:
    row = PriorityRow("high", 4, 3, 1, 0, 0)
    assert row.first_response_compliance == Decimal("0.75")
    assert row.resolution_compliance is None
    rfm = RfmRow("c", dt.datetime(2024, 1, 1, tzinfo=UTC), 3, 2, Decimal(1), 5, 4, 3)
    assert rfm.score == "543"
