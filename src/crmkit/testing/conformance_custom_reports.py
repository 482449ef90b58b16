"""Conformance tests of reports on custom fields (``aggregate`` on ``custom.<name>``).

Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them
through its ``crm`` fixture. The figures of the small dataset below were computed by hand:
groups by each defined type (enum, integer, decimal, boolean, date, datetime, multi-enum),
exact decimal sums and averages, the ``None`` group of records without a value, refusals
(undefined keys, truncated text, sums of text) and what a user's view may see.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from crmkit import CRM, Contact, Role, User
from crmkit.aggregation import Group, Metric
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.query import F

__all__ = ["CustomReportsConformance"]


def _contacts(crm: CRM, alice: str | None = None, bob: str | None = None) -> None:
    """Define five custom fields and add four contacts (dan sets none of them)."""
    schema = crm.schema
    schema.define_field("contacts", "tier", "enum", choices=["gold", "silver"])
    schema.define_field("contacts", "score", "integer")
    schema.define_field("contacts", "spend", "decimal")
    schema.define_field("contacts", "vip", "boolean")
    schema.define_field("contacts", "since", "date")
    schema.define_field("contacts", "signed", "datetime")
    schema.define_field("contacts", "interests", "multi_enum", choices=["golf", "wine", "jazz"])
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        (
            "ann",
            alice,
            {
                "tier": "gold",
                "score": 10,
                "spend": "19.99",
                "vip": True,
                "since": "2024-01-15",
                "signed": "2024-03-05T12:30:00+00:00",
                "interests": ["golf", "wine"],
            },
        ),
        (
            "ben",
            alice,
            {
                "tier": "gold",
                "score": 5,
                "spend": "0.1",
                "vip": False,
                "since": "2024-01-31",
                "signed": "2024-03-21T01:00:00+02:00",
                "interests": ["golf"],
            },
        ),
        (
            "cat",
            bob,
            {
                "tier": "silver",
                "score": 7,
                "spend": 0.2,
                "vip": True,
                "since": "2024-02-03",
                "interests": [],
            },
        ),
        ("dan", bob, {}),
    ]
    for name, owner, custom in rows:
        crm.contacts.add(Contact(first_name=name, owner_id=owner, custom=custom))


class CustomReportsConformance:
    """``aggregate`` groups and measures defined custom fields like typed fields."""

    def test_custom_report_groups_by_enum_with_exact_metrics(self, crm: CRM) -> None:
        _contacts(crm)
        rows = crm.contacts.aggregate(
            group_by=["custom.tier"],
            metrics=[
                Metric.count(),
                Metric.count("custom.score"),
                Metric.sum("custom.score"),
                Metric.avg("custom.score"),
                Metric.sum("custom.spend"),
                Metric.avg("custom.spend"),
                Metric.min("custom.spend"),
                Metric.max("custom.spend"),
            ],
        )
        assert rows == [
            {
                "custom.tier": "gold",
                "count": 2,
                "count_custom.score": 2,
                "sum_custom.score": 15,
                "avg_custom.score": 7.5,
                "sum_custom.spend": Decimal("20.09"),
                "avg_custom.spend": Decimal("10.045"),
                "min_custom.spend": Decimal("0.1"),
                "max_custom.spend": Decimal("19.99"),
            },
            {
                "custom.tier": "silver",
                "count": 1,
                "count_custom.score": 1,
                "sum_custom.score": 7,
                "avg_custom.score": 7.0,
                "sum_custom.spend": Decimal("0.2"),
                "avg_custom.spend": Decimal("0.2"),
                "min_custom.spend": Decimal("0.2"),
                "max_custom.spend": Decimal("0.2"),
            },
            {
                "custom.tier": None,
                "count": 1,
                "count_custom.score": 0,
                "sum_custom.score": 0,
                "avg_custom.score": None,
                "sum_custom.spend": Decimal(0),
                "avg_custom.spend": None,
                "min_custom.spend": None,
                "max_custom.spend": None,
            },
        ]
        for row in rows:
            assert isinstance(row["sum_custom.spend"], Decimal)
            assert type(row["sum_custom.score"]) is int

    def test_custom_report_totals_are_exact(self, crm: CRM) -> None:
        _contacts(crm)
        (row,) = crm.contacts.aggregate(
            F.custom.score >= 5,
            metrics=[Metric.sum("custom.spend"), Metric.avg("custom.score")],
        )
        # as binary floats, 19.99 + 0.1 + 0.2 is not 20.29
        assert row == {"sum_custom.spend": Decimal("20.29"), "avg_custom.score": 22 / 3}

    def test_custom_report_groups_by_integer_boolean_and_date(self, crm: CRM) -> None:
        _contacts(crm)
        by_score = crm.contacts.aggregate(group_by=["custom.score"])
        assert by_score == [
            {"custom.score": 5, "count": 1},
            {"custom.score": 7, "count": 1},
            {"custom.score": 10, "count": 1},
            {"custom.score": None, "count": 1},
        ]
        assert all(type(r["custom.score"]) in (int, type(None)) for r in by_score)
        assert crm.contacts.aggregate(group_by=["custom.vip"]) == [
            {"custom.vip": False, "count": 1},
            {"custom.vip": True, "count": 2},
            {"custom.vip": None, "count": 1},
        ]
        assert crm.contacts.aggregate(
            group_by=["custom.since"], metrics=[Metric.sum("custom.score")]
        ) == [
            {"custom.since": dt.date(2024, 1, 15), "sum_custom.score": 10},
            {"custom.since": dt.date(2024, 1, 31), "sum_custom.score": 5},
            {"custom.since": dt.date(2024, 2, 3), "sum_custom.score": 7},
            {"custom.since": None, "sum_custom.score": 0},
        ]

    def test_custom_report_truncates_dates_and_datetimes(self, crm: CRM) -> None:
        _contacts(crm)
        assert crm.contacts.aggregate(
            group_by=[Group("custom.since", "month")],
            metrics=[Metric.count(), Metric.min("custom.since"), Metric.max("custom.since")],
        ) == [
            {
                "custom.since:month": dt.date(2024, 1, 1),
                "count": 2,
                "min_custom.since": dt.date(2024, 1, 15),
                "max_custom.since": dt.date(2024, 1, 31),
            },
            {
                "custom.since:month": dt.date(2024, 2, 1),
                "count": 1,
                "min_custom.since": dt.date(2024, 2, 3),
                "max_custom.since": dt.date(2024, 2, 3),
            },
            {
                "custom.since:month": None,
                "count": 1,
                "min_custom.since": None,
                "max_custom.since": None,
            },
        ]
        assert crm.contacts.aggregate(group_by=[Group("custom.since", "year")]) == [
            {"custom.since:year": dt.date(2024, 1, 1), "count": 3},
            {"custom.since:year": None, "count": 1},
        ]
        # weeks start on Monday: the 15th of January 2024 is one
        assert crm.contacts.aggregate(group_by=[Group("custom.since", "week", name="w")]) == [
            {"w": dt.date(2024, 1, 15), "count": 1},
            {"w": dt.date(2024, 1, 29), "count": 2},
            {"w": None, "count": 1},
        ]
        assert crm.contacts.aggregate(group_by=[Group("custom.signed", "week", name="w")]) == [
            {"w": dt.date(2024, 3, 4), "count": 1},
            {"w": dt.date(2024, 3, 18), "count": 1},
            {"w": None, "count": 2},
        ]
        # ben signed at 01:00 +02:00 on the 21st: the 20th in UTC
        assert crm.contacts.aggregate(
            group_by=[Group("custom.signed", "day", name="day")],
            metrics=[Metric.max("custom.signed")],
        ) == [
            {
                "day": dt.date(2024, 3, 5),
                "max_custom.signed": dt.datetime(2024, 3, 5, 12, 30, tzinfo=dt.UTC),
            },
            {
                "day": dt.date(2024, 3, 20),
                "max_custom.signed": dt.datetime(2024, 3, 20, 23, 0, tzinfo=dt.UTC),
            },
            {"day": None, "max_custom.signed": None},
        ]

    def test_custom_report_groups_a_multi_enum_by_element(self, crm: CRM) -> None:
        _contacts(crm)
        assert crm.contacts.aggregate(
            group_by=["custom.interests"], metrics=[Metric.count(), Metric.sum("custom.spend")]
        ) == [
            {"custom.interests": "golf", "count": 2, "sum_custom.spend": Decimal("20.09")},
            {"custom.interests": "wine", "count": 1, "sum_custom.spend": Decimal("19.99")},
            # cat's list is empty and dan has none
            {"custom.interests": None, "count": 2, "sum_custom.spend": Decimal("0.2")},
        ]
        assert crm.contacts.aggregate(
            F.custom.tier == "gold", group_by=["custom.tier", "custom.interests"]
        ) == [
            {"custom.tier": "gold", "custom.interests": "golf", "count": 2},
            {"custom.tier": "gold", "custom.interests": "wine", "count": 1},
        ]

    def test_custom_report_refuses_undefined_and_unsupported(self, crm: CRM) -> None:
        _contacts(crm)
        crm.contacts.add(Contact(first_name="eve", custom={"color": "red"}))
        with pytest.raises(ValidationError, match="define"):
            crm.contacts.aggregate(group_by=["custom.color"])
        with pytest.raises(ValidationError, match="define"):
            crm.contacts.aggregate(metrics=[Metric.sum("custom.color")])
        with pytest.raises(ValidationError):
            crm.contacts.aggregate(group_by=[Group("custom.tier", "month")])
        with pytest.raises(ValidationError):
            crm.contacts.aggregate(metrics=[Metric.sum("custom.tier")])
        with pytest.raises(ValidationError):
            crm.contacts.aggregate(metrics=[Metric.sum("custom.interests")])
        with pytest.raises(ValidationError):
            crm.contacts.aggregate(group_by=["custom.interests", "tags"])
        # a removed definition makes the key free-form again: refused too
        crm.schema.remove_field("contacts", "tier")
        with pytest.raises(ValidationError, match="define"):
            crm.contacts.aggregate(group_by=["custom.tier"])

    def test_custom_report_in_a_user_view(self, crm: CRM) -> None:
        role = crm.roles.add(
            Role(
                name="sales",
                permissions={"contacts": {"read": "own"}},
                hidden_fields={"contacts": ["custom.spend"]},
            )
        )
        alice = crm.users.add(User(name="Alice", role_ids=(role.id or "",)))
        bob = crm.users.add(User(name="Bob", role_ids=(role.id or "",)))
        _contacts(crm, alice.id, bob.id)
        view = crm.as_user(alice.id or "")
        assert view.contacts.aggregate(
            group_by=["custom.tier", "custom.interests"], metrics=[Metric.sum("custom.score")]
        ) == [
            {"custom.tier": "gold", "custom.interests": "golf", "sum_custom.score": 15},
            {"custom.tier": "gold", "custom.interests": "wine", "sum_custom.score": 10},
        ]
        assert crm.as_user(bob.id or "").contacts.aggregate(group_by=["custom.tier"]) == [
            {"custom.tier": "silver", "count": 1},
            {"custom.tier": None, "count": 1},
        ]
        with pytest.raises(PermissionDenied):
            view.contacts.aggregate(group_by=["custom.spend"])
        with pytest.raises(PermissionDenied):
            view.contacts.aggregate(metrics=[Metric.sum("custom.spend")])
