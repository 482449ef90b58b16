"""Deals: sales opportunities moving through a pipeline."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity, Money

__all__ = ["ContactRole", "Deal"]


class ContactRole(enum.StrEnum):
    """Common roles of a contact in a deal's buying committee (any text is accepted)."""

    DECISION_MAKER = "decision_maker"
    ECONOMIC_BUYER = "economic_buyer"
    CHAMPION = "champion"
    INFLUENCER = "influencer"
    TECHNICAL_BUYER = "technical_buyer"
    USER = "user"
    BLOCKER = "blocker"


@attrs.frozen(kw_only=True)
class Deal(Entity):
    """A sales opportunity in a pipeline stage.

    ``contact_ids`` is the buying committee; ``contact_roles`` maps some of them to their
    role (:class:`ContactRole` values such as ``"decision_maker"``, ``"champion"``, or any
    other text). ``amount`` is :class:`Money`.

    In a stored pipeline, crmkit maintains the stage fields on every write (see
    :mod:`crmkit.pipelines`): ``probability`` follows the stage, ``stage_entered_at`` and
    ``closed_at`` are set on entry, ``expected_revenue`` is ``amount x probability`` and
    ``cycle_time`` the time from creation to close.
    """

    collection: ClassVar[str] = "deals"

    name: str = f.text(required=True, max_length=500)
    pipeline_id: str | None = f.ref()
    stage: str | None = f.ref()
    amount: Money | None = f.value_object(Money)
    probability: Decimal | None = f.decimal(minimum=Decimal(0), maximum=Decimal(1))
    close_date: dt.date | None = f.day()
    account_id: str | None = f.ref()
    contact_ids: tuple[str, ...] = f.ref_list()
    contact_roles: Any = f.text_mapping()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    stage_entered_at: dt.datetime | None = f.timestamp()
    closed_at: dt.datetime | None = f.timestamp()
    lost_reason: str | None = f.text(max_length=500)
    expected_revenue: Money | None = f.value_object(Money)
    cycle_time: dt.timedelta | None = f.duration()
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()
