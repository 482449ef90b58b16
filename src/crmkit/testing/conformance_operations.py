"""Conformance tests of the operational services: aggregation, pipelines, tickets, tasks,
lead conversion. Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so every
backend runs them through its ``crm`` fixture.

What is checked here depends on the backend: aggregates computed by the database, history
records written in the same transaction as the change, rule failures rolling back, breach
and due-time queries compiled to the backend's filters.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit import (
    CRM,
    Account,
    Contact,
    Deal,
    Interaction,
    Money,
    Pipeline,
    Role,
    Stage,
    Task,
    Ticket,
    TransitionError,
    User,
)
from crmkit.aggregation import Group, Metric
from crmkit.calendars import BusinessCalendar
from crmkit.entities import (
    Direction,
    InteractionKind,
    LifecycleStage,
    Priority,
    StageKind,
    TaskStatus,
    TransitionPolicy,
)
from crmkit.errors import NotFound, ValidationError
from crmkit.events import DealStageChanged, Event, SlaBreached, TicketStatusChanged
from crmkit.query import F
from crmkit.sla import SlaPolicy
from crmkit.testing import strategies as cs
from crmkit.testing._settings import SUITE_HEALTH_CHECKS

__all__ = ["OperationsConformance", "sales_pipeline"]

UTC = dt.UTC


def sales_pipeline(policy: TransitionPolicy = TransitionPolicy.GRAPH) -> Pipeline:
    """A four-stage sales pipeline: lead -> proposal -> won | lost (graph policy)."""
    return Pipeline(
        name="Sales",
        policy=policy,
        lost_reasons=("price", "timing"),
        stages=(
            Stage(key="lead", name="Lead", probability=Decimal("0.1"), next=("proposal", "lost")),
            Stage(
                key="proposal",
                name="Proposal",
                probability=Decimal("0.5"),
                required_fields=("amount", "close_date"),
                next=("won", "lost", "lead"),
            ),
            Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal(1)),
            Stage(
                key="lost",
                name="Lost",
                kind=StageKind.LOST,
                probability=Decimal(0),
                next=("lead",),
            ),
        ),
    )


class _Abort(Exception):
    """Raised by tests to roll a transaction back."""


def _eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


class OperationsConformance:
    """Operational behaviour every backend must have (see the module docstring)."""

    # --- aggregation --------------------------------------------------------------------

    def test_aggregate_groups_none_money_and_exact_decimals(self, crm: CRM) -> None:
        """Groups include a None group; sums are exact per currency; min/max are numeric."""
        crm.deals.add_many(
            [
                Deal(name="a", owner_id="u1", amount=_eur("0.10"), probability=Decimal("0.1")),
                Deal(name="b", owner_id="u1", amount=_eur("0.20"), probability=Decimal("-0")),
                Deal(name="c", owner_id="u2", amount=Money(amount=Decimal("5"), currency="USD")),
                Deal(name="d", owner_id=None, amount=_eur("-12.5")),
                Deal(name="e", owner_id="u2"),
            ]
        )
        rows = crm.deals.aggregate(
            group_by=[Group("amount.currency", name="cur")],
            metrics=[
                Metric.count(name="n"),
                Metric.count("amount.amount", name="priced"),
                Metric.sum("amount.amount", name="total"),
                Metric.min("amount.amount", name="low"),
                Metric.max("amount.amount", name="high"),
                Metric.avg("amount.amount", name="mean"),
            ],
        )
        assert rows == [
            {
                "cur": "EUR",
                "n": 3,
                "priced": 3,
                "total": Decimal("-12.20"),
                "low": Decimal("-12.5"),
                "high": Decimal("0.20"),
                "mean": Decimal("-12.20") / 3,
            },
            {
                "cur": "USD",
                "n": 1,
                "priced": 1,
                "total": Decimal(5),
                "low": Decimal(5),
                "high": Decimal(5),
                "mean": Decimal(5),
            },
            {
                "cur": None,
                "n": 1,
                "priced": 0,
                "total": Decimal(0),
                "low": None,
                "high": None,
                "mean": None,
            },
        ]
        by_owner = crm.deals.aggregate(
            F.amount.exists(), group_by=["owner_id"], metrics=[Metric.count(name="n")]
        )
        assert by_owner == [
            {"owner_id": "u1", "n": 2},
            {"owner_id": "u2", "n": 1},
            {"owner_id": None, "n": 1},
        ]
        assert crm.deals.aggregate(F.name == "nobody", group_by=["owner_id"]) == []
        assert crm.deals.aggregate(F.name == "nobody") == [{"count": 0}]

    def test_aggregate_dates_durations_and_enums(self, crm: CRM) -> None:
        """Truncated dates and datetimes group by UTC period; durations sum to timedelta."""
        base = dt.datetime(2024, 1, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
        crm.interactions.add_many(
            [
                Interaction(
                    kind=InteractionKind.CALL,
                    occurred_at=base,  # 2024-02-01 01:30 UTC
                    duration=dt.timedelta(minutes=5, milliseconds=2),
                ),
                Interaction(
                    kind=InteractionKind.CALL,
                    occurred_at=base + dt.timedelta(days=1),
                    duration=dt.timedelta(minutes=10),
                ),
                Interaction(kind=InteractionKind.EMAIL, occurred_at=base - dt.timedelta(days=40)),
            ]
        )
        rows = crm.interactions.aggregate(
            group_by=["kind", Group("occurred_at", "month", "month")],
            metrics=[
                Metric.sum("duration", name="talk"),
                Metric.avg("duration", name="avg"),
                Metric.max("occurred_at", name="last"),
            ],
        )
        assert rows == [
            {
                "kind": "call",
                "month": dt.date(2024, 2, 1),
                "talk": dt.timedelta(minutes=15, milliseconds=2),
                "avg": dt.timedelta(minutes=7, seconds=30, milliseconds=1),
                "last": (base + dt.timedelta(days=1)).astimezone(UTC),
            },
            {
                "kind": "email",
                "month": dt.date(2023, 12, 1),
                "talk": dt.timedelta(0),
                "avg": None,
                "last": (base - dt.timedelta(days=40)).astimezone(UTC),
            },
        ]
        years = crm.interactions.aggregate(group_by=[Group("occurred_at", "year", "y")])
        assert years == [
            {"y": dt.date(2023, 1, 1), "count": 1},
            {"y": dt.date(2024, 1, 1), "count": 2},
        ]

    @settings(max_examples=12, deadline=None, suppress_health_check=SUITE_HEALTH_CHECKS)
    @given(data=st.data())
    def test_aggregate_matches_a_brute_force_reference(self, crm: CRM, data: Any) -> None:
        """Random deals: grouped counts, exact sums and min/max equal a plain Python
        computation over the same records."""
        for deal in crm.deals.find():
            crm.deals.delete(deal.id or "")
        deals = crm.deals.add_many(
            data.draw(st.lists(cs.entities(Deal), max_size=12), label="deals")
        ).added
        rows = crm.deals.aggregate(
            group_by=[
                "stage",
                Group("amount.currency", name="cur"),
                Group("close_date", "year", "y"),
            ],
            metrics=[
                Metric.count(name="n"),
                Metric.sum("amount.amount", name="total"),
                Metric.min("probability", name="low"),
                Metric.max("stage_entered_at", name="last"),
            ],
        )
        expected: dict[tuple[Any, ...], dict[str, Any]] = {}
        for d in deals:
            key = (
                d.stage,
                d.amount.currency if d.amount else None,
                d.close_date.replace(month=1, day=1) if d.close_date else None,
            )
            row = expected.setdefault(key, {"n": 0, "total": Decimal(0), "low": [], "last": []})
            row["n"] += 1
            row["total"] += d.amount.amount if d.amount else 0
            row["low"] += [] if d.probability is None else [d.probability]
            row["last"] += [] if d.stage_entered_at is None else [d.stage_entered_at]
        got = {(r["stage"], r["cur"], r["y"]): r for r in rows}
        assert set(got) == set(expected)
        for key, want in expected.items():
            row = got[key]
            assert row["n"] == want["n"]
            assert row["total"] == want["total"]
            assert row["low"] == (min(want["low"]) if want["low"] else None)
            assert row["last"] == (max(want["last"]) if want["last"] else None)

    def test_aggregate_rejects_bad_specs(self, crm: CRM) -> None:
        """Unknown paths and operations that do not fit the field raise ValidationError."""
        for kwargs in (
            {"group_by": ["nope"]},
            {"metrics": [Metric.sum("name")]},
            {"group_by": [Group("name", "month")]},
            {"metrics": [Metric.count(), Metric.count()]},
        ):
            with pytest.raises(ValidationError):
                crm.deals.aggregate(**kwargs)

    # --- pipelines and deals ------------------------------------------------------------

    def test_move_enforces_rules_records_history_and_changes_nothing_on_error(
        self, crm: CRM
    ) -> None:
        """Required fields, the graph policy and lost reasons are checked; history records
        every entry; a refused move writes nothing."""
        pipeline = crm.pipelines.add(sales_pipeline())
        pid = pipeline.id or ""
        deal = crm.deals.add(Deal(name="Big", pipeline_id=pid, amount=_eur("1000")))
        assert (deal.stage, deal.probability) == ("lead", Decimal("0.1"))
        assert deal.expected_revenue == _eur("100.0")
        with pytest.raises(TransitionError, match="missing close_date"):
            crm.deals.move(deal.id or "", "proposal")
        with pytest.raises(TransitionError, match="allowed from 'lead': proposal, lost"):
            crm.deals.move(deal.id or "", "won")
        with pytest.raises(TransitionError, match="not a stage"):
            crm.deals.move(deal.id or "", "nowhere")
        assert crm.deals.get(deal.id or "") == deal
        assert len(crm.deals.history(deal.id or "")) == 1
        deal = crm.deals.update(attrs.evolve(deal, close_date=dt.date(2024, 9, 30)))
        deal = crm.deals.move(deal.id or "", "proposal", by="u-1", reason="demo done")
        assert (deal.stage, deal.probability, deal.closed_at) == ("proposal", Decimal("0.5"), None)
        with pytest.raises(TransitionError, match="lost reason is required"):
            crm.deals.move(deal.id or "", "lost")
        with pytest.raises(TransitionError, match="not one of"):
            crm.deals.move(deal.id or "", "lost", reason="weather")
        deal = crm.deals.move(deal.id or "", "lost", reason="price")
        assert (deal.lost_reason, deal.probability) == ("price", Decimal(0))
        assert deal.closed_at is not None
        assert deal.cycle_time is not None
        deal = crm.deals.move(deal.id or "", "lead")  # reopening is a transition too
        assert (deal.lost_reason, deal.closed_at, deal.cycle_time) == (None, None, None)
        history = crm.deals.history(deal.id or "")
        assert [(h.from_stage, h.to_stage) for h in history] == [
            (None, "lead"),
            ("lead", "proposal"),
            ("proposal", "lost"),
            ("lost", "lead"),
        ]
        assert (history[1].by, history[1].reason) == ("u-1", "demo done")
        assert history[2].reason == "price"
        assert all(h.time_in_previous is not None for h in history[1:])
        assert set(crm.deals.time_in_stages(deal.id or "")) == {"lead", "proposal", "lost"}

    def test_plain_updates_and_bulk_writes_obey_the_same_rules(self, crm: CRM) -> None:
        """update() and add_many() cannot bypass the pipeline rules."""
        pid = crm.pipelines.add(sales_pipeline()).id or ""
        deal = crm.deals.add(Deal(name="D", pipeline_id=pid))
        with pytest.raises(TransitionError, match="missing amount, close_date"):
            crm.deals.update(attrs.evolve(deal, stage="proposal"))
        with pytest.raises(TransitionError):
            crm.deals.add_many(
                [Deal(name="ok", pipeline_id=pid), Deal(name="x", pipeline_id=pid, stage="lost")]
            )
        assert crm.deals.count() == 1
        assert crm.stage_changes.count() == 1
        moved = crm.deals.update(
            attrs.evolve(deal, stage="proposal", amount=_eur("10"), close_date=dt.date(2025, 1, 1))
        )
        assert moved.probability == Decimal("0.5")
        assert [h.to_stage for h in crm.deals.history(deal.id or "")] == ["lead", "proposal"]

    def test_forward_only_policy(self, crm: CRM) -> None:
        """A forward-only pipeline refuses moves back to an earlier stage."""
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.FORWARD_ONLY)).id or ""
        deal = crm.deals.add(
            Deal(
                name="F",
                pipeline_id=pid,
                stage="proposal",
                amount=_eur("1"),
                close_date=dt.date(2025, 1, 1),
            )
        )
        with pytest.raises(TransitionError, match="only moves forward"):
            crm.deals.move(deal.id or "", "lead")
        assert crm.deals.move(deal.id or "", "won").closed_at is not None

    def test_stage_events_are_published_after_commit_only(self, crm: CRM) -> None:
        """DealStageChanged reaches subscribers after commit, never for a rollback."""
        pid = crm.pipelines.add(sales_pipeline()).id or ""
        seen: list[Event] = []
        crm.events.subscribe(DealStageChanged, seen.append)

        def add_then_fail() -> None:
            with crm.transaction():
                crm.deals.add(Deal(name="gone", pipeline_id=pid))
                assert seen == []
                raise _Abort

        with pytest.raises(_Abort):
            add_then_fail()
        assert seen == []
        assert crm.deals.count() == 0
        assert crm.stage_changes.count() == 0
        with crm.transaction():
            deal = crm.deals.add(Deal(name="kept", pipeline_id=pid))
            assert seen == []
        assert [(e.from_stage, e.to_stage, e.entity_id) for e in seen] == [(None, "lead", deal.id)]  # type: ignore[attr-defined]

    def test_deal_verbs_through_a_user_view(self, crm: CRM) -> None:
        """A view moves only deals it may update and attributes the move to its user."""
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={
                    "deals": {"read": "own", "update": "own", "create": "own"},
                    "pipelines": {"read": "all"},
                },
            )
        )
        rep = crm.users.add(User(name="Rep", email="rep@example.com", role_ids=(role.id or "",)))
        pid = crm.pipelines.add(sales_pipeline()).id or ""
        mine = crm.deals.add(Deal(name="mine", pipeline_id=pid, owner_id=rep.id))
        other = crm.deals.add(Deal(name="other", pipeline_id=pid, owner_id="someone"))
        view = crm.as_user(rep)
        moved = view.deals.move(mine.id or "", "lost", reason="timing")
        assert moved.stage == "lost"
        assert view.deals.history(mine.id or "")[-1].by == rep.id
        with pytest.raises(NotFound):
            view.deals.move(other.id or "", "lost", reason="timing")
        with pytest.raises(NotFound):
            view.deals.history(other.id or "")
        assert crm.deals.get(other.id or "").stage == "lead"
        assert view.deals.aggregate(group_by=["stage"]) == [{"stage": "lost", "count": 1}]

    def test_reports_on_a_known_dataset(self, crm: CRM) -> None:
        """Forecast, win rate, cycle and funnel agree with hand-computed numbers."""
        pid = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY)).id or ""

        def deal(name: str, owner: str, amount: str, cur: str, close: str, stage: str) -> Deal:
            d = crm.deals.add(
                Deal(
                    name=name,
                    pipeline_id=pid,
                    owner_id=owner,
                    amount=Money(amount=Decimal(amount), currency=cur),
                    close_date=dt.date.fromisoformat(close),
                )
            )
            if stage != "lead":
                d = crm.deals.move(d.id or "", stage, reason="price" if stage == "lost" else None)
            return d

        deal("a", "u1", "1000", "EUR", "2024-03-05", "proposal")  # 500
        deal("b", "u1", "333.33", "EUR", "2024-03-28", "lead")  # 33.333
        deal("c", "u2", "2000", "EUR", "2024-04-01", "proposal")  # 1000
        deal("d", "u2", "100", "USD", "2024-03-10", "lead")  # 10
        deal("e", "u1", "999", "EUR", "2024-03-01", "won")
        deal("f", "u2", "5", "EUR", "2024-03-01", "lost")
        deal("g", "u2", "7", "EUR", "2024-03-01", "won")
        rows = crm.reports.forecast(by="month")
        assert [(r.currency, r.month, r.weighted, r.amount, r.deals) for r in rows] == [
            ("EUR", dt.date(2024, 3, 1), Decimal("533.333"), Decimal("1333.33"), 2),
            ("EUR", dt.date(2024, 4, 1), Decimal("1000.0"), Decimal("2000"), 1),
            ("USD", dt.date(2024, 3, 1), Decimal("10.0"), Decimal("100"), 1),
        ]
        by_owner = crm.reports.forecast(by="owner")
        assert [(r.currency, r.owner_id, r.weighted) for r in by_owner] == [
            ("EUR", "u1", Decimal("533.333")),
            ("EUR", "u2", Decimal("1000.0")),
            ("USD", "u2", Decimal("10.0")),
        ]
        rate = crm.reports.win_rate()
        assert (rate.won, rate.lost, rate.rate) == (2, 1, Decimal(2) / Decimal(3))
        cycle = crm.reports.sales_cycle()
        won = crm.deals.find(F.stage == "won")
        assert cycle.deals == 2
        expected = sum((d.cycle_time or dt.timedelta(0) for d in won), dt.timedelta(0)) / 2
        assert abs((cycle.average or dt.timedelta(0)) - expected) <= dt.timedelta(milliseconds=1)
        funnel = crm.reports.funnel(pid)
        assert [(s.stage, s.entered) for s in funnel] == [("lead", 7), ("proposal", 2), ("won", 2)]
        assert funnel[0].conversion == Decimal(2) / Decimal(7)

    # --- tickets ------------------------------------------------------------------------

    def test_ticket_sla_first_response_breaches_and_queries(self, crm: CRM) -> None:
        """Due times are stored, pending pauses resolution, outbound replies count as the
        first response, and breaching/due_within are queries."""
        crm.sla.define(
            "24x7",
            SlaPolicy(high={"first_response": dt.timedelta(hours=1), "resolution": 8 * 3600}),
            BusinessCalendar.always(),
        )
        seen: list[Event] = []
        crm.events.subscribe(TicketStatusChanged, seen.append)
        crm.events.subscribe(SlaBreached, seen.append)
        ticket = crm.tickets.add(Ticket(subject="Down", priority=Priority.HIGH))
        created = ticket.created_at
        assert created is not None
        assert ticket.sla_policy_id == "24x7"
        assert ticket.first_response_due_at == created + dt.timedelta(hours=1)
        assert ticket.resolution_due_at == created + dt.timedelta(hours=8)
        calm = crm.tickets.add(Ticket(subject="Calm", priority=Priority.LOW))
        assert calm.first_response_due_at is None
        later = created + dt.timedelta(hours=2)
        assert [t.id for t in crm.tickets.breaching(at=later)] == [ticket.id]
        assert crm.tickets.breaching(at=created) == []
        assert [t.id for t in crm.tickets.due_within(dt.timedelta(hours=2), at=created)] == [
            ticket.id
        ]
        assert crm.tickets.due_within(dt.timedelta(minutes=30), at=created) == []
        breached = crm.tickets.check_breaches(at=later)
        assert [t.first_response_breached_at for t in breached] == [ticket.first_response_due_at]
        assert crm.tickets.check_breaches(at=later) == []
        assert [e.target for e in seen if isinstance(e, SlaBreached)] == ["first_response"]
        crm.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                direction=Direction.OUTBOUND,
                occurred_at=later,
                ticket_id=ticket.id,
            )
        )
        ticket = crm.tickets.get(ticket.id or "")
        assert ticket.first_response_at == later
        paused = crm.tickets.move(ticket.id or "", "pending")
        assert paused.resolution_due_at is None
        assert crm.tickets.breaching(at=created + dt.timedelta(days=5)) == []
        resumed = crm.tickets.move(ticket.id or "", "open")
        assert resumed.resolution_due_at is not None
        assert resumed.resolution_due_at > created + dt.timedelta(hours=8) - dt.timedelta(seconds=1)
        solved = crm.tickets.move(ticket.id or "", "solved")
        assert solved.resolved_at is not None
        assert [h.to_stage for h in crm.tickets.history(ticket.id or "")] == [
            "new",
            "pending",
            "open",
            "solved",
        ]
        assert [e.to_stage for e in seen if isinstance(e, TicketStatusChanged)] == [
            "new",
            "new",
            "pending",
            "open",
            "solved",
        ]
        with pytest.raises(TransitionError):
            crm.tickets.move(ticket.id or "", "vanished")

    # --- tasks --------------------------------------------------------------------------

    def test_task_queries_and_completion(self, crm: CRM) -> None:
        """due/overdue/upcoming select open tasks by due time; completing records who/when."""
        now = dt.datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
        hour = dt.timedelta(hours=1)
        tasks = crm.tasks.add_many(
            [
                Task(title="late", due_at=now - hour, assignee_id="u1"),
                Task(title="soon", due_at=now + hour, assignee_id="u1"),
                Task(title="far", due_at=now + 30 * 24 * hour, assignee_id="u2"),
                Task(title="done", due_at=now - hour, status=TaskStatus.DONE),
                Task(title="undated"),
            ]
        )

        def titles(found: list[Task]) -> list[str]:
            return [t.title for t in found]

        assert titles(crm.tasks.overdue(at=now)) == ["late"]
        assert titles(crm.tasks.due(now + 2 * hour)) == ["late", "soon"]
        assert titles(crm.tasks.upcoming(dt.timedelta(days=1), at=now)) == ["soon"]
        assert titles(crm.tasks.upcoming(dt.timedelta(days=60), at=now, assignee_id="u2")) == [
            "far"
        ]
        done = crm.tasks.complete(tasks[0].id or "", by="u9")
        assert done.status is TaskStatus.DONE
        assert done.completed_by == "u9"
        assert done.completed_at is not None
        assert crm.tasks.overdue(at=now) == []
        reopened = crm.tasks.update(attrs.evolve(done, status=TaskStatus.OPEN))
        assert (reopened.completed_at, reopened.completed_by) == (None, None)

    # --- leads --------------------------------------------------------------------------

    def test_lead_conversion_matches_domain_and_rolls_back(self, crm: CRM) -> None:
        """Conversion attaches the account of the work-email domain or creates one, sets
        the lifecycle and creates the deal; a failing deal leaves nothing half-done."""
        acme = crm.accounts.add(Account(name="Acme", domain="acme.com"))
        pid = crm.pipelines.add(sales_pipeline()).id or ""
        ada = crm.contacts.add(
            Contact(
                first_name="Ada",
                emails=("ada@gmail.com", "ada@eng.acme.com"),
                lifecycle_stage=LifecycleStage.LEAD,
            )
        )
        result = crm.leads.convert(ada.id or "", deal={"name": "Acme pilot", "pipeline_id": pid})
        assert result.account == acme
        assert not result.account_created
        assert result.contact.account_id == acme.id
        assert result.contact.lifecycle_stage is LifecycleStage.OPPORTUNITY
        assert result.deal is not None
        assert result.deal.account_id == acme.id
        assert result.deal.contact_ids == (ada.id,)
        grace = crm.contacts.add(Contact(first_name="Grace", emails=("grace@navy.mil",)))
        before = {name: repo.count() for name, repo in crm.repositories.items()}
        with pytest.raises(TransitionError):
            crm.leads.convert(
                grace.id or "", deal=Deal(name="bad", pipeline_id=pid, stage="proposal")
            )
        assert {name: repo.count() for name, repo in crm.repositories.items()} == before
        assert crm.contacts.get(grace.id or "") == grace
        converted = crm.leads.convert(grace.id or "")
        assert converted.account_created
        assert converted.account is not None
        assert converted.account.domain == "navy.mil"
        assert converted.contact.lifecycle_stage is LifecycleStage.CUSTOMER
        with pytest.raises(ValidationError, match="already converted"):
            crm.leads.convert(grace.id or "")

    def _unused(self) -> Any:  # pragma: no cover
        return None
