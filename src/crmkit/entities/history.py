"""Stage history: every move of a deal through its pipeline (and of a ticket's status)."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["StageChange"]


@attrs.frozen(kw_only=True)
class StageChange(Entity):
    """A record entering a stage: ``from_stage`` -> ``to_stage`` at ``at``, by ``by``.

    ``record_collection`` and ``record_id`` name the deal (``"deals"``) or ticket
    (``"tickets"``); ``from_stage`` is ``None`` when the record was created in
    ``to_stage``; ``by`` is the acting user's id when known and ``reason`` the reason given
    (a lost reason, a note). ``time_in_previous`` is how long the record stayed in
    ``from_stage``. Written by crmkit on every stage change, whatever the write path.
    """

    collection: ClassVar[str] = "stage_changes"
    lookups: ClassVar[tuple[str, ...]] = ("record_collection",)

    record_collection: str = f.text(required=True, max_length=64)
    record_id: str = f.ref(required=True)
    pipeline_id: str | None = f.ref()
    from_stage: str | None = f.ref()
    to_stage: str = f.ref(required=True)
    at: dt.datetime = f.timestamp(required=True)
    by: str | None = f.ref()
    reason: str | None = f.text(max_length=2000)
    time_in_previous: dt.timedelta | None = f.duration()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
