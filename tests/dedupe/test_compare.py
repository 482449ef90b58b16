"""Comparisons and explanations: one field at a time, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from crmkit.dedupe import FieldRule, Rules, score_pair

ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def _level(match: Any, field: str) -> str:
    return next(f.level for f in match.fields if f.field == field)


@pytest.mark.parametrize(
    ("field", "a", "b", "level"),
    [
        # emails: provider aliases fold, case does not matter, one typo is close
        (
            "email",
            {"emails": ["Ada.Lovelace+crm@GoogleMail.com"]},
            {"email": "adalovelace@gmail.com"},
            "exact",
        ),
        ("email", {"emails": ["ADA@Example.COM "]}, {"emails": ["ada@example.com"]}, "exact"),
        (
            "email",
            {"emails": ["ada.lovelace@example.com"]},
            {"emails": ["ada.lovelaec@example.com"]},
            ">= 0.90",
        ),
        (
            "email",
            {"emails": ["ada.lovelace1@example.com"]},
            {"emails": ["ada.lovelace2@example.com"]},
            "different",
        ),
        ("email", {"emails": ["ada@example.com"]}, {"emails": ["ada@example.org"]}, "different"),
        (
            "email",
            {"emails": ["x@a.com", "ada@example.com"]},
            {"emails": ["ada@example.com"]},
            "exact",
        ),
        ("email", {"emails": []}, {"emails": ["ada@example.com"]}, "blank"),
        # phones: any format of one number is the same number
        ("phone", {"phones": ["+44 20 7946 0958"]}, {"phone": "0044 20-7946-0958"}, "exact"),
        (
            "phone",
            {"phones": ["020 7946 0958"], "country": "GB"},
            {"phones": ["+442079460958"]},
            "exact",
        ),
        ("phone", {"phones": ["(415) 555-0123"]}, {"phones": ["+1 415 555 0123"]}, "exact"),
        ("phone", {"phones": ["+1 415 555 0123"]}, {"phones": ["+1 415 555 0124"]}, ">= 0.90"),
        ("phone", {"phones": ["+1 415 555 0123"]}, {"phones": ["+1 212 999 8765"]}, "different"),
        # first names: typos, initials, accents, short-name typos
        ("first_name", {"first_name": "Jon"}, {"first_name": "John"}, ">= 0.90"),
        ("first_name", {"first_name": "A."}, {"first_name": "Ada"}, "initial"),
        ("first_name", {"first_name": "B."}, {"first_name": "Ada"}, "different"),
        ("first_name", {"first_name": "Zoë"}, {"first_name": "ZOE"}, "exact"),
        ("first_name", {"first_name": "Noé"}, {"first_name": "Ne"}, ">= 0.80"),
        ("first_name", {"first_name": "Leo"}, {"first_name": "Elo"}, ">= 0.80"),
        ("first_name", {"first_name": "Charles"}, {"first_name": "Ada"}, "different"),
        # companies: legal forms and word order do not matter
        ("company", {"company": "Acme Corp"}, {"company": "ACME Corporation"}, "exact"),
        ("company", {"company": "Müller GmbH & Co. KG"}, {"company": "Muller"}, "exact"),
        ("company", {"company": "Acme Robotics"}, {"company": "Robotics Acme Ltd"}, "exact"),
        # postcodes compare without spaces, cities with typos
        ("postal_code", {"postal_code": "SW1A 1AA"}, {"postal_code": "sw1a1aa"}, "exact"),
        ("city", {"city": "München"}, {"city": "Munchen"}, "exact"),
        ("city", {"city": "Frankfurt"}, {"city": "Frankfrut"}, ">= 0.90"),
        ("country", {"country": "Deutschland"}, {"country": "DE"}, "exact"),
    ],
)
def test_field_comparison_levels(
    field: str, a: dict[str, Any], b: dict[str, Any], level: str
) -> None:
    match = score_pair({**ADA, **a}, {**ADA, **b})
    assert _level(match, field) == level, match.explain()


def test_swapped_names_compare_crossed_and_say_so() -> None:
    match = score_pair(
        {"first_name": "Ada", "last_name": "Lovelace"},
        {"first_name": "Lovelace", "last_name": "Ada"},
    )
    first = next(f for f in match.fields if f.field == "first_name")
    assert first.swapped_with == "last_name"
    assert first.level == "exact"
    assert "(vs last_name)" in match.explain()


def test_a_clearly_different_first_name_rules_a_pair_out() -> None:
    # relatives share a surname, a landline and an address
    match = score_pair(
        {"first_name": "Ada", "last_name": "Lovelace", "phones": ["+442079460958"]},
        {"first_name": "Byron", "last_name": "Lovelace", "phones": ["+442079460958"]},
    )
    assert match.vetoed_by == "first_name"
    assert match.probability == 0.0
    assert "ruled out: first_name differs" in match.explain()


def test_explanations_name_every_field_its_values_and_weights() -> None:
    match = score_pair(
        {"id": "a", "first_name": "Ada", "last_name": "Lovelace", "emails": ["ada@example.com"]},
        {"id": "b", "first_name": "ADA", "last_name": "Lovelace", "emails": ["Ada@example.com"]},
    )
    assert (match.a, match.b) == ("a", "b")
    assert match.probability > 0.99
    assert match.matched[0] == "email"  # strongest first
    email = next(f for f in match.fields if f.field == "email")
    assert (email.a, email.b, email.similarity) == ("ada@example.com", "ada@example.com", 1.0)
    assert email.weight > 0
    text = match.explain()
    for field in ("email", "phone", "first_name", "last_name", "company", "city"):
        assert field in text
    assert "blank" in text  # phone


def test_a_different_value_explains_with_its_real_similarity() -> None:
    match = score_pair(
        {"first_name": "Ada", "last_name": "Lovelace", "city": "Paris"},
        {"first_name": "Ada", "last_name": "Lovelace", "city": "Parma"},
    )
    city = next(f for f in match.fields if f.field == "city")
    assert city.level == "different"
    assert 0.5 < (city.similarity or 0) < 0.9  # not the 0 the bulk cut-off returns
    assert city.weight < 0


def test_weights_are_configurable() -> None:
    rules = Rules.contacts()
    loud_city = rules.evolve(
        fields=tuple(
            FieldRule.from_dict({**f.to_dict(), "m": [0.98, 0.01, 0.01], "u": [0.001, 0.01, 0.989]})
            if f.field == "city"
            else f
            for f in rules.fields
        )
    )
    a = {"first_name": "Ada", "last_name": "Lovelace", "city": "London"}
    assert score_pair(a, a, loud_city).weight > score_pair(a, a, rules).weight


def test_custom_fields_are_compared_as_text() -> None:
    rules = Rules.contacts().evolve(
        fields=(
            *Rules.contacts().fields,
            FieldRule(field="badge", method="exact", m=(0.9, 0.1), u=(0.001, 0.999)),
        )
    )
    match = score_pair({**ADA, "badge": "X-1"}, {**ADA, "badge": "x-1 "}, rules)
    assert _level(match, "badge") == "exact"


@pytest.mark.parametrize(
    ("method", "field", "a", "b", "level"),
    [
        ("phonetic", "last_name", "Stephen", "Steven", "exact"),
        ("phonetic", "last_name", "Catherine", "Kathryn", "exact"),
        ("phonetic", "last_name", "Smith", "Smyth", "exact"),
        ("phonetic", "last_name", "Smith", "Jones", "different"),
        ("phone_sections", "phone", "+442079460958", "+442079461234", ">= 0.60"),
        ("phone_sections", "phone", "+442079460958", "+442079460958", "exact"),
        ("phone_sections", "phone", "+442079460958", "+14155550123", "different"),
    ],
)
def test_phonetic_and_phone_section_methods(
    method: str, field: str, a: str, b: str, level: str
) -> None:
    levels = (1.0,) if method == "phonetic" else (1.0, 0.6)
    sizes = len(levels) + 1
    rule = FieldRule(
        field=field,
        method=method,
        levels=levels,
        m=tuple([0.9 / (sizes - 1)] * (sizes - 1) + [0.1]),
        u=tuple([0.05 / (sizes - 1)] * (sizes - 1) + [0.95]),
    )
    rules = Rules.contacts().evolve(
        fields=tuple(rule if f.field == field else f for f in Rules.contacts().fields),
        swap=(),
    )
    key = "last_name" if field == "last_name" else "phones"
    value_a: Any = a if key == "last_name" else [a]
    value_b: Any = b if key == "last_name" else [b]
    match = score_pair(
        {"first_name": "Ada", key: value_a}, {"first_name": "Ada", key: value_b}, rules
    )
    assert _level(match, field) == level, match.explain()
