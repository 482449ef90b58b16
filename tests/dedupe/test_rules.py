"""Matching rules: readable, serializable, validated."""

from __future__ import annotations

import json
from typing import Any

import pytest

import crmkit
from crmkit.dedupe import FieldRule, Rules, blocking_keys


@pytest.mark.parametrize("rules", [Rules.contacts(), Rules.accounts()])
def test_rules_round_trip_through_plain_json(rules: Rules) -> None:
    data = json.loads(json.dumps(rules.to_dict()))
    assert Rules.from_dict(data) == rules


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "robot"}, "rules.kind"),
        ({"blocking": ["shoe_size"]}, "rules.blocking"),
        ({"blocking": []}, "rules.blocking"),
        ({"threshold": 1.5}, "rules.threshold"),
        ({"prior": 0}, "rules.prior"),
        ({"window": 1}, "rules.window"),
        ({"swap": [["first_name", "shoe_size"]]}, "rules.swap"),
        ({"colour": "red"}, "rules"),
    ],
)
def test_invalid_rules_raise_validation_error(change: dict[str, Any], field: str) -> None:
    with pytest.raises(crmkit.ValidationError) as info:
        Rules.from_dict({**Rules.contacts().to_dict(), **change})
    assert info.value.field == field


@pytest.mark.parametrize(
    "change",
    [
        {"method": "soundex-ish"},
        {"levels": [0.8, 0.9]},
        {"m": [0.5]},
        {"u": [0.0, 0.5, 0.5]},
        {"blank": "maybe"},
    ],
)
def test_invalid_field_rules_raise_validation_error(change: dict[str, Any]) -> None:
    base = {
        "field": "city",
        "method": "jaro_winkler",
        "levels": [1.0, 0.9],
        "m": [0.8, 0.1, 0.1],
        "u": [0.05, 0.02, 0.93],
    }
    FieldRule.from_dict(base)
    with pytest.raises(crmkit.ValidationError):
        FieldRule.from_dict({**base, **change})


def test_field_rule_weights_are_log_likelihood_ratios() -> None:
    rule = FieldRule(field="x", method="exact", m=(0.8, 0.2), u=(0.1, 0.9))
    assert rule.level_names == ("exact", "different")
    assert rule.weights[0] == pytest.approx(3.0)
    assert rule.blank_weight == 0.0
    assert (
        FieldRule(
            field="x", method="exact", m=(0.8, 0.2), u=(0.1, 0.9), blank="disagree"
        ).blank_weight
        < 0
    )


def test_blocking_keys_survive_swapped_names_and_formats() -> None:
    one = blocking_keys(
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "emails": ["Ada.Lovelace@gmail.com"],
            "phones": ["+44 20 7946 0958"],
        }
    )
    two = blocking_keys(
        {
            "first_name": "Lovelace",
            "last_name": "ada",
            "emails": ["adalovelace@googlemail.com"],
            "phones": ["0044 2079460958"],
        }
    )
    assert "email:adalovelace@gmail.com" in one & two
    assert "phone:+442079460958" in one & two
    assert any(k.startswith("name:") for k in one & two)
    assert blocking_keys({"first_name": "Ada"}) == set()
