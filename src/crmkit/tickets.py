"""Tickets: a status pipeline, SLA due times kept on the ticket, breach queries.

Status. A ticket's ``status`` is a stage key of its pipeline: the stored pipeline
``pipeline_id`` names (of kind ``tickets``), or :func:`crmkit.pipelines.default_ticket_pipeline`
(``new``, ``open``, ``pending``, ``on_hold``, ``solved``, ``closed``) when it names none.
Status changes follow the pipeline's transition policy and required fields, are recorded
as :class:`~crmkit.entities.StageChange` history and publish
:class:`~crmkit.events.TicketStatusChanged`. Entering a stage of kind won/lost (``solved``,
``closed``) sets ``resolved_at`` (and ``closed_at`` for ``closed``); reopening clears them.

SLA. Policies are registered on the CRM (``crm.sla.define(name, policy, calendar)``); a
ticket uses the one its ``sla_policy_id`` names, or the default one. On every write that
changes the status, priority or policy crmkit recomputes ``first_response_due_at`` and
``resolution_due_at`` with :func:`crmkit.sla.due_times` from the ticket's status history,
so time in a pausing status (``pending``, ``on_hold``) does not count and a paused ticket has
no resolution due time. Linking an outbound interaction to a ticket records
``first_response_at``. A target met late, or found missed by
:meth:`TicketOperations.check_breaches`, sets ``first_response_breached_at`` /
``resolution_breached_at`` and publishes :class:`~crmkit.events.SlaBreached` once.
:meth:`TicketOperations.breaching` and :meth:`TicketOperations.due_within` are database
queries.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.calendars import BusinessCalendar
from crmkit.entities import Direction, Interaction, PipelineKind, StageChange, StageKind, Ticket
from crmkit.errors import NotFound, TransitionError, ValidationError
from crmkit.events import SlaBreached
from crmkit.pipelines import check_transition, default_ticket_pipeline, record_change
from crmkit.query import Expr, F
from crmkit.repository import Repository, Verbs
from crmkit.sla import SlaPolicy, due_times

if TYPE_CHECKING:
    from crmkit.crm import CRM
    from crmkit.entities import Pipeline

__all__ = [
    "ServiceLevel",
    "SlaRegistry",
    "TicketOperations",
    "TicketRepository",
    "TicketRules",
]

_TARGETS = ("first_response", "resolution")


@attrs.frozen
class ServiceLevel:
    """A named SLA: targets per priority (:class:`~crmkit.sla.SlaPolicy`) measured in the
    business hours of a :class:`~crmkit.calendars.BusinessCalendar`."""

    name: str
    policy: SlaPolicy
    calendar: BusinessCalendar


class SlaRegistry:
    """The SLA policies of one CRM, by name (``crm.sla``); configured in code at start-up,
    like the calendars they use."""

    def __init__(self) -> None:
        self._levels: dict[str, ServiceLevel] = {}
        self._default: str | None = None

    def define(
        self,
        name: str,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
        *,
        default: bool = False,
    ) -> ServiceLevel:
        """Register (or replace) the policy ``name``; ``default=True`` applies it to tickets
        without ``sla_policy_id`` (the first policy defined is the default until then).

        Raises ``ValidationError`` for a blank name or arguments of the wrong type.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("sla.name", name, "must be a non-blank name")
        if not isinstance(policy, SlaPolicy):
            raise ValidationError("sla.policy", policy, "must be an SlaPolicy")
        if not isinstance(calendar, BusinessCalendar):
            raise ValidationError("sla.calendar", calendar, "must be a BusinessCalendar")
        level = ServiceLevel(name, policy, calendar)
        self._levels[name] = level
        if default or self._default is None:
            self._default = name
        return level

    def get(self, name: str) -> ServiceLevel:
        """The policy called ``name``; raises ``ValidationError`` when none is."""
        try:
            return self._levels[name]
        except KeyError:
            raise ValidationError("sla_policy_id", name, "is not a defined SLA policy") from None

    @property
    def default(self) -> ServiceLevel | None:
        """The policy of tickets without ``sla_policy_id`` (``None`` when none is defined)."""
        return None if self._default is None else self._levels[self._default]

    def for_ticket(self, ticket: Ticket) -> ServiceLevel | None:
        """The policy that applies to ``ticket`` (an unknown ``sla_policy_id``: none)."""
        if ticket.sla_policy_id is None:
            return self.default
        return self._levels.get(ticket.sla_policy_id)


