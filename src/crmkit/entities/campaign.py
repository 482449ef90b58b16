"""Marketing campaigns and their members."""

from __future__ import annotations

import datetime as dt
import enum
from typing import ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity, Money

__all__ = ["Campaign", "CampaignChannel", "CampaignMember", "CampaignStatus", "MemberStatus"]


class CampaignChannel(enum.StrEnum):
    """The medium a campaign uses."""

    EMAIL = "email"
    SMS = "sms"
    SOCIAL = "social"
    ADS = "ads"
    EVENT = "event"
    DIRECT_MAIL = "direct_mail"
    PHONE = "phone"
    OTHER = "other"


class CampaignStatus(enum.StrEnum):
    """Lifecycle of a campaign."""

    PLANNED = "planned"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MemberStatus(enum.StrEnum):
    """How far a campaign member got."""

    PLANNED = "planned"
    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    RESPONDED = "responded"
    CONVERTED = "converted"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


@attrs.frozen(kw_only=True)
class Campaign(Entity):
    """A marketing campaign with a budget and a cost."""

    collection: ClassVar[str] = "campaigns"

    name: str = f.text(required=True, max_length=200)
    channel: CampaignChannel = f.choice(CampaignChannel, default=CampaignChannel.EMAIL)
    status: CampaignStatus = f.choice(CampaignStatus, default=CampaignStatus.PLANNED)
    starts_at: dt.datetime | None = f.timestamp()
    ends_at: dt.datetime | None = f.timestamp()
    budget: Money | None = f.value_object(Money)
    cost: Money | None = f.value_object(Money)
    segment_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()


@attrs.frozen(kw_only=True)
class CampaignMember(Entity):
    """A contact's membership in a campaign and how far it got."""

    collection: ClassVar[str] = "campaign_members"

    campaign_id: str = f.ref(required=True)
    contact_id: str = f.ref(required=True)
    status: MemberStatus = f.choice(MemberStatus, default=MemberStatus.PLANNED)
    status_at: dt.datetime | None = f.timestamp()
