"""Campaigns: members drawn from segments or lists, member status history, and reports.

``crm.campaigns`` (and a user's ``crm.as_user(u).campaigns``) adds to the repository:

- :meth:`CampaignOperations.add_members` - make contacts members of a campaign, from a
  segment or a list of ids. Adding is idempotent (a contact is a member once) and contacts
  with ``do_not_contact`` set, or unsubscribed from any campaign, are left out; the
  returned :class:`Membership` lists what was added, what was already there and every
  exclusion with its reason;
- :meth:`CampaignOperations.set_status` - record a member's progress (``sent``,
  ``opened``, ``responded`` ...) and when it happened;
- :meth:`CampaignOperations.report` - the funnel, response and conversion rates, cost per
  response, and the deals the campaign influenced with their won revenue.

On every write of a :class:`~crmkit.entities.CampaignMember`, whatever the path,
:class:`CampaignRules` keeps ``status_at`` (the time of the last status change: on an update
that changes the status, now unless the write sets it) and records each status change as a
:class:`~crmkit.entities.StageChange` with ``record_collection="campaign_members"`` in the
same transaction (the member's status history, shown by the timeline).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from crmkit.aggregation import Metric
from crmkit.entities import (
    Campaign,
    CampaignMember,
    Deal,
    MemberStatus,
    Money,
    PipelineKind,
    StageChange,
    StageKind,
)
from crmkit.errors import NotFound, ValidationError
from crmkit.permissions import ScopedRepository
from crmkit.protocols import chunked
from crmkit.query import F
from crmkit.repository import Repository, Verbs

if TYPE_CHECKING:
    from crmkit.crm import CRM

__all__ = [
    "FUNNEL",
    "CampaignOperations",
    "CampaignReport",
    "CampaignRepository",
    "CampaignRules",
    "Exclusion",
    "FunnelStep",
    "Membership",
    "ScopedCampaignRepository",
]

#: The statuses a member moves through, in order (``bounced`` and ``unsubscribed`` are
#: exits: a bounce reached ``sent``, an unsubscribe reached ``delivered``).
FUNNEL: tuple[MemberStatus, ...] = (
    MemberStatus.PLANNED,
    MemberStatus.SENT,
    MemberStatus.DELIVERED,
    MemberStatus.OPENED,
    MemberStatus.CLICKED,
    MemberStatus.RESPONDED,
    MemberStatus.CONVERTED,
)
_EXITS = {
    MemberStatus.BOUNCED: MemberStatus.SENT,
    MemberStatus.UNSUBSCRIBED: MemberStatus.DELIVERED,
}
_RESPONDED = (MemberStatus.RESPONDED, MemberStatus.CONVERTED)
_BATCH = 500


class CampaignRules:
    """The write hooks of campaign members: ``status_at`` and the status history."""

    def __init__(self, crm: CRM) -> None:
        self._crm = crm

    def __call__(self, entity: Any, previous: Any | None, /) -> Any:
        """Set ``status_at`` to the write's time when an update changes the status and does
        not set ``status_at`` itself (a new member is stored as given)."""
        if not isinstance(entity, CampaignMember) or previous is None:
            return entity
        if entity.status is not previous.status and entity.status_at == previous.status_at:
            return attrs.evolve(entity, status_at=entity.updated_at or self._crm.now())
        return entity

    def changed(self, stored: Any, previous: Any | None, /) -> bool:
        """Whether a member write changes its status (a new member past ``planned`` too)."""
        if not isinstance(stored, CampaignMember):
            return False
        if previous is None:
            return stored.status is not MemberStatus.PLANNED
        return bool(stored.status is not previous.status)

    def after_write(self, stored: Any, previous: Any | None, /) -> None:
        """Record the status change as a ``StageChange`` (owner and team of the campaign)."""
        if not self.changed(stored, previous):
            return
        crm = self._crm
        try:
            campaign: Campaign | None = crm.campaigns.get(stored.campaign_id)
        except NotFound:
            campaign = None
        at = stored.status_at or crm.now()
        before = previous.status_at if previous is not None else None
        crm.stage_changes.add(
            StageChange(
                record_collection="campaign_members",
                record_id=stored.id,
                from_stage=None if previous is None else previous.status.value,
                to_stage=stored.status.value,
                at=at,
                by=crm.acting_user,
                reason=crm.acting_reason,
                time_in_previous=None if before is None else max(at - before, dt.timedelta(0)),
                owner_id=None if campaign is None else campaign.owner_id,
                team_id=None if campaign is None else campaign.team_id,
            )
        )


@attrs.frozen
class Exclusion:
    """A contact :meth:`CampaignOperations.add_members` left out, and why:
    ``do_not_contact``, ``unsubscribed`` (from any campaign) or ``not_found`` (unknown, or
    not readable through a user's view)."""

    contact_id: str
    reason: Literal["do_not_contact", "unsubscribed", "not_found"]


@attrs.frozen
class Membership:
    """What :meth:`CampaignOperations.add_members` did: the members it ``added``, the ids
    of contacts that were ``already`` members, and the ``excluded`` contacts."""

    added: tuple[CampaignMember, ...]
    already: tuple[str, ...]
    excluded: tuple[Exclusion, ...]


@attrs.frozen
class FunnelStep:
    """How many members reached ``status`` (their current status is it or a later one)."""

    status: MemberStatus
    reached: int


@attrs.frozen
class CampaignReport:
    """The numbers of one campaign (see :meth:`CampaignOperations.report`).

    ``by_status`` counts members by current status; ``funnel`` counts members that reached
    each step of :data:`FUNNEL`; ``sent`` is the members past ``planned``; ``responses``
    those that responded or converted, ``conversions`` those that converted; rates are
    divided by ``sent`` (``None`` when nothing was sent); ``cost_per_response`` is the
    campaign's cost divided by ``responses`` (``None`` without cost or responses);
    ``influenced_deals`` counts deals with a member contact that were open when it joined
    or created after, ``won_deals`` those of them won after the contact joined, and
    ``won_revenue`` their amounts, one :class:`Money` per currency.
    """

    campaign_id: str
    members: int
    by_status: dict[str, int]
    funnel: tuple[FunnelStep, ...]
    sent: int
    responses: int
    conversions: int
    response_rate: Decimal | None
    conversion_rate: Decimal | None
    cost_per_response: Money | None
    influenced_deals: int
    won_deals: int
    won_revenue: tuple[Money, ...]


def funnel_of(by_status: dict[str, int]) -> tuple[FunnelStep, ...]:
    """The funnel from member counts by current status: each step counts the members whose
    status is that step or a later one (exits count as the step they reached).

    >>> tuple(s.reached for s in funnel_of({"sent": 2, "bounced": 1, "converted": 1}))[:3]
    (4, 4, 1)
    """
    reached = dict.fromkeys(FUNNEL, 0)
    for name, n in by_status.items():
        status = MemberStatus(name)
        last = _EXITS.get(status, status)
        for step in FUNNEL[: FUNNEL.index(last) + 1]:
            reached[step] += n
    return tuple(FunnelStep(s, reached[s]) for s in FUNNEL)


def _status(value: MemberStatus | str) -> MemberStatus:
    try:
        return MemberStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in MemberStatus)
        raise ValidationError(
            "campaign_member.status", value, f"is not a member status ({known})"
        ) from None


