"""The sample CRM of ``crmkit demo``: :func:`crmkit.demo.build`'s accounts, messy
contacts, interactions, pipeline and deals, plus an SLA policy on the tickets (one of them
three days old and overdue), a segment, a campaign sent to it and NPS survey answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

import crmkit
from crmkit import Money, Ticket
from crmkit.calendars import BusinessCalendar
from crmkit.demo import build
from crmkit.entities import (
    Campaign,
    MemberStatus,
    Priority,
    Segment,
    SurveyKind,
    SurveyResponse,
)
from crmkit.query import F
from crmkit.sla import SlaPolicy

__all__ = ["Sample", "SampleClock", "build_sample"]


class SampleClock:
    """A clock that can be set back, to create records "in the past"."""

    def __init__(self) -> None:
        #: How far behind the real time the clock runs.
        self.behind = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        """The current UTC time minus :attr:`behind`."""
        return dt.datetime.now(dt.UTC) - self.behind


@attrs.frozen
class Sample:
    """Ids of the records the demo shows."""

    segment_id: str
    campaign_id: str


def build_sample(crm: crmkit.CRM, clock: SampleClock | None = None) -> Sample:
    """Fill ``crm`` (empty) with the sample data; returns the ids the demo shows.

    With ``clock`` (the CRM's clock), one ticket is created three days ago so that the SLA
    report has a breach to show.
    """
    crm.sla.define(
        "support",
        SlaPolicy(
            urgent={"first_response": 1800, "resolution": 4 * 3600},
            high={"first_response": 3600, "resolution": 8 * 3600},
            normal={"first_response": 4 * 3600, "resolution": 24 * 3600},
            low={"resolution": 5 * 24 * 3600},
        ),
        BusinessCalendar(timezone="UTC", working_hours=["00:00-24:00"] * 7),
    )
    build(crm, crm.now())
    with crm.transaction():
        if clock is not None:
            clock.behind = dt.timedelta(days=3)
        try:
            crm.tickets.add(Ticket(subject="Export to CSV fails", priority=Priority.URGENT))
        finally:
            if clock is not None:
                clock.behind = dt.timedelta(0)
        segment = crm.segments.add(
            Segment(
                name="Leads and opportunities",
                entity="contacts",
                rule=F.lifecycle_stage.in_(["lead", "opportunity"]).to_dict(),
            )
        )
        campaign = crm.campaigns.add(
            Campaign(
                name="Spring webinar",
                segment_id=segment.id,
                cost=Money(amount=Decimal(900), currency="EUR"),
            )
        )
        membership = crm.campaigns.add_members(campaign.id or "", segment_id=segment.id)
        for member, status in zip(
            membership.added, [MemberStatus.RESPONDED, MemberStatus.OPENED], strict=False
        ):
            crm.campaigns.set_status(member.id or "", MemberStatus.SENT)
            crm.campaigns.set_status(member.id or "", status)
        now = crm.now()
        crm.survey_responses.add_many(
            SurveyResponse(
                kind=SurveyKind.NPS,
                score=score,
                responded_at=now - dt.timedelta(days=days),
                campaign_id=campaign.id,
            )
            for score, days in [(10, 40), (9, 35), (6, 33), (9, 5), (8, 3), (10, 1)]
        )
    return Sample(segment_id=segment.id or "", campaign_id=campaign.id or "")
