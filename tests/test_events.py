"""Domain events: published after commit only, never for rolled-back changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import crmkit
from crmkit import Contact, Deal, Pipeline, Stage, Ticket
from crmkit.events import (
    Created,
    DealStageChanged,
    Deleted,
    Event,
    StageChanged,
    TicketStatusChanged,
    Updated,
)


class Boom(Exception):
    pass


def failing(crm: crmkit.CRM, write: Callable[[], object]) -> None:
    """Run ``write`` in a transaction that then fails."""
    with crm.transaction():
        write()
        raise Boom


def test_created_updated_deleted_after_commit_only() -> None:
    crm = crmkit.connect("memory://")
    seen: list[Event] = []
    crm.events.subscribe(Event, seen.append)
    with pytest.raises(Boom):
        failing(crm, lambda: crm.contacts.add(Contact(first_name="Gone")))
    assert seen == []
    with crm.transaction():
        ada = crm.contacts.add(Contact(first_name="Ada"))
        import attrs

        crm.contacts.update(attrs.evolve(ada, title="CTO"))
        assert seen == []  # nothing before the commit
    assert [type(e) for e in seen] == [Created, Updated]
    assert isinstance(seen[1], Updated)
    assert seen[1].changed == ("title",)
    crm.contacts.delete(ada.id or "")
    assert type(seen[-1]) is Deleted


def test_stage_and_status_events_carry_the_change() -> None:
    crm = crmkit.connect("memory://")
    pipeline = crm.pipelines.add(
        Pipeline(name="P", stages=[Stage(key="a", name="A"), Stage(key="b", name="B")])
    )
    deals: list[DealStageChanged] = []
    statuses: list[TicketStatusChanged] = []
    both: list[StageChanged] = []
    crm.events.subscribe(DealStageChanged, deals.append)
    crm.events.subscribe(TicketStatusChanged, statuses.append)
    crm.events.subscribe(StageChanged, both.append)
    deal = crm.deals.add(Deal(name="D", pipeline_id=pipeline.id))
    with pytest.raises(Boom):
        failing(crm, lambda: crm.deals.move(deal.id or "", "b"))
    assert [(e.from_stage, e.to_stage) for e in deals] == [(None, "a")]
    crm.deals.move(deal.id or "", "b", by="u1", reason="ready")
    last = deals[-1]
    assert (last.from_stage, last.to_stage, last.actor, last.reason) == ("a", "b", "u1", "ready")
    assert last.record.stage == "b"
    ticket = crm.tickets.add(Ticket(subject="T"))
    crm.tickets.move(ticket.id or "", "open")
    assert [(e.from_stage, e.to_stage) for e in statuses] == [(None, "new"), ("new", "open")]
    assert len(both) == 4


def test_a_failing_handler_does_not_undo_the_commit() -> None:
    crm = crmkit.connect("memory://")

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    crm.events.subscribe(Created, broken)
    with pytest.raises(RuntimeError):
        crm.contacts.add(Contact(first_name="Kept"))
    assert crm.contacts.count() == 1