class TicketRules:
    """Ticket status and SLA rules of one CRM: a write hook and after-write hooks."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def pipeline(self, ticket: Ticket) -> Pipeline | None:
        """The pipeline governing ``ticket`` (the default one without ``pipeline_id``)."""
        if ticket.pipeline_id is None:
            return _DEFAULT_PIPELINE
        return self._crm.pipeline_rules.pipeline(ticket.pipeline_id, PipelineKind.TICKETS)

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """The write hook: check the status change, keep the SLA fields up to date."""
        if not isinstance(entity, Ticket):
            return entity
        pipeline = self.pipeline(entity)
        if pipeline is None:
            return entity
        crm = self._crm
        now = entity.updated_at or crm.now()  # the write's time
        source = None
        if previous is not None and previous.pipeline_id == entity.pipeline_id:
            source = previous.status
        moved = previous is None or source != entity.status
        changes: dict[str, Any] = {}
        if moved:
            stage = check_transition(pipeline, source, entity.status, entity, what="ticket")
            if previous is not None:
                if stage.kind is StageKind.OPEN:
                    changes.update(resolved_at=None, closed_at=None)
                else:
                    changes["resolved_at"] = entity.resolved_at or now
                    if entity.status == "closed":
                        changes["closed_at"] = entity.closed_at or now
        level = crm.sla.for_ticket(entity)
        if level is not None:
            if entity.sla_policy_id is None:
                changes["sla_policy_id"] = level.name
            recompute = (
                previous is None
                or moved
                or previous.priority != entity.priority
                or previous.sla_policy_id != changes.get("sla_policy_id", entity.sla_policy_id)
            )
            if recompute:
                opened = entity.created_at or now
                history = [] if previous is None else self._history(previous)
                if moved:
                    history.append((now, entity.status))
                due = due_times(level.policy, level.calendar, entity.priority, opened, history)
                changes["first_response_due_at"] = due.first_response
                changes["resolution_due_at"] = due.resolution
        result: Ticket = attrs.evolve(entity, **changes) if changes else entity
        if level is None:
            return result  # due times are the caller's, not an SLA crmkit keeps
        late: dict[str, Any] = {}
        for target, done in (
            ("first_response", result.first_response_at),
            ("resolution", result.resolved_at),
        ):
            due_at = getattr(result, f"{target}_due_at")
            if (
                done is not None
                and due_at is not None
                and done > due_at
                and getattr(result, f"{target}_breached_at") is None
            ):
                late[f"{target}_breached_at"] = due_at
        return attrs.evolve(result, **late) if late else result

    def _history(self, ticket: Ticket) -> list[tuple[dt.datetime, str]]:
        changes = self._crm.stage_changes.find(
            (F.record_collection == "tickets") & (F.record_id == (ticket.id or "")),
            order_by=["at", "id"],
        )
        return [(c.at, c.to_stage) for c in changes]

    def applies(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether :meth:`after_write` has work: a status change or a new breach."""
        if not isinstance(stored, Ticket):
            return False
        if previous is None or previous.status != stored.status:
            return True
        if previous.pipeline_id != stored.pipeline_id:
            return True
        return any(
            getattr(stored, f"{t}_breached_at") is not None
            and getattr(previous, f"{t}_breached_at") is None
            for t in _TARGETS
        )

    def after_write(self, stored: Any, previous: Any | None, /) -> None:
        """Record status changes and publish SLA breaches of a stored ticket."""
        if not isinstance(stored, Ticket):
            return
        crm = self._crm
        source = None
        if previous is not None and previous.pipeline_id == stored.pipeline_id:
            source = previous.status
        if (previous is None or source != stored.status) and self.pipeline(stored) is not None:
            record_change(crm, "tickets", stored, previous, source, stored.status)
        if not crm.listening:
            return
        for target in _TARGETS:
            field = f"{target}_breached_at"
            if getattr(stored, field) is not None and (
                previous is None or getattr(previous, field) is None
            ):
                crm.emit(
                    SlaBreached(
                        collection="tickets",
                        entity_id=stored.id or "",
                        at=crm.now(),
                        actor=crm.acting_user,
                        target=target,
                        due_at=getattr(stored, f"{target}_due_at") or getattr(stored, field),
                        ticket=stored,
                    )
                )

    def is_response(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether an interaction newly answers a ticket (outbound, linked to it)."""
        if not isinstance(stored, Interaction) or stored.ticket_id is None:
            return False
        if stored.direction is not Direction.OUTBOUND:
            return False
        return not (
            previous is not None
            and previous.ticket_id == stored.ticket_id
            and previous.direction is Direction.OUTBOUND
        )

    def interaction_written(self, stored: Any, previous: Any | None, /) -> None:
        """After-write hook of interactions: an outbound interaction linked to a ticket is
        the ticket's first response (when it has none yet)."""
        if not self.is_response(stored, previous):
            return
        try:
            ticket = self._crm.tickets.get(stored.ticket_id)
        except NotFound:
            return  # a dangling link (the ticket arrives later or was deleted)
        if ticket.first_response_at is None:
            self._crm.tickets.update(attrs.evolve(ticket, first_response_at=stored.occurred_at))


_DEFAULT_PIPELINE = default_ticket_pipeline()


class TicketOperations(Verbs[Ticket]):
    """Ticket verbs shared by the CRM's ticket repository and a user's view of it."""

    def move(
        self, ticket_id: str, status: str, *, by: str | None = None, reason: str | None = None
    ) -> Ticket:
        """Change a ticket's status; raises :class:`~crmkit.TransitionError` (nothing
        changed) when its pipeline forbids it, ``NotFound``, ``ConflictError``."""
        crm = self._operations_crm()
        ticket = self.get(ticket_id)
        if crm.ticket_rules.pipeline(ticket) is None:
            raise TransitionError(
                f"ticket {ticket.subject!r} is in no stored pipeline ({ticket.pipeline_id!r})"
            )
        with crm.acting(by or self._default_actor(), reason=reason):
            return self.update(attrs.evolve(ticket, status=status))

    def history(self, ticket_id: str) -> list[StageChange]:
        """The ticket's status changes, oldest first (``NotFound`` if not readable)."""
        ticket = self.get(ticket_id)
        return self._operations_crm().stage_changes.find(
            (F.record_collection == "tickets") & (F.record_id == (ticket.id or "")),
            order_by=["at", "id"],
        )

    def breaching_filter(self, at: dt.datetime) -> Expr:
        """The filter of tickets past a due time at ``at`` with that target still unmet."""
        return ((F.first_response_due_at < at) & ~F.first_response_at.exists()) | (
            (F.resolution_due_at < at) & ~F.resolved_at.exists()
        )

    def breaching(
        self, at: dt.datetime | None = None, *, where: Expr | None = None
    ) -> list[Ticket]:
        """Tickets whose first response or resolution is overdue at ``at`` (default now)
        and not done yet, most overdue first; a database query."""
        at = at or self._operations_crm().now()
        cond = self.breaching_filter(at)
        return self.find(cond if where is None else cond & where, order_by="resolution_due_at")

    def due_within(
        self, within: dt.timedelta, *, at: dt.datetime | None = None, where: Expr | None = None
    ) -> list[Ticket]:
        """Tickets with an unmet target due between ``at`` (default now) and ``at + within``
        (not yet breached); a database query. Raises ``ValidationError`` for a negative
        or non-timedelta ``within``."""
        if not isinstance(within, dt.timedelta) or within < dt.timedelta(0):
            raise ValidationError("within", within, "must be a non-negative timedelta")
        start = at or self._operations_crm().now()
        end = start + within
        cond = (F.first_response_due_at.between(start, end) & ~F.first_response_at.exists()) | (
            F.resolution_due_at.between(start, end) & ~F.resolved_at.exists()
        )
        return self.find(cond if where is None else cond & where, order_by="first_response_due_at")

    def check_breaches(self, at: dt.datetime | None = None) -> list[Ticket]:
        """Mark tickets newly breaching at ``at`` (default now): set
        ``*_breached_at`` to the missed due time, publishing
        :class:`~crmkit.events.SlaBreached` once per ticket and target. Returns the
        updated tickets. Run it periodically (a scheduler, a cron job)."""
        crm = self._operations_crm()
        at = at or crm.now()
        fresh = (
            (F.first_response_due_at < at)
            & ~F.first_response_at.exists()
            & ~F.first_response_breached_at.exists()
        ) | (
            (F.resolution_due_at < at)
            & ~F.resolved_at.exists()
            & ~F.resolution_breached_at.exists()
        )
        out: list[Ticket] = []
        with crm.transaction():
            for ticket in self.find(fresh):
                changes: dict[str, Any] = {}
                for target, done in (
                    ("first_response", ticket.first_response_at),
                    ("resolution", ticket.resolved_at),
                ):
                    due_at = getattr(ticket, f"{target}_due_at")
                    if (
                        done is None
                        and due_at is not None
                        and due_at < at
                        and getattr(ticket, f"{target}_breached_at") is None
                    ):
                        changes[f"{target}_breached_at"] = due_at
                if changes:
                    with crm.acting(self._default_actor()):
                        out.append(self.update(attrs.evolve(ticket, **changes)))
        return out


class TicketRepository(Repository[Ticket], TicketOperations):
    """The tickets repository: :class:`Repository` plus :class:`TicketOperations`."""
