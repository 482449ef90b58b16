"""Deal pipeline rules: each transition policy, required fields, lost reasons, history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import attrs
import pytest

import crmkit
from crmkit import Deal, Money, Pipeline, Stage, TransitionError
from crmkit.entities import StageKind, TransitionPolicy

T0 = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)


class Clock:
    """A settable clock for the CRM."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def crm(clock: Clock) -> Iterator[crmkit.CRM]:
    crm = crmkit.connect("memory://", clock=clock)
    yield crm
    crm.close()


def pipeline(policy: TransitionPolicy) -> Pipeline:
    return Pipeline(
        name="Sales",
        policy=policy,
        lost_reasons=("price", "timing"),
        stages=(
            Stage(key="lead", name="Lead", probability=Decimal("0.1"), next=("demo", "lost")),
            Stage(key="demo", name="Demo", probability=Decimal("0.3"), next=("proposal",)),
            Stage(
                key="proposal",
                name="Proposal",
                probability=Decimal("0.6"),
                required_fields=("amount", "close_date", "custom.budget"),
                next=("won", "lost"),
            ),
            Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal(1)),
            Stage(key="lost", name="Lost", kind=StageKind.LOST, probability=Decimal(0)),
        ),
    )


READY = {"amount": Money(amount=Decimal(100), currency="EUR"), "close_date": "2024-06-30"}

# (policy, from, to, error fragment or None when allowed)
TRANSITIONS = [
    (TransitionPolicy.ANY, "lead", "won", None),
    (TransitionPolicy.ANY, "won", "lead", None),
    (TransitionPolicy.ANY, "demo", "lost", "lost reason is required"),
    (TransitionPolicy.FORWARD_ONLY, "lead", "proposal", None),
    (TransitionPolicy.FORWARD_ONLY, "proposal", "demo", "only moves forward"),
    (TransitionPolicy.FORWARD_ONLY, "won", "lead", "only moves forward"),
    (TransitionPolicy.GRAPH, "lead", "demo", None),
    (TransitionPolicy.GRAPH, "lead", "proposal", "allowed from 'lead': demo, lost"),
    (TransitionPolicy.GRAPH, "demo", "won", "allowed from 'demo': proposal"),
    (TransitionPolicy.GRAPH, "won", "lead", "allowed from 'won': none"),
    (TransitionPolicy.GRAPH, "demo", "nowhere", "not a stage"),
]


@pytest.mark.parametrize(("policy", "source", "target", "error"), TRANSITIONS)
def test_transition_policies(
    crm: crmkit.CRM, policy: TransitionPolicy, source: str, target: str, error: str | None
) -> None:
    pid = crm.pipelines.add(pipeline(policy)).id
    deal = crm.deals.add(
        Deal(name="D", pipeline_id=pid, stage=source, custom={"budget": 1}, **READY)  # type: ignore[arg-type]
    )
    if error is None:
        assert crm.deals.move(deal.id or "", target).stage == target
        return
    with pytest.raises(TransitionError, match=error):
        crm.deals.move(deal.id or "", target)
    with pytest.raises(TransitionError, match=error):
        crm.deals.update(attrs.evolve(deal, stage=target))
    assert crm.deals.get(deal.id or "") == deal


def test_required_fields_are_named_including_custom_paths(crm: crmkit.CRM) -> None:
    pid = crm.pipelines.add(pipeline(TransitionPolicy.ANY)).id
    deal = crm.deals.add(Deal(name="D", pipeline_id=pid))
    with pytest.raises(TransitionError, match=r"missing amount, close_date, custom\.budget"):
        crm.deals.move(deal.id or "", "proposal")
    deal = crm.deals.update(attrs.evolve(deal, **READY))  # type: ignore[arg-type]
    with pytest.raises(TransitionError, match=r"missing custom\.budget$"):
        crm.deals.move(deal.id or "", "proposal")
    with pytest.raises(TransitionError, match="proposal"):
        crm.deals.add(Deal(name="New", pipeline_id=pid, stage="proposal"))


def test_lost_reasons_come_from_the_configured_list(crm: crmkit.CRM) -> None:
    pid = crm.pipelines.add(pipeline(TransitionPolicy.ANY)).id
    deal = crm.deals.add(Deal(name="D", pipeline_id=pid))
    with pytest.raises(TransitionError, match="not one of: price, timing"):
        crm.deals.move(deal.id or "", "lost", reason="mood")
    lost = crm.deals.move(deal.id or "", "lost", reason="timing")
    assert (lost.lost_reason, lost.probability) == ("timing", Decimal(0))
    reopened = crm.deals.move(deal.id or "", "lead")
    assert (reopened.lost_reason, reopened.closed_at) == (None, None)
    assert reopened.probability == Decimal("0.1")


def test_stage_fields_history_and_time_in_stage(crm: crmkit.CRM, clock: Clock) -> None:
    pid = crm.pipelines.add(pipeline(TransitionPolicy.ANY)).id
    deal = crm.deals.add(Deal(name="D", pipeline_id=pid, amount=READY["amount"]))
    assert deal.stage_entered_at == T0
    assert deal.expected_revenue == Money(amount=Decimal("10.0"), currency="EUR")
    clock.now = T0 + dt.timedelta(days=2)
    deal = crm.deals.move(deal.id or "", "demo", by="u-1", reason="call went well")
    assert (deal.probability, deal.stage_entered_at) == (Decimal("0.3"), clock.now)
    clock.now = T0 + dt.timedelta(days=5)
    deal = crm.deals.move(deal.id or "", "won")
    assert deal.closed_at == clock.now
    assert deal.cycle_time == dt.timedelta(days=5)
    history = crm.deals.history(deal.id or "")
    assert [(h.from_stage, h.to_stage, h.at, h.by, h.time_in_previous) for h in history] == [
        (None, "lead", T0, None, None),
        ("lead", "demo", T0 + dt.timedelta(days=2), "u-1", dt.timedelta(days=2)),
        ("demo", "won", T0 + dt.timedelta(days=5), None, dt.timedelta(days=3)),
    ]
    assert history[1].reason == "call went well"
    assert crm.deals.time_in_stages(deal.id or "", at=T0 + dt.timedelta(days=6)) == {
        "lead": dt.timedelta(days=2),
        "demo": dt.timedelta(days=3),
        "won": dt.timedelta(days=1),
    }


def test_deals_outside_a_stored_pipeline_are_stored_as_given(crm: crmkit.CRM) -> None:
    free = Deal(name="Import", pipeline_id="not-yet", stage="whatever", probability="0.42")
    stored = crm.deals.add(free)
    assert (stored.stage, stored.probability, stored.expected_revenue) == (
        "whatever",
        Decimal("0.42"),
        None,
    )
    assert crm.stage_changes.count() == 0
    with pytest.raises(TransitionError, match="no stored pipeline"):
        crm.deals.move(stored.id or "", "won")


def test_moving_to_another_pipeline_enters_its_stage(crm: crmkit.CRM) -> None:
    a = crm.pipelines.add(pipeline(TransitionPolicy.GRAPH)).id
    b = crm.pipelines.add(pipeline(TransitionPolicy.GRAPH)).id
    deal = crm.deals.add(Deal(name="D", pipeline_id=a, stage="demo"))
    moved = crm.deals.update(attrs.evolve(deal, pipeline_id=b, stage="won"))
    assert moved.stage == "won"
    last = crm.deals.history(deal.id or "")[-1]
    assert (last.pipeline_id, last.from_stage, last.to_stage) == (b, None, "won")