def _rate(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else Decimal(part) / Decimal(whole)


class CampaignOperations(Verbs[Campaign]):
    """Campaign verbs shared by the CRM's campaign repository and a user's view of it: the
    campaign, its members, contacts and deals are read and written through the host's own
    repositories, so a view's are scoped, checked and audited."""

    def _contact_ids(
        self, segment_id: str | None, contact_ids: Iterable[str] | None
    ) -> tuple[Iterator[str], set[str]]:
        source = self._source()
        if (segment_id is None) == (contact_ids is None):
            raise ValidationError(
                "add_members", (segment_id, contact_ids), "takes segment_id or contact_ids"
            )
        if segment_id is not None:
            segment = source.segments.get(segment_id)
            if segment.entity != "contacts":
                raise ValidationError(
                    "segment_id", segment_id, "selects accounts: campaigns need contacts"
                )
            return (c.id for c in source.segments.iterate_members(segment_id)), set()
        if isinstance(contact_ids, str):
            raise ValidationError("contact_ids", contact_ids, "must be a list of ids")
        wanted = list(dict.fromkeys(contact_ids or ()))
        return iter(wanted), set(wanted)

    def add_members(
        self,
        campaign_id: str,
        *,
        segment_id: str | None = None,
        contact_ids: Iterable[str] | None = None,
        status: MemberStatus | str = MemberStatus.PLANNED,
    ) -> Membership:
        """Make the contacts of a segment (or ``contact_ids``) members of a campaign.

        Contacts already members are left as they are; contacts with ``do_not_contact``
        or an ``unsubscribed`` membership in any campaign are excluded (checked on the
        stored records, even when the field is hidden from a view's user); ids that are
        unknown or unreadable are excluded as ``not_found``. All in one transaction,
        queried in batches. Raises ``NotFound`` (campaign or segment), ``ValidationError``
        (both or neither of ``segment_id`` and ``contact_ids``, an account segment),
        ``PermissionDenied`` (a view without the right to create members).
        """
        campaign = self.get(campaign_id)
        crm = self._operations_crm()
        source = self._source()
        new_status = _status(status)
        ids, listed = self._contact_ids(segment_id, contact_ids)
        now = crm.now()
        added: list[CampaignMember] = []
        already: list[str] = []
        excluded: list[Exclusion] = []
        with source.transaction():
            for batch in chunked(ids, _BATCH):
                if listed:
                    found = {c.id for c in source.contacts.find(F.id.in_(batch))}
                    excluded += [Exclusion(i, "not_found") for i in batch if i not in found]
                    batch = [i for i in batch if i in found]
                if not batch:
                    continue
                # the stored records decide, not a view's (possibly masked) copies
                blocked = {
                    c.id
                    for c in crm.contacts.find(F.id.in_(batch) & (F.do_not_contact == True))  # noqa: E712
                }
                unsubscribed = {
                    m.contact_id
                    for m in crm.campaign_members.find(
                        F.contact_id.in_(batch) & (F.status == MemberStatus.UNSUBSCRIBED)
                    )
                }
                present = {
                    m.contact_id
                    for m in crm.campaign_members.find(
                        (F.campaign_id == (campaign.id or "")) & F.contact_id.in_(batch)
                    )
                }
                fresh: list[CampaignMember] = []
                for contact_id in batch:
                    if contact_id in blocked:
                        excluded.append(Exclusion(contact_id, "do_not_contact"))
                    elif contact_id in unsubscribed:
                        excluded.append(Exclusion(contact_id, "unsubscribed"))
                    elif contact_id in present:
                        already.append(contact_id)
                    else:
                        fresh.append(
                            CampaignMember(
                                campaign_id=campaign.id or "",
                                contact_id=contact_id,
                                status=new_status,
                                status_at=now,
                            )
                        )
                if fresh:
                    added += source.campaign_members.add_many(fresh)
        return Membership(tuple(added), tuple(already), tuple(excluded))

    def set_status(
        self, member_id: str, status: MemberStatus | str, *, at: dt.datetime | None = None
    ) -> CampaignMember:
        """Record that a member reached ``status`` at ``at`` (default: now).

        The change is kept in the member's status history (see :class:`CampaignRules`).
        Raises ``NotFound``, ``ValidationError`` (unknown status, naive datetime),
        ``PermissionDenied`` (a view that may not update the member).
        """
        members = self._source().campaign_members
        member: CampaignMember = members.get(member_id)
        self.get(member.campaign_id)  # the campaign must be readable too
        when = at if at is not None else self._operations_crm().now()
        changed = attrs.evolve(member, status=_status(status), status_at=when)
        updated: CampaignMember = members.update(changed)
        return updated

    def report(self, campaign_id: str) -> CampaignReport:
        """The campaign's funnel, rates, cost per response and influenced deals.

        Member counts by status come from one database aggregate. Influenced deals are
        read with one query per batch of members (deals of those contacts still open when
        the earliest of them joined, or closed later); whether each deal closed after its
        own contact joined, and the revenue per currency, are then combined in Python,
        because the join time differs from member to member. Through a view only readable
        members and deals count. Raises ``NotFound``.
        """
        campaign = self.get(campaign_id)
        source = self._source()
        members = source.campaign_members
        where = F.campaign_id == (campaign.id or "")
        rows = members.aggregate(where, group_by=["status"], metrics=[Metric.count(name="n")])
        by_status = {str(r["status"]): int(r["n"]) for r in rows if r["status"] is not None}
        total = sum(by_status.values())
        sent = total - by_status.get(MemberStatus.PLANNED.value, 0)
        responses = sum(by_status.get(s.value, 0) for s in _RESPONDED)
        conversions = by_status.get(MemberStatus.CONVERTED.value, 0)
        cost_per_response = None
        if campaign.cost is not None and responses:
            cost_per_response = Money(
                amount=campaign.cost.amount / responses, currency=campaign.cost.currency
            )
        influenced, won = self._influenced(source, members.iterate(where, order_by="id"))
        revenue: dict[str, Decimal] = {}
        for deal in won:
            if deal.amount is not None:
                cur = deal.amount.currency
                revenue[cur] = revenue.get(cur, Decimal(0)) + deal.amount.amount
        return CampaignReport(
            campaign_id=campaign.id or "",
            members=total,
            by_status=by_status,
            funnel=funnel_of(by_status),
            sent=sent,
            responses=responses,
            conversions=conversions,
            response_rate=_rate(responses, sent),
            conversion_rate=_rate(conversions, sent),
            cost_per_response=cost_per_response,
            influenced_deals=len(influenced),
            won_deals=len(won),
            won_revenue=tuple(Money(amount=v, currency=c) for c, v in sorted(revenue.items())),
        )

    def _won_stages(self) -> dict[str, set[str]]:
        # stage kinds are pipeline definitions, read unscoped: a view's deals still count
        crm = self._operations_crm()
        pipelines = crm.pipelines.find(F.kind == PipelineKind.DEALS.value)
        return {p.id or "": {s.key for s in p.stages if s.kind is StageKind.WON} for p in pipelines}

    def _influenced(
        self, source: Any, members: Iterator[CampaignMember]
    ) -> tuple[list[Deal], list[Deal]]:
        joined: dict[str, dt.datetime] = {}  # deal id -> earliest join of one of its members
        deals: dict[str, Deal] = {}
        for batch in chunked(members, _BATCH):
            since = {m.contact_id: m.created_at for m in batch if m.created_at is not None}
            if not since:
                continue
            first = min(since.values())
            cond = F.contact_ids.in_(list(since)) & (~F.closed_at.exists() | (F.closed_at >= first))
            for deal in source.deals.iterate(cond, order_by="id"):
                earliest = min(since[c] for c in deal.contact_ids if c in since)
                key = deal.id or ""
                deals[key] = deal
                joined[key] = min(joined.get(key, earliest), earliest)
        won_stages = self._won_stages()
        influenced: list[Deal] = []
        won: list[Deal] = []
        for key, deal in deals.items():
            if deal.closed_at is not None and deal.closed_at < joined[key]:
                continue
            influenced.append(deal)
            if deal.closed_at is not None and deal.stage in won_stages.get(
                deal.pipeline_id or "", ()
            ):
                won.append(deal)
        return influenced, won


class CampaignRepository(Repository[Campaign], CampaignOperations):
    """The campaigns repository: :class:`~crmkit.repository.Repository` plus
    :class:`CampaignOperations`."""


class ScopedCampaignRepository(ScopedRepository[Campaign], CampaignOperations):
    """Campaigns as one user sees them, with the campaign verbs scoped and checked."""
