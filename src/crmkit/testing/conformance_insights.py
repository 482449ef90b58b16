"""Conformance tests of analytics and lead scoring (:mod:`crmkit.analytics`,
:mod:`crmkit.scoring`). Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so
every backend runs them through its ``crm`` fixture.

Each report is checked against a small dataset whose figures were computed by hand: the
week and list groupings of ``aggregate`` (weeks start on Monday, UTC), interactions per
channel, lifecycle counts over time, RFM scores, ticket SLA compliance, rule scores with
decay and naive-Bayes probabilities - and what a user's view is allowed to see of them.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import attrs
import pytest

from crmkit import CRM, Contact, Deal, Interaction, Money, Role, Ticket, User
from crmkit.aggregation import Group, Metric
from crmkit.analytics import ChannelRow, LifecycleRow, PriorityRow
from crmkit.entities import Direction, Priority, StageChange, TransitionPolicy
from crmkit.entities import InteractionKind as K
from crmkit.entities import LifecycleStage as Stage
from crmkit.errors import NotFound, PermissionDenied, ValidationError
from crmkit.query import F
from crmkit.scoring import ActivityRule, Feature, FieldRule
from crmkit.testing.conformance_operations import sales_pipeline

__all__ = ["InsightsConformance"]

UTC = dt.UTC
DAY = dt.timedelta(days=1)


def _at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: dt.tzinfo = UTC
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def _dir(direction: str | None) -> Direction | None:
    return None if direction is None else Direction(direction)


def _eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def _channel_data(crm: CRM) -> None:
    """Seven interactions around week and month boundaries (one in UTC+2)."""
    plus2 = dt.timezone(dt.timedelta(hours=2))
    data = [
        (_at(2024, 3, 3, 23, 30), "email", "inbound"),  # Sunday: week of Feb 26
        (_at(2024, 3, 4, 0, 10, tz=plus2), "call", "outbound"),  # = Mar 3 22:10 UTC
        (_at(2024, 3, 4, 9), "email", "inbound"),  # Monday: week of Mar 4
        (_at(2024, 3, 5), "email", "inbound"),
        (_at(2024, 3, 10), "note", None),
        (_at(2024, 4, 1), "call", "outbound"),
        (_at(2024, 2, 29), "email", "inbound"),
    ]
    crm.interactions.add_many(
        [
            Interaction(
                kind=K(kind), direction=_dir(direction), occurred_at=at, contact_ids=("c1",)
            )
            for at, kind, direction in data
        ]
    )


class InsightsConformance:
    """Analytics and scoring, checked against hand-computed figures on every backend."""

    # --- aggregate: weeks and list fields -------------------------------------------------

    def test_insight_aggregate_groups_by_week_and_list_elements(self, crm: CRM) -> None:
        """trunc="week" starts weeks on Monday (UTC); a list field groups by each element,
        an empty list forming the None group."""
        _channel_data(crm)
        crm.interactions.add(Interaction(kind=K.SMS, occurred_at=_at(2024, 3, 6), contact_ids=()))
        crm.interactions.add(
            Interaction(kind=K.SMS, occurred_at=_at(2024, 3, 7), contact_ids=("c1", "c2"))
        )
        weeks = crm.interactions.aggregate(
            group_by=[Group("occurred_at", "week", "week")], metrics=[Metric.count(name="n")]
        )
        assert [(r["week"], r["n"]) for r in weeks] == [
            (dt.date(2024, 2, 26), 3),
            (dt.date(2024, 3, 4), 5),
            (dt.date(2024, 4, 1), 1),
        ]
        people = crm.interactions.aggregate(
            F.kind == "sms",
            group_by=["contact_ids"],
            metrics=[Metric.count(name="n"), Metric.max("occurred_at", name="last")],
        )
        assert people == [
            {"contact_ids": "c1", "n": 1, "last": _at(2024, 3, 7)},
            {"contact_ids": "c2", "n": 1, "last": _at(2024, 3, 7)},
            {"contact_ids": None, "n": 1, "last": _at(2024, 3, 6)},
        ]
        both = crm.interactions.aggregate(
            group_by=["contact_ids", Group("occurred_at", "month", "month")],
            metrics=[Metric.count(name="n")],
        )
        assert [(r["contact_ids"], r["month"], r["n"]) for r in both] == [
            ("c1", dt.date(2024, 2, 1), 1),
            ("c1", dt.date(2024, 3, 1), 6),
            ("c1", dt.date(2024, 4, 1), 1),
            ("c2", dt.date(2024, 3, 1), 1),
            (None, dt.date(2024, 3, 1), 1),
        ]
        with pytest.raises(ValidationError):
            crm.deals.aggregate(group_by=["contact_ids", "tags"])

    # --- interactions by channel ----------------------------------------------------------

    def test_insight_interactions_by_channel(self, crm: CRM) -> None:
        """Counts per week and per month, kind and direction, within [since, until)."""
        _channel_data(crm)
        weekly = crm.analytics.interactions_by_channel(
            "week", since=_at(2024, 2, 1), until=_at(2024, 5, 1)
        )
        assert weekly == [
            ChannelRow(dt.date(2024, 2, 26), "call", "outbound", 1),
            ChannelRow(dt.date(2024, 2, 26), "email", "inbound", 2),
            ChannelRow(dt.date(2024, 3, 4), "email", "inbound", 2),
            ChannelRow(dt.date(2024, 3, 4), "note", None, 1),
            ChannelRow(dt.date(2024, 4, 1), "call", "outbound", 1),
        ]
        monthly = crm.analytics.interactions_by_channel(
            "month", since=_at(2024, 3, 1), until=_at(2024, 4, 1)
        )
        assert monthly == [
            ChannelRow(dt.date(2024, 3, 1), "call", "outbound", 1),
            ChannelRow(dt.date(2024, 3, 1), "email", "inbound", 3),
            ChannelRow(dt.date(2024, 3, 1), "note", None, 1),
        ]
        with pytest.raises(ValidationError):
            crm.analytics.interactions_by_channel("day")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            crm.analytics.interactions_by_channel(since=dt.datetime(2024, 1, 1))

    # --- lifecycle ------------------------------------------------------------------------

    def test_insight_lifecycle_history_is_recorded_on_write(self, crm: CRM) -> None:
        """Setting, changing and clearing a contact's stage each store one history row."""
        ada = crm.contacts.add(Contact(first_name="Ada", lifecycle_stage=Stage.LEAD, owner_id="u1"))
        crm.contacts.add(Contact(first_name="Bob"))  # no stage: no history
        ada = crm.contacts.update(attrs.evolve(ada, title="CTO"))  # same stage: none
        ada = crm.contacts.update(attrs.evolve(ada, lifecycle_stage=Stage.CUSTOMER))
        crm.contacts.update(attrs.evolve(ada, lifecycle_stage=None))
        rows = crm.stage_changes.find(F.record_collection == "contacts", order_by="at")
        assert [(r.record_id, r.from_stage, r.to_stage) for r in rows] == [
            (ada.id, None, "lead"),
            (ada.id, "lead", "customer"),
            (ada.id, "customer", "none"),
        ]
        assert rows[0].owner_id == "u1"
        assert rows[1].time_in_previous is not None

    def test_insight_lifecycle_over_time(self, crm: CRM) -> None:
        """Contacts per stage at each month's end, from a hand-written history."""
        history = [
            ("x", None, "lead", _at(2024, 1, 10)),
            ("x", "lead", "customer", _at(2024, 2, 15)),
            ("y", None, "lead", _at(2024, 1, 20)),
            ("y", "lead", "none", _at(2024, 3, 5)),
            ("z", None, "subscriber", _at(2023, 12, 31)),
            ("z", "subscriber", "lead", _at(2024, 2, 29, 23, 59)),
            ("w", None, "lead", _at(2024, 4, 1)),  # after the report
        ]
        crm.stage_changes.add_many(
            [
                StageChange(
                    record_collection="contacts", record_id=r, from_stage=a, to_stage=b, at=at
                )
                for r, a, b, at in history
            ]
        )
        crm.stage_changes.add(
            StageChange(
                record_collection="deals", record_id="d", to_stage="lead", at=_at(2024, 1, 5)
            )
        )
        rows = crm.analytics.lifecycle_over_time(
            "month", since=_at(2024, 1, 1), until=_at(2024, 4, 1)
        )
        assert rows == [
            LifecycleRow(dt.date(2024, 1, 1), "customer", 0),
            LifecycleRow(dt.date(2024, 1, 1), "lead", 2),
            LifecycleRow(dt.date(2024, 1, 1), "subscriber", 1),
            LifecycleRow(dt.date(2024, 2, 1), "customer", 1),
            LifecycleRow(dt.date(2024, 2, 1), "lead", 2),
            LifecycleRow(dt.date(2024, 2, 1), "subscriber", 0),
            LifecycleRow(dt.date(2024, 3, 1), "customer", 1),
            LifecycleRow(dt.date(2024, 3, 1), "lead", 1),
            LifecycleRow(dt.date(2024, 3, 1), "subscriber", 0),
        ]
        weekly = crm.analytics.lifecycle_over_time(
            "week", since=_at(2024, 2, 26), until=_at(2024, 3, 11)
        )
        assert [(r.period, r.count) for r in weekly if r.stage == "lead"] == [
            (dt.date(2024, 2, 26), 2),
            (dt.date(2024, 3, 4), 1),
        ]

    # --- RFM ------------------------------------------------------------------------------

    def test_insight_rfm_scores(self, crm: CRM) -> None:
        """Recency, frequency and monetary value of five contacts, scored by quintile with
        ties sharing a score (hand-computed in the comments)."""
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id or ""
        c = {
            n: crm.contacts.add(Contact(first_name=n)).id or ""
            for n in ("c1", "c2", "c3", "c4", "c5", "c6")
        }

        def deal(name: str, who: str, stage: str, money: Money) -> None:
            crm.deals.add(
                Deal(name=name, pipeline_id=pid, stage=stage, amount=money, contact_ids=(c[who],),
                     lost_reason="price" if stage == "lost" else None)
            )  # fmt: skip

        deal("d1", "c1", "won", _eur("300"))
        deal("d2", "c2", "won", _eur("100"))
        deal("d3", "c2", "won", _eur("50"))
        deal("d4", "c2", "won", Money(amount=Decimal(70), currency="USD"))
        deal("d5", "c5", "won", _eur("1000"))
        deal("d6", "c3", "lost", _eur("5000"))
        deal("d7", "c4", "lead", _eur("5000"))
        as_of = crm.now() + 10 * DAY  # won deals closed 10 days (and a few ms) before
        for who, days_before in [
            (("c1",), 1),
            (("c1",), 3),
            (("c1",), 40),
            (("c2",), 5),
            (("c3", "c4"), 20),
            (("c3",), 30),
            (("c6",), -1),  # after as_of: left out
        ]:
            crm.interactions.add(
                Interaction(
                    kind=K.EMAIL,
                    occurred_at=as_of - days_before * DAY,
                    contact_ids=tuple(c[w] for w in who),
                )
            )
        with pytest.raises(ValidationError):
            crm.analytics.rfm(as_of=as_of)  # EUR and USD won: which one?
        rows = crm.analytics.rfm(as_of=as_of, currency="EUR")
        # recency 1, 5, 10, 20, 20 -> 5, 4, 3, 1, 1; frequency c1 4, c2 4 (1 + 3 won),
        # c3 2, c4 1, c5 1 -> 4, 4, 3, 1, 1; monetary 300, 150, 0, 0, 1000 -> 4, 3, 1, 1, 5
        got = [(r.contact_id, r.recency_days, r.frequency, r.monetary, r.score) for r in rows]
        assert got == [
            (c["c1"], 1, 4, Decimal(300), "544"),
            (c["c2"], 5, 4, Decimal(150), "443"),
            (c["c5"], 10, 1, Decimal(1000), "315"),
            (c["c3"], 20, 2, Decimal(0), "131"),
            (c["c4"], 20, 1, Decimal(0), "111"),
        ]
        assert rows[0].last_activity == as_of - DAY
        only = crm.analytics.rfm(as_of=as_of, currency="EUR", where=F.first_name == "c2")
        assert [r.contact_id for r in only] == [c["c2"]]

    # --- tickets --------------------------------------------------------------------------

    def test_insight_tickets_by_priority(self, crm: CRM) -> None:
        """Volume and SLA compliance by priority, from the tickets' SLA fields."""
        now = crm.now()
        crm.tickets.add_many(
            [
                Ticket(subject="t1", priority=Priority.HIGH, status="solved",
                       first_response_at=now, resolved_at=now),
                Ticket(subject="t2", priority=Priority.HIGH, status="solved",
                       first_response_at=now, first_response_breached_at=now,
                       resolved_at=now, resolution_breached_at=now),
                Ticket(subject="t3", priority=Priority.HIGH),
                Ticket(subject="t4", priority=Priority.LOW, first_response_at=now),
                Ticket(subject="t5", priority=Priority.URGENT, first_response_breached_at=now),
            ]
        )  # fmt: skip
        rows = crm.analytics.tickets_by_priority()
        assert rows == [
            PriorityRow("low", 1, 1, 0, 0, 0),
            PriorityRow("high", 3, 1, 1, 1, 1),
            PriorityRow("urgent", 1, 0, 1, 0, 0),
        ]
        assert [r.first_response_compliance for r in rows] == [1, Decimal("0.5"), 0]
        assert [r.resolution_compliance for r in rows] == [None, Decimal("0.5"), None]
        assert crm.analytics.tickets_by_priority(since=now + DAY) == []

    # --- rule scores ----------------------------------------------------------------------

    def test_insight_rule_score_with_decay(self, crm: CRM) -> None:
        """Field rules evaluated by the database plus decayed activity points."""
        at = _at(2024, 6, 1)
        ada = crm.contacts.add(
            Contact(first_name="Ada", lead_source="web", title="CTO", lifecycle_stage=Stage.LEAD)
        )
        other = crm.contacts.add(Contact(first_name="Bob"))
        aid = ada.id or ""
        for when, kind, direction, who in [
            (at - 10 * DAY, "email", "inbound", aid),
            (at - 20 * DAY, "call", "outbound", aid),
            (at + DAY, "call", "outbound", aid),  # after `at`: ignored
            (at - DAY, "call", "outbound", other.id or ""),
        ]:
            crm.interactions.add(
                Interaction(
                    kind=K(kind), direction=_dir(direction), occurred_at=when, contact_ids=(who,)
                )
            )
        crm.scoring.rules = [
            FieldRule.equals("lead_source", "web", 10),
            FieldRule(F.title.icontains("ct"), 5, "executive"),
            FieldRule.equals("lifecycle_stage", "customer", 50),
            ActivityRule(8, 10 * DAY),
            ActivityRule(4, 5 * DAY, kind=K.CALL, direction=Direction.OUTBOUND),
        ]
        score = crm.scoring.score(aid, at=at)
        # 10 + 5 + (8 * 0.5 + 8 * 0.25) + 4 * 0.5**4
        assert [(f.label, f.contribution) for f in score.factors] == [
            ("lead_source = web", 10.0),
            ("executive", 5.0),
            ("interactions", 6.0),
            ("outbound call interactions", 0.25),
        ]
        assert score.total == 21.25
        assert crm.scoring.score(other.id or "", at=at, rules=[ActivityRule(2, DAY)]).total == 1.0
        with pytest.raises(NotFound):
            crm.scoring.score("missing")
        with pytest.raises(ValidationError):
            crm.scoring.rules = ["not a rule"]  # type: ignore[list-item]

    # --- naive Bayes ----------------------------------------------------------------------

    def test_insight_naive_bayes_probabilities_and_incremental_updates(self, crm: CRM) -> None:
        """Probabilities after training and after deals close, reopen and change outcome,
        checked against the hand-computed Laplace-smoothed formula."""
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id or ""

        def deal(source: str, amount: str, stage: str) -> Deal:
            person = crm.contacts.add(Contact(first_name=source, lead_source=source))
            return crm.deals.add(
                Deal(name=source, pipeline_id=pid, stage=stage, amount=_eur(amount),
                     contact_ids=(person.id or "",),
                     lost_reason="price" if stage == "lost" else None)
            )  # fmt: skip

        deal("web", "500", "won")
        deal("web", "2000", "won")
        third = deal("referral", "3000", "won")
        deal("web", "500", "lost")
        deal("ads", "100", "lost")
        deal("web", "9", "lead")  # open: not learned
        with pytest.raises(NotFound):
            crm.scoring.predict(third.id or "")
        model = crm.scoring.train(["contact.lead_source", Feature("deal.amount.amount", (1000,))])
        assert model.name == "default"
        probe = crm.deals.add(
            Deal(name="probe", pipeline_id=pid, stage="lead", amount=_eur("5000"),
                 contact_ids=(crm.contacts.find(F.lead_source == "web")[0].id or "",))
        )  # fmt: skip
        # W=3, L=2: ln(4/3); web: (2+1)/(3+3) vs (1+1)/(2+3) -> ln(1.25);
        # >=1000: (2+1)/(3+2) vs (0+1)/(2+2) -> ln(2.4); odds 4/3 * 1.25 * 2.4 = 4
        first = crm.scoring.predict(probe)
        assert first.probability == pytest.approx(0.8)
        assert [f.label for f in first.factors] == [
            "base rate",
            "contact.lead_source = web",
            "deal.amount.amount = >=1000",
        ]
        assert [f.contribution for f in first.factors] == pytest.approx(
            [math.log(4 / 3), math.log(1.25), math.log(2.4)]
        )
        web = crm.contacts.find(F.lead_source == "web", limit=1)[0]
        assert crm.scoring.predict(web).probability == pytest.approx(5 / 8)  # 4/3 * 1.25
        # the probe is lost: W=3, L=3; web 2:2 -> 0; >=1000 2:1 -> ln(3/5 / 2/5)
        crm.deals.move(probe.id or "", "lost", reason="price")
        assert crm.scoring.predict(probe.id or "").probability == pytest.approx(0.6)
        # reopening takes it back out; winning it counts it as won
        crm.deals.move(probe.id or "", "lead")
        assert crm.scoring.predict(probe.id or "").probability == pytest.approx(0.8)
        crm.deals.move(probe.id or "", "won")
        # W=4, L=2: ln(5/3); web (3+1)/(4+3) vs 2/5; >=1000 (3+1)/(4+2) vs 1/4
        odds = 5 / 3 * (4 / 7) / (2 / 5) * (4 / 6) / (1 / 4)
        assert crm.scoring.predict(probe.id or "").probability == pytest.approx(odds / (1 + odds))
        stored: list[Any] = crm.repository("scoring_models").find()
        assert len(stored) == 1
        assert (stored[0].counts["won"], stored[0].counts["lost"]) == (4, 2)
        # retraining from history gives the same counts
        again = crm.scoring.train(crm.scoring.features())
        assert again.counts == stored[0].counts

    def test_insight_failed_close_leaves_the_model_alone(self, crm: CRM) -> None:
        """The model is updated in the deal's transaction: a rolled-back close is not
        learned."""
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id or ""
        open_deal = crm.deals.add(Deal(name="d", pipeline_id=pid, stage="lead"))
        crm.scoring.train(["deal.stage"])

        def close_then_fail() -> None:
            with crm.transaction():
                crm.deals.move(open_deal.id or "", "won")
                raise RuntimeError("undo")

        with pytest.raises(RuntimeError):
            close_then_fail()
        assert crm.repository("scoring_models").find()[0].counts["won"] == 0
        crm.deals.move(open_deal.id or "", "won")
        assert crm.repository("scoring_models").find()[0].counts["won"] == 1

    # --- views ----------------------------------------------------------------------------

    def test_insight_views_see_only_readable_records(self, crm: CRM) -> None:
        """A view aggregates and scores only what the user may read."""
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={
                    "contacts": {"read": "own"},
                    "interactions": {"read": "own"},
                    "deals": {"read": "own"},
                    "pipelines": {"read": "all"},
                    "tickets": {"read": "own"},
                },
            )
        )
        user = crm.users.add(User(name="Rep", role_ids=(role.id or "",)))
        uid = user.id or ""
        mine = crm.contacts.add(Contact(first_name="Mine", owner_id=uid)).id or ""
        other = crm.contacts.add(Contact(first_name="Other", owner_id="x")).id or ""
        at = _at(2024, 5, 1)
        for owner, who in [(uid, mine), ("x", mine), (uid, other)]:
            crm.interactions.add(
                Interaction(kind=K.CALL, occurred_at=at, contact_ids=(who,), owner_id=owner)
            )
        crm.tickets.add(Ticket(subject="a", owner_id=uid))
        crm.tickets.add(Ticket(subject="b", owner_id="x"))
        view = crm.as_user(user)
        assert [r.count for r in view.analytics.interactions_by_channel("month")] == [2]
        assert [r.count for r in crm.analytics.interactions_by_channel("month")] == [3]
        rfm = view.analytics.rfm(as_of=at + DAY)
        assert [(r.contact_id, r.frequency) for r in rfm] == [(mine, 1)]
        assert [r.tickets for r in view.analytics.tickets_by_priority()] == [1]
        crm.scoring.rules = [ActivityRule(1, DAY)]
        assert view.scoring.score(mine, at=at).total == 1.0
        assert crm.scoring.score(mine, at=at).total == 2.0
        with pytest.raises(NotFound):
            view.scoring.score(other, at=at)
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id or ""
        theirs = crm.deals.add(Deal(name="t", pipeline_id=pid, stage="won", owner_id="x"))
        crm.scoring.train(["deal.stage"])
        with pytest.raises(NotFound):
            view.scoring.predict(theirs.id or "")
        with pytest.raises(NotFound):
            view.scoring.predict(theirs)
        with pytest.raises(PermissionDenied):
            view.scoring.train(["deal.stage"])
