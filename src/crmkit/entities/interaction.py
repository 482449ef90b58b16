"""Interactions: every email, call, meeting, note, message exchanged with a customer."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = [
    "Attachment",
    "Direction",
    "Interaction",
    "InteractionKind",
    "Participant",
    "ParticipantRole",
]


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


class ParticipantRole(enum.StrEnum):
    """How a participant took part in a message: its sender or a recipient."""

    FROM = "from"
    TO = "to"
    CC = "cc"


@attrs.frozen(kw_only=True)
class Participant:
    """A sender or recipient of an email: its normalized address, display name and the
    contact it was linked to (``None`` when no contact has the address)."""

    role: ParticipantRole = f.choice(ParticipantRole, required=True)
    address: str = f.text(required=True, max_length=320, sensitivity="personal")
    name: str | None = f.text(max_length=500, sensitivity="personal")
    contact_id: str | None = f.ref()


@attrs.frozen(kw_only=True)
class Attachment:
    """Metadata of an email attachment (the content itself is not stored)."""

    filename: str | None = f.text(max_length=1000)
    content_type: str = f.text(required=True, max_length=200)
    size: int = f.integer(minimum=0, default=0)
    sha256: str = f.text(required=True, max_length=64)


@attrs.frozen(kw_only=True)
class Interaction(Entity):
    """One exchange with customers, linked to contacts and optionally an account, deal or ticket.

    ``occurred_at`` must be timezone-aware; ``duration`` is a non-negative ``timedelta``.
    """

    collection: ClassVar[str] = "interactions"
    lookups: ClassVar[tuple[str, ...]] = ("message_id", "thread_id")

    kind: InteractionKind = f.choice(InteractionKind, required=True)
    occurred_at: dt.datetime = f.timestamp(required=True)
    direction: Direction | None = f.choice(Direction)
    subject: str | None = f.text(max_length=2000, sensitivity="personal")
    body: str | None = f.text(max_length=10_000_000, sensitivity="personal")
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
    # email capture (see crmkit.email): the message key (its Message-ID, or a content hash
    # when it has none), the conversation it belongs to, who took part, attachment metadata
    # and the quoted reply text and signature kept apart from ``body``
    message_id: str | None = f.text(max_length=1000)
    thread_id: str | None = f.text(max_length=1000)
    participants: tuple[Participant, ...] = f.value_list(Participant)
    attachments: tuple[Attachment, ...] = f.value_list(Attachment)
    quoted_text: str | None = f.text(max_length=10_000_000, sensitivity="personal")
    signature: str | None = f.text(max_length=100_000, sensitivity="personal")
