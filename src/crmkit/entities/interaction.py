"""Interactions: every email, call, meeting, note, message exchanged with a customer."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["Direction", "Interaction", "InteractionKind"]


class InteractionKind(enum.StrEnum):
    """The channel of an interaction."""

    EMAIL = "email"
    CALL = "call"
    MEETING = "meeting"
    NOTE = "note"
    SMS = "sms"
    CHAT = "chat"
    SOCIAL = "social"
    LETTER = "letter"


class Direction(enum.StrEnum):
    """Whether the customer reached out (inbound) or the organization did (outbound)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


@attrs.frozen(kw_only=True)
class Interaction(Entity):
    """One exchange with customers, linked to contacts and optionally an account, deal or ticket.

    ``occurred_at`` must be timezone-aware; ``duration`` is a non-negative ``timedelta``.
    """

    collection: ClassVar[str] = "interactions"

    kind: InteractionKind = f.choice(InteractionKind, required=True)
    occurred_at: dt.datetime = f.timestamp(required=True)
    direction: Direction | None = f.choice(Direction)
    subject: str | None = f.text(max_length=2000)
    body: str | None = f.text(max_length=10_000_000)
    contact_ids: tuple[str, ...] = f.ref_list()
    account_id: str | None = f.ref()
    deal_id: str | None = f.ref()
    ticket_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    duration: dt.timedelta | None = f.duration()
    outcome: str | None = f.text(max_length=200)
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()
