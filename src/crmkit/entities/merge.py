"""Merge records: what a merge of duplicates changed, kept so that it can be undone."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import attrs

from crmkit.entities import _fields as f
from crmkit.entities._base import Entity

__all__ = ["MergeRecord"]


@attrs.frozen(kw_only=True)
class MergeRecord(Entity):
    """One merge of duplicate contacts or accounts into a survivor (``crm.dedupe.merge``).

    ``record_collection`` is ``"contacts"`` or ``"accounts"``; ``survivor_id`` the record
    that was kept and ``merged_ids`` the ones folded into it (and deleted). ``snapshot``
    holds everything needed to undo the merge: the survivor and every duplicate as they
    were before, each related record that was re-pointed (its changed fields before the
    merge and its version after it), and the survivor's version after the merge.
    ``rules`` are the survivorship rules applied. ``unmerged_at`` is set once the merge
    has been undone (``crm.dedupe.unmerge``).
    """

    collection: ClassVar[str] = "merges"
    lookups: ClassVar[tuple[str, ...]] = ("survivor_id",)

    record_collection: str = f.ref(required=True)
    survivor_id: str = f.ref(required=True)
    merged_ids: tuple[str, ...] = f.ref_list()
    snapshot: Any = f.json_document()
    rules: Any = f.json_document()
    actor_id: str | None = f.ref()
    owner_id: str | None = f.ref()
    team_id: str | None = f.ref()
    merged_at: dt.datetime | None = f.timestamp()
    unmerged_at: dt.datetime | None = f.timestamp()
