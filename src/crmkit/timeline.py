"""The timeline: everything that happened with a contact or an account, newest first.

``crm.timeline(contact_id)`` (or ``crm.timeline(account_id=...)``) returns one page of
:class:`TimelineItem` - interactions, deal stage changes, tickets, tasks and campaign member
status changes - merged in time order, newest first, and a cursor for the next page. For an
account the stream covers the account, its child accounts (all levels) and the contacts of
all of them (their primary account, or a link from :mod:`crmkit.relationships`).

Each source is one database query, filtered to the person or company, limited to
``limit + 1`` items older than the cursor and sorted by time; the sorted results are merged
with :func:`heapq.merge`. A page therefore reads at most ``5 x (limit + 1)`` records,
whatever the history's size. To find the stage changes of the deals and memberships
involved, the ids of those deals and campaign memberships are read first (and, for an
account, the ids of its child accounts and contacts).

Times: interactions at ``occurred_at``, stage and status changes at ``at``, tickets and
tasks at ``created_at``, orders (:mod:`crmkit.commerce`) at ``placed_at``. Items at the
same time come in :class:`TimelineKind` order, then by descending id, so paging never
skips or repeats an item. Through a user's view (``crm.as_user(u).timeline``) every query
is the view's, so only readable items appear (and the contact or account itself must be
readable).
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import heapq
import json
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import attrs

from crmkit.entities import Entity
from crmkit.errors import NotFound, ValidationError
from crmkit.query import Expr, F

__all__ = ["Timeline", "TimelineItem", "TimelineKind", "TimelinePage"]


class TimelineKind(enum.StrEnum):
    """What a timeline item is (the order of items that happened at the same time)."""

    INTERACTION = "interaction"
    DEAL_STAGE = "deal_stage"
    TICKET = "ticket"
    TASK = "task"
    CAMPAIGN_STATUS = "campaign_status"
    ORDER = "order"


_RANK = {kind: rank for rank, kind in enumerate(TimelineKind)}


@attrs.frozen
class TimelineItem:
    """One event: its ``kind``, when it happened (``at``, UTC) and the ``record`` itself (an
    ``Interaction``, a ``StageChange``, a ``Ticket`` or a ``Task``)."""

    kind: TimelineKind
    at: dt.datetime
    record: Entity

    def _key(self) -> tuple[dt.datetime, int, str]:
        # merged in descending order: later first, then kind order, then descending id
        return (self.at, -_RANK[self.kind], self.record.id or "")


@attrs.frozen
class TimelinePage(Sequence[TimelineItem]):
    """One page of the timeline and the cursor of the next (``None`` on the last page):
    pass it as ``before`` to continue."""

    items: tuple[TimelineItem, ...]
    next_cursor: str | None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]


@attrs.frozen
class _Position:
    at: dt.datetime
    rank: int
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.at.isoformat(), self.rank, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> _Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            at, rank, id = json.loads(raw)
            when = dt.datetime.fromisoformat(at)
            if when.utcoffset() is None or not isinstance(rank, int) or not isinstance(id, str):
                raise ValueError(cursor)
        except (ValueError, TypeError):
            raise ValidationError("before", cursor, "is not a valid timeline cursor") from None
        return cls(when, rank, id)

    def before(self, field: str, rank: int) -> Expr:
        """The records of a source of ``rank`` that come after this position (older)."""
        older: Expr = F(field) < self.at
        if rank < self.rank:  # same time: earlier kinds come first, so before the cursor
            return older
        if rank > self.rank:
            return F(field) <= self.at
        return older | ((F(field) == self.at) & (F.id < self.id))


@attrs.frozen
class _Source:
    kind: TimelineKind
    repository: Any
    where: Expr | None
    field: str


def _any(*parts: Expr | None) -> Expr | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    result = present[0]
    for part in present[1:]:
        result = result | part
    return result


def _in(field: str, ids: Sequence[str]) -> Expr | None:
    return F(field).in_(list(ids)) if ids else None


class Timeline:
    """The timeline of a CRM or of a user's view (``crm.timeline``); call it."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def __call__(
        self,
        record_id: str | None = None,
        /,
        *,
        contact_id: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> TimelinePage:
        """One page of the timeline of a contact or an account, newest first.

        Give a contact or account id (positionally, or as ``contact_id=`` / ``account_id=``);
        ``before`` is the ``next_cursor`` of the previous page. Raises ``NotFound`` when the
        record does not exist (or is not readable through a view), ``ValidationError`` for
        a bad ``limit`` or cursor, or when no or several ids are given.
        """
        given = [i for i in (record_id, contact_id, account_id) if i is not None]
        if len(given) != 1:
            raise ValidationError("timeline", given, "takes exactly one contact or account id")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError("limit", limit, "must be a whole number >= 1")
        cursor = None if before is None else _Position.decode(before)
        sources = self._sources(record_id, contact_id, account_id)
        streams = [self._query(s, cursor, limit + 1) for s in sources]
        merged = heapq.merge(*streams, key=TimelineItem._key, reverse=True)
        items = list(islice(merged, limit + 1))
        more = len(items) > limit
        items = items[:limit]
        next_cursor = None
        if more:
            last = items[-1]
            next_cursor = _Position(last.at, _RANK[last.kind], last.record.id or "").encode()
        return TimelinePage(tuple(items), next_cursor)

    # --- what to read ---------------------------------------------------------------------

    def _sources(
        self, record_id: str | None, contact_id: str | None, account_id: str | None
    ) -> list[_Source]:
        src = self._source
        if record_id is not None:
            try:
                src.contacts.get(record_id)
                contact_id = record_id
            except NotFound:
                src.accounts.get(record_id)
                account_id = record_id
        elif contact_id is not None:
            src.contacts.get(contact_id)
        else:
            src.accounts.get(account_id or "")
        if contact_id is not None:
            accounts: list[str] = []
            contacts = [contact_id]
        else:
            accounts = self._account_tree(account_id or "")
            contacts = [c.id or "" for c in src.contacts.iterate(F.account_id.in_(accounts))]
            # contacts linked to the accounts in another role (crmkit.relationships): the
            # links come from the CRM (a user needs no grant on them), and only the linked
            # contacts the source may read count, as for the contacts above
            links = getattr(src, "crm", src).account_contacts.iterate(F.account_id.in_(accounts))
            linked = sorted({x.contact_id for x in links} - set(contacts))
            contacts += [c.id or "" for c in src.contacts.get_many(linked)]
        by_account = _in("account_id", accounts)
        deals = _any(by_account, _in("contact_ids", contacts))
        deal_ids = [] if deals is None else [d.id or "" for d in src.deals.iterate(deals)]
        member_ids: list[str] = []
        if contacts:
            member_ids = [
                m.id or "" for m in src.campaign_members.iterate(F.contact_id.in_(contacts))
            ]

        def changes(collection: str, ids: list[str]) -> Expr | None:
            return (F.record_collection == collection) & F.record_id.in_(ids) if ids else None

        return [
            _Source(
                TimelineKind.INTERACTION,
                src.interactions,
                _any(by_account, _in("contact_ids", contacts)),
                "occurred_at",
            ),
            _Source(TimelineKind.DEAL_STAGE, src.stage_changes, changes("deals", deal_ids), "at"),
            _Source(
                TimelineKind.TICKET,
                src.tickets,
                _any(by_account, _in("contact_id", contacts)),
                "created_at",
            ),
            _Source(
                TimelineKind.TASK,
                src.tasks,
                _any(by_account, _in("contact_id", contacts)),
                "created_at",
            ),
            _Source(
                TimelineKind.CAMPAIGN_STATUS,
                src.stage_changes,
                changes("campaign_members", member_ids),
                "at",
            ),
            # orders (crmkit.commerce), at the time they were placed
            _Source(
                TimelineKind.ORDER,
                src.orders,
                _any(by_account, _in("contact_id", contacts)),
                "placed_at",
            ),
        ]

    def _account_tree(self, account_id: str) -> list[str]:
        """The account and its descendants (every level; a cycle in ``parent_id`` stops)."""
        seen = [account_id]
        frontier = [account_id]
        while frontier:
            children = self._source.accounts.iterate(F.parent_id.in_(frontier))
            frontier = [a.id or "" for a in children if a.id not in seen]
            seen += frontier
        return seen

    def _query(
        self, source: _Source, cursor: _Position | None, limit: int
    ) -> Iterator[TimelineItem]:
        if source.where is None:
            return iter(())
        where = source.where
        rank = _RANK[source.kind]
        if cursor is not None:
            where = where & cursor.before(source.field, rank)
        rows = source.repository.find(where, order_by=[f"-{source.field}", "-id"], limit=limit)
        return (TimelineItem(source.kind, getattr(r, source.field), r) for r in rows)
