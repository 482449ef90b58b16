"""Segments: stored rules that select contacts or accounts."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["Segment", "SegmentKind"]


class SegmentKind(enum.StrEnum):
    """Dynamic segments are evaluated each time; static ones keep a snapshot of members."""

    DYNAMIC = "dynamic"
    STATIC = "static"


@attrs.frozen(kw_only=True)
class Segment(Entity):
    """A named rule over ``contacts`` or ``accounts``, stored as a query dict.

    ``rule`` is the output of ``expr.to_dict()``; :func:`crmkit.query.from_dict` rebuilds it.
    """

    collection: ClassVar[str] = "segments"

    name: str = f.text(required=True, max_length=200)
    entity: str = f.ref(required=True, default="contacts")
    rule: Any = f.json_document()
    kind: SegmentKind = f.choice(SegmentKind, default=SegmentKind.DYNAMIC)
    member_ids: tuple[str, ...] = f.ref_list()
    snapshot_at: dt.datetime | None = f.timestamp()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
