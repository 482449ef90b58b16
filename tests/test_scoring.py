"""Pure logic of crmkit.scoring (rules, features, the naive-Bayes formula) and a model that
survives a reconnect."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import pytest

import crmkit
from crmkit import Contact, Deal, Money
from crmkit.entities import LifecycleStage, TransitionPolicy
from crmkit.errors import ValidationError
from crmkit.query import F
from crmkit.scoring import ActivityRule, Feature, FieldRule, naive_bayes
from crmkit.testing.conformance_operations import sales_pipeline

DAY = dt.timedelta(days=1)


def test_rules_are_validated() -> None:
    with pytest.raises(ValidationError):
        FieldRule(F.title == "CTO", "ten")
    with pytest.raises(ValidationError):
        FieldRule("title == CTO", 1)
    with pytest.raises(ValidationError):
        FieldRule.equals("no_such_field", 1, 5)
    with pytest.raises(ValidationError):
        FieldRule(F.title == "CTO", float("inf"))
    with pytest.raises(ValidationError):
        ActivityRule(1, dt.timedelta(0))
    with pytest.raises(ValidationError):
        ActivityRule(1, DAY, kind="telegram")
    rule = ActivityRule(3, DAY, kind="call", direction="inbound")
    assert rule.label == "inbound call interactions"
    assert FieldRule.equals("lifecycle_stage", "lead", 2).label == "lifecycle_stage = lead"


def test_activity_decay_halves_every_half_life() -> None:
    rule = ActivityRule(10, 7 * DAY)
    assert rule.weight(dt.timedelta(0)) == 10
    assert rule.weight(7 * DAY) == 5
    assert rule.weight(21 * DAY) == 1.25
    assert rule.weight(-DAY) == 10  # a future interaction is not worth more


def test_features_are_validated_and_bucketed() -> None:
    with pytest.raises(ValidationError):
        Feature("deal.amount.amount")  # a number needs buckets
    with pytest.raises(ValidationError):
        Feature("contact.lead_source", (1,))  # a category takes none
    with pytest.raises(ValidationError):
        Feature("lead.lead_source")
    with pytest.raises(ValidationError):
        Feature("contact.nope")
    with pytest.raises(ValidationError):
        Feature("deal.amount.amount", (10, 5))
    with pytest.raises(ValidationError):
        Feature("deal.close_date")
    amount = Feature("deal.amount.amount", (1000, 5000))
    assert [amount.bucket(v) for v in (0, 999, 1000, 4999.5, 5000, 10**9)] == [
        "<1000", "<1000", "1000-5000", "1000-5000", ">=5000", ">=5000",
    ]  # fmt: skip
    assert Feature.from_dict(amount.to_dict()) == amount
    person = Contact(first_name="A", lifecycle_stage=LifecycleStage.LEAD, do_not_contact=True)
    assert Feature("contact.lifecycle_stage").value(person) == "lead"
    assert Feature("contact.do_not_contact").value(person) == "true"
    assert Feature("contact.lead_source").value(person) is None
    assert Feature("contact.custom.tier").value(Contact(first_name="A", custom={"tier": 2})) == "2"
    assert amount.value(Deal(name="x", amount=Money(amount=Decimal(7), currency="EUR"))) == "<1000"


def test_naive_bayes_matches_the_formula() -> None:
    counts = {
        "won": 3,
        "lost": 2,
        "values": {"src": {"web": [2, 1], "ref": [1, 0], "ads": [0, 1]}},
    }
    log_odds, factors = naive_bayes(counts, {"src": "web", "other": None})
    assert [f.label for f in factors] == ["base rate", "src = web"]
    assert log_odds == pytest.approx(math.log(4 / 3) + math.log((3 / 6) / (2 / 5)))
    # an unseen value widens K to 4: (0+1)/(3+4) vs (0+1)/(2+4)
    _, unseen = naive_bayes(counts, {"src": "tv"})
    assert unseen[1].contribution == pytest.approx(math.log((1 / 7) / (1 / 6)))
    empty, only = naive_bayes({}, {"src": "web"})
    assert empty == 0.0
    assert [f.contribution for f in only] == [0.0, 0.0]


def test_the_model_survives_a_reconnect(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    with crmkit.connect(url) as crm:
        crm.create_schema()
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id
        crm.deals.add(Deal(name="a", pipeline_id=pid, stage="won", tags=("x",)))
        crm.deals.add(Deal(name="b", pipeline_id=pid, stage="lost", lost_reason="price"))
        crm.scoring.train([Feature("deal.name")])
        before = crm.scoring.predict(Deal(name="a"))
    with crmkit.connect(url) as again:
        assert again.scoring.features() == (Feature("deal.name"),)
        after = again.scoring.predict(Deal(name="a"))
        assert after == before
        # (1+1)/(1+2) won vs (0+1)/(1+2) lost
        assert after.probability == pytest.approx(2 / 3)
