"""Tickets: SLA due times stored on the ticket (weekends, holidays, time zones, pauses),
first responses, breach events, status rules. Expected times are worked out by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

import crmkit
from crmkit import Interaction, Pipeline, Stage, Ticket, TransitionError
from crmkit.calendars import BusinessCalendar
from crmkit.entities import Direction, InteractionKind, PipelineKind, Priority, TransitionPolicy
from crmkit.events import Event, SlaBreached, TicketStatusChanged
from crmkit.sla import SlaPolicy

UTC = dt.UTC
H = dt.timedelta(hours=1)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = utc(2024, 3, 4, 9)

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


POLICY = SlaPolicy(
    high={"first_response": H, "resolution": 8 * H},
    normal={"first_response": 2 * H, "resolution": 8 * H},
    urgent={"first_response": dt.timedelta(minutes=30), "resolution": 8 * H},
)
LONDON = BusinessCalendar.standard("Europe/London", hours="09:00-17:00")
LONDON_HOLIDAY = BusinessCalendar.standard(
    "Europe/London", hours="09:00-17:00", holidays=["2024-03-11"]
)
NEW_YORK = BusinessCalendar.standard("America/New_York", hours="09:00-17:00")
TOKYO = BusinessCalendar.standard("Asia/Tokyo", hours="09:00-17:00")

# (case, calendar, priority, opened (UTC), first response due, resolution due), by hand:
DUE_TIMES = [
    # Friday 16:00 GMT: 1h left that day; resolution 1h Fri + 7h Mon 09:00-16:00
    ("friday afternoon", LONDON, "high", utc(2024, 3, 8, 16), utc(2024, 3, 8, 17),
     utc(2024, 3, 11, 16)),
    # Saturday: the clock starts Monday 09:00
    ("weekend", LONDON, "high", utc(2024, 3, 9, 10), utc(2024, 3, 11, 10), utc(2024, 3, 11, 17)),
    # Monday 11 March is a holiday: resolution runs 1h Fri + 7h Tue
    ("holiday", LONDON_HOLIDAY, "high", utc(2024, 3, 8, 16), utc(2024, 3, 8, 17),
     utc(2024, 3, 12, 16)),
    # 16:00 EST Friday = 21:00 UTC; US clocks go forward on Sunday 10 March, so Monday
    # 09:00 EDT is 13:00 UTC: 2h first response = 1h Fri + 1h Mon -> 14:00 UTC;
    # resolution 1h Fri + 7h Mon -> 16:00 EDT = 20:00 UTC
    ("DST in New York", NEW_YORK, "normal", utc(2024, 3, 8, 21), utc(2024, 3, 11, 14),
     utc(2024, 3, 11, 20)),
    # 09:00 JST = 00:00 UTC
    ("Tokyo", TOKYO, "urgent", utc(2024, 3, 4, 0), utc(2024, 3, 4, 0, 30), utc(2024, 3, 4, 8)),
    # opened after hours (20:00 JST): Tuesday 09:00 JST is Monday 24:00 UTC
    ("Tokyo after hours", TOKYO, "urgent", utc(2024, 3, 4, 11), utc(2024, 3, 5, 0, 30),
     utc(2024, 3, 5, 8)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "calendar", "priority", "opened", "first", "resolution"),
    DUE_TIMES,
    ids=[c[0] for c in DUE_TIMES],
)
def test_due_times_are_stored_on_the_ticket(
    crm: crmkit.CRM,
    clock: Clock,
    case: str,
    calendar: BusinessCalendar,
    priority: str,
    opened: dt.datetime,
    first: dt.datetime,
    resolution: dt.datetime,
) -> None:
    crm.sla.define("support", POLICY, calendar)
    clock.now = opened
    ticket = crm.tickets.add(Ticket(subject=case, priority=priority))
    assert (ticket.first_response_due_at, ticket.resolution_due_at) == (first, resolution)
    assert ticket.sla_policy_id == "support"
    stored = crm.tickets.get(ticket.id or "")
    assert (stored.first_response_due_at, stored.resolution_due_at) == (first, resolution)


# (status changes as (at, status) after opening Monday 09:00 GMT, resolution due), by hand:
PAUSES = [
    # no pause: 8 business hours -> Monday 17:00
    ([], utc(2024, 3, 4, 17)),
    # pending 10:00-12:00: shifted by 2h -> Tuesday 11:00
    ([(utc(2024, 3, 4, 10), "pending"), (utc(2024, 3, 4, 12), "open")], utc(2024, 3, 5, 11)),
    # on hold from Monday 16:00 to Tuesday 10:00: 1h Mon + 1h Tue paused -> Tuesday 11:00
    ([(utc(2024, 3, 4, 16), "on_hold"), (utc(2024, 3, 5, 10), "open")], utc(2024, 3, 5, 11)),
    # still pending: no due time while paused
    ([(utc(2024, 3, 4, 10), "pending")], None),
    # paused over the weekend only (Fri 17:00 -> Mon 09:00 is closed anyway) changes nothing
    ([(utc(2024, 3, 8, 18), "pending"), (utc(2024, 3, 11, 8), "open")], utc(2024, 3, 4, 17)),
]


@pytest.mark.parametrize(("changes", "due"), PAUSES)
def test_pending_pauses_the_resolution_clock(
    crm: crmkit.CRM,
    clock: Clock,
    changes: list[tuple[dt.datetime, str]],
    due: dt.datetime | None,
) -> None:
    crm.sla.define("support", POLICY, LONDON)
    ticket = crm.tickets.add(Ticket(subject="Slow", priority=Priority.NORMAL))
    for at, status in changes:
        clock.now = at
        ticket = crm.tickets.move(ticket.id or "", status)
    assert ticket.resolution_due_at == due
    assert ticket.first_response_due_at == utc(2024, 3, 4, 11)  # never paused


def test_priority_change_recomputes_and_statuses_follow_the_pipeline(
    crm: crmkit.CRM, clock: Clock
) -> None:
    crm.sla.define("support", POLICY, LONDON)
    ticket = crm.tickets.add(Ticket(subject="T"))
    assert ticket.first_response_due_at == utc(2024, 3, 4, 11)
    clock.now = utc(2024, 3, 4, 9, 30)
    import attrs

    urgent = crm.tickets.update(attrs.evolve(ticket, priority=Priority.URGENT))
    assert urgent.first_response_due_at == utc(2024, 3, 4, 9, 30)
    solved = crm.tickets.move(ticket.id or "", "solved")
    assert solved.resolved_at == clock.now
    closed = crm.tickets.move(ticket.id or "", "closed")
    assert closed.closed_at == clock.now
    reopened = crm.tickets.move(ticket.id or "", "open")
    assert (reopened.resolved_at, reopened.closed_at) == (None, None)
    with pytest.raises(TransitionError, match="not a stage"):
        crm.tickets.move(ticket.id or "", "escalated")


def test_custom_ticket_pipeline_policy(crm: crmkit.CRM) -> None:
    flow = crm.pipelines.add(
        Pipeline(
            name="Strict",
            kind=PipelineKind.TICKETS,
            policy=TransitionPolicy.FORWARD_ONLY,
            stages=[Stage(key="triage", name="Triage"), Stage(key="fixing", name="Fixing"),
                    Stage(key="done", name="Done", kind="won")],
        )
    )  # fmt: skip
    ticket = crm.tickets.add(Ticket(subject="S", pipeline_id=flow.id, status="triage"))
    crm.tickets.move(ticket.id or "", "fixing")
    with pytest.raises(TransitionError, match="only moves forward"):
        crm.tickets.move(ticket.id or "", "triage")
    with pytest.raises(TransitionError, match="not a stage"):
        crm.tickets.add(Ticket(subject="S", pipeline_id=flow.id, status="new"))


def test_first_response_breaches_and_events(crm: crmkit.CRM, clock: Clock) -> None:
    crm.sla.define("support", POLICY, LONDON)
    events: list[Event] = []
    crm.events.subscribe(SlaBreached, events.append)
    crm.events.subscribe(TicketStatusChanged, events.append)
    ticket = crm.tickets.add(Ticket(subject="Late", priority=Priority.HIGH))
    on_time = crm.tickets.add(Ticket(subject="Fast", priority=Priority.HIGH))
    clock.now = utc(2024, 3, 4, 9, 20)
    crm.interactions.add(
        Interaction(kind=InteractionKind.EMAIL, direction=Direction.OUTBOUND,
                    occurred_at=clock.now, ticket_id=on_time.id)
    )  # fmt: skip
    crm.interactions.add(  # inbound messages are not responses
        Interaction(kind=InteractionKind.EMAIL, direction=Direction.INBOUND,
                    occurred_at=clock.now, ticket_id=ticket.id)
    )  # fmt: skip
    assert crm.tickets.get(on_time.id or "").first_response_at == clock.now
    assert crm.tickets.get(ticket.id or "").first_response_at is None
    assert [t.id for t in crm.tickets.due_within(H)] == [ticket.id]
    clock.now = utc(2024, 3, 4, 10, 30)
    assert [t.id for t in crm.tickets.breaching()] == [ticket.id]
    assert [t.id for t in crm.tickets.check_breaches()] == [ticket.id]
    assert crm.tickets.check_breaches() == []
    breaches = [e for e in events if isinstance(e, SlaBreached)]
    assert [(e.entity_id, e.target, e.due_at) for e in breaches] == [
        (ticket.id, "first_response", utc(2024, 3, 4, 10))
    ]
    # a response that comes late still records the breach once
    late = crm.tickets.add(Ticket(subject="Later", priority=Priority.HIGH))
    clock.now = utc(2024, 3, 4, 13)
    crm.interactions.add(
        Interaction(kind=InteractionKind.CALL, direction=Direction.OUTBOUND,
                    occurred_at=clock.now, ticket_id=late.id)
    )  # fmt: skip
    late = crm.tickets.get(late.id or "")
    assert late.first_response_breached_at == utc(2024, 3, 4, 11, 30)
    assert [e.entity_id for e in events if isinstance(e, SlaBreached)][-1] == late.id
