"""Deals: sales opportunities moving through a pipeline."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity, Money

__all__ = ["Deal"]


@attrs.frozen(kw_only=True)
class Deal(Entity):
    """A sales opportunity in a pipeline stage.

    ``contact_ids`` is the buying committee; ``contact_roles`` maps some of them to their
    role (``"decision_maker"``, ``"champion"`` ...). ``amount`` is :class:`Money`.
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
    tags: tuple[str, ...] = f.text_list()
    custom: Any = f.mapping()
    external_ids: Any = f.text_mapping()
