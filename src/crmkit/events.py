"""Domain events: what changed, published to subscribers after the change commits.

Handlers never see a change that was rolled back: events raised inside a transaction are
held until the outermost transaction commits and dropped if it rolls back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = [
    "Created",
    "DealStageChanged",
    "Deleted",
    "Event",
    "EventBus",
    "SlaBreached",
    "StageChanged",
    "TicketStatusChanged",
    "Updated",
]

log = logging.getLogger("crmkit.events")


@attrs.frozen(kw_only=True)
class Event:
    """Base of every domain event: which record, when, and by whom (a user id or None)."""

    collection: str
    entity_id: str
    at: dt.datetime
    actor: str | None = None


@attrs.frozen(kw_only=True)
class Created(Event):
    """A record was added; ``entity`` is the stored record."""

    entity: Any


@attrs.frozen(kw_only=True)
class Updated(Event):
    """A record was changed from ``before`` to ``after``."""

    before: Any
    after: Any

    @property
    def changed(self) -> tuple[str, ...]:
        """Names of the fields whose value changed (storage fields excluded)."""
        skip = {"version", "updated_at"}
        return tuple(
            a.name
            for a in attrs.fields(type(self.after))
            if a.name not in skip and getattr(self.before, a.name) != getattr(self.after, a.name)
        )


@attrs.frozen(kw_only=True)
class Deleted(Event):
    """A record was deleted; ``entity`` is its last stored state."""

    entity: Any


@attrs.frozen(kw_only=True)
class StageChanged(Event):
    """A deal or ticket entered a new stage (``from_stage`` is ``None`` for a new record).

    ``record`` is the stored record after the change; ``reason`` the reason given, if any.
    """

    pipeline_id: str | None
    from_stage: str | None
    to_stage: str
    record: Any
    reason: str | None = None


@attrs.frozen(kw_only=True)
class DealStageChanged(StageChanged):
    """A deal moved to another stage of its pipeline (won and lost are stages too)."""


@attrs.frozen(kw_only=True)
class TicketStatusChanged(StageChanged):
    """A ticket changed status (``from_stage``/``to_stage`` are the statuses)."""


@attrs.frozen(kw_only=True)
class SlaBreached(Event):
    """A ticket missed an SLA target: ``target`` is ``"first_response"`` or ``"resolution"``
    and ``due_at`` the missed due time. Published once per ticket and target by
    :meth:`crmkit.tickets.TicketRepository.check_breaches`."""

    target: str
    due_at: dt.datetime
    ticket: Any


EventT = TypeVar("EventT", bound=Event)
Handler = Callable[[Any], None]


class EventBus:
    """Subscribers by event type; a subscription to a base class receives its subclasses."""

    def __init__(self) -> None:
        self._handlers: list[tuple[type[Event], Handler]] = []

    def subscribe(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        """Call ``handler(event)`` for every committed event of ``event_type`` (or a subclass)."""
        self._handlers.append((event_type, handler))

    def unsubscribe(self, event_type: type[Event], handler: Callable[[Any], None]) -> None:
        """Remove a subscription made with :meth:`subscribe` (no error if absent)."""
        self._handlers = [(t, h) for t, h in self._handlers if (t, h) != (event_type, handler)]

    @property
    def active(self) -> bool:
        """True when anyone listens (so writers can skip building events)."""
        return bool(self._handlers)

    def publish(self, events: list[Event]) -> None:
        """Deliver committed events in order. A failing handler is logged and re-raised
        after the remaining handlers ran (the change itself is already committed)."""
        first_error: BaseException | None = None
        for event in events:
            for event_type, handler in list(self._handlers):
                if isinstance(event, event_type):
                    try:
                        handler(event)
                    except Exception as exc:
                        log.exception("event handler %r failed for %r", handler, event)
                        first_error = first_error or exc
        if first_error is not None:
            raise first_error
