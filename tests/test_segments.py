"""Segment rules: checking and turning a stored rule into an expression (no backend)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from crmkit import Account, Contact, Segment
from crmkit.errors import ValidationError
from crmkit.query import F, from_dict
from crmkit.segments import segment_rule


def test_empty_rule_selects_everything() -> None:
    assert segment_rule(Segment(name="all")) == (Contact, None)
    assert segment_rule(Segment(name="all", entity="accounts")) == (Account, None)


def test_rule_round_trips_with_relative_dates() -> None:
    expr = (F.custom.tier == "gold") & F.created_at.within_last(dt.timedelta(days=30))
    entity, rule = segment_rule(Segment(name="s", rule=expr.to_dict()))
    assert entity is Contact
    assert rule == expr
    assert rule == from_dict(expr.to_dict())


@pytest.mark.parametrize(
    ("entity", "rule", "field", "named"),
    [
        ("contacts", {"field": "titel", "op": "eq", "value": "x"}, "segment.rule.field", "titel"),
        ("accounts", {"field": "first_name", "op": "eq", "value": "x"}, "segment.rule", "first"),
        ("contacts", {"field": "tags", "op": "lt", "value": "x"}, "segment.rule.tags", "tags"),
        ("contacts", {"field": "title", "op": "nope", "value": 1}, "segment.rule.query", "nope"),
        ("contacts", {"or": []}, "segment.rule.query.or", "or"),
        ("contacts", {"field": "created_at", "op": "ge", "value": {"when": 1}}, "segment.rule", ""),
        ("deals", {}, "segment.entity", "deals"),
    ],
)
def test_bad_rules_name_the_field(
    entity: str, rule: dict[str, Any], field: str, named: str
) -> None:
    segment = Segment(name="bad", entity=entity, rule=rule)
    with pytest.raises(ValidationError) as info:
        segment_rule(segment)
    assert info.value.field.startswith(field)
    assert named in str(info.value)
