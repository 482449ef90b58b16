"""Survivorship rules and merge snapshots."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import attrs
import pytest

import crmkit
from crmkit import Account, Address, Contact, Interaction
from crmkit.dedupe import Override, survive
from crmkit.dedupe.merge import default_survivorship
from crmkit.dedupe.snapshot import from_document, to_document

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _contact(day: int, **fields: Any) -> Contact:
    stamp = T0 + dt.timedelta(days=day)
    return attrs.evolve(
        Contact(**fields), id=f"c{day}", version=1, created_at=stamp, updated_at=stamp
    )


SURVIVOR = _contact(
    1, first_name="Ada", emails=["ada@a.org"], tags=["vip"], custom={"tier": "gold", "score": 1}
)
OLDER = _contact(
    0,
    first_name="Ada",
    last_name="Lovelace",
    title="Countess",
    emails=["ada@b.org"],
    custom={"score": 2, "source": "fair"},
)
NEWER = _contact(
    5,
    first_name="Augusta",
    last_name="King",
    title="Analyst",
    emails=["ada@a.org", "ada@c.org"],
    tags=["math"],
    lead_source="web",
    phones=["+14155550123"],
)


@pytest.mark.parametrize(
    ("field", "rule", "expected"),
    [
        ("first_name", "non_empty", "Ada"),
        ("last_name", "non_empty", "Lovelace"),  # first non-empty in the order given
        ("title", "non_empty", "Countess"),
        ("last_name", "most_recent", "King"),
        ("title", "most_recent", "Analyst"),
        ("first_name", "most_recent", "Augusta"),
        ("title", "most_complete", "Analyst"),  # NEWER has the most fields set
        ("title", "survivor", None),
        ("emails", "union", ("ada@a.org", "ada@b.org", "ada@c.org")),
        ("tags", "union", ("vip", "math")),
        ("emails", "survivor", ("ada@a.org",)),
        ("custom", "union", {"tier": "gold", "score": 1, "source": "fair"}),
        ("title", Override("CTO"), "CTO"),
        ("phones", Override([]), ()),
    ],
)
def test_survivorship_rules(field: str, rule: Any, expected: Any) -> None:
    merged = survive(SURVIVOR, [OLDER, NEWER], {field: rule})
    assert getattr(merged, field) == expected


def test_defaults_unite_lists_and_fill_blanks_keeping_storage_fields() -> None:
    merged = survive(SURVIVOR, [OLDER, NEWER])
    assert merged.emails == ("ada@a.org", "ada@b.org", "ada@c.org")
    assert merged.phones == ("+14155550123",)
    assert merged.title == "Countess"
    assert merged.lead_source == "web"
    assert (merged.id, merged.version, merged.created_at) == (
        SURVIVOR.id,
        SURVIVOR.version,
        SURVIVOR.created_at,
    )
    assert default_survivorship(Contact)["emails"] == "union"
    assert "id" not in default_survivorship(Contact)
    assert survive(SURVIVOR, []) is SURVIVOR


@pytest.mark.parametrize(
    "rules",
    [{"shoe_size": "union"}, {"title": "best"}, {"id": "non_empty"}, {"title": "union"}],
)
def test_bad_survivorship_rules_raise_validation_error(rules: dict[str, Any]) -> None:
    with pytest.raises(crmkit.ValidationError):
        survive(SURVIVOR, [OLDER], rules)


def test_an_override_that_makes_an_invalid_record_raises() -> None:
    with pytest.raises(crmkit.ValidationError):
        survive(
            SURVIVOR,
            [OLDER],
            {"emails": Override(["not an email"]), "lifecycle_stage": Override("nope")},
        )


@pytest.mark.parametrize(
    "entity",
    [
        _contact(
            2,
            first_name="Ada",
            lifecycle_stage="lead",
            tags=["x"],
            custom={"a": [1, 2]},
            address=Address(city="London", latitude=Decimal("51.5"), longitude=Decimal("-0.12")),
        ),
        attrs.evolve(
            Account(name="Acme", phones=["+14155550123"], external_ids={"erp": "7"}),
            id="a1",
            version=3,
            created_at=T0,
            updated_at=T0,
        ),
        attrs.evolve(
            Interaction(
                kind="call",
                occurred_at=T0,
                duration=dt.timedelta(seconds=90.5),
                contact_ids=["c1", "c2"],
            ),
            id="i1",
            version=1,
            created_at=T0,
            updated_at=T0,
        ),
    ],
)
def test_snapshots_are_plain_json_and_restore_exactly(entity: Any) -> None:
    document = json.loads(json.dumps(to_document(entity)))
    assert from_document(type(entity), document) == entity
