"""Support tickets."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity, Priority

__all__ = ["Channel", "Ticket"]


class Channel(enum.StrEnum):
    """How a ticket reached support."""

    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    CHAT = "chat"
    SOCIAL = "social"
    OTHER = "other"


@attrs.frozen(kw_only=True)
class Ticket(Entity):
    """A support request with a status, a priority and SLA due times.

    ``status`` is a stage key of the ticket pipeline (``new``, ``open``, ``pending``,
    ``on_hold``, ``solved``, ``closed`` by default). crmkit maintains the SLA fields on
    every write (see :mod:`crmkit.tickets`): due times from the ticket's SLA policy,
    ``resolved_at``/``closed_at`` on entering a solved/closed status, ``first_response_at``
    when an outbound interaction is linked, and ``*_breached_at`` when a breach is noticed.
    """

    collection: ClassVar[str] = "tickets"

    subject: str = f.text(required=True, max_length=2000)
    description: str | None = f.text(max_length=1_000_000, sensitivity="personal")
    status: str = f.ref(required=True, default="new")
    priority: Priority = f.choice(Priority, default=Priority.NORMAL)
    channel: Channel | None = f.choice(Channel)
    pipeline_id: str | None = f.ref()
    contact_id: str | None = f.ref()
    account_id: str | None = f.ref()
    assignee_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    sla_policy_id: str | None = f.ref()
    first_response_due_at: dt.datetime | None = f.timestamp()
    resolution_due_at: dt.datetime | None = f.timestamp()
    first_response_at: dt.datetime | None = f.timestamp()
    resolved_at: dt.datetime | None = f.timestamp()
    closed_at: dt.datetime | None = f.timestamp()
    first_response_breached_at: dt.datetime | None = f.timestamp()
    resolution_breached_at: dt.datetime | None = f.timestamp()
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()
