"""Campaign funnel arithmetic and the member status rule (no backend)."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

import crmkit
from crmkit.campaigns import FUNNEL, CampaignRules, funnel_of
from crmkit.entities import CampaignMember, MemberStatus

UTC = dt.UTC


@pytest.mark.parametrize(
    ("by_status", "reached"),
    [
        ({}, [0, 0, 0, 0, 0, 0, 0]),
        ({"planned": 3}, [3, 0, 0, 0, 0, 0, 0]),
        ({"converted": 2}, [2, 2, 2, 2, 2, 2, 2]),
        ({"bounced": 1}, [1, 1, 0, 0, 0, 0, 0]),
        ({"unsubscribed": 1}, [1, 1, 1, 0, 0, 0, 0]),
        ({"opened": 2, "clicked": 1, "sent": 4}, [7, 7, 3, 3, 1, 0, 0]),
    ],
)
def test_funnel_counts_members_that_reached_each_step(
    by_status: dict[str, int], reached: list[int]
) -> None:
    steps = funnel_of(by_status)
    assert [s.status for s in steps] == list(FUNNEL)
    assert [s.reached for s in steps] == reached


def test_status_at_follows_status_changes() -> None:
    crm = crmkit.connect("memory://")
    rules = CampaignRules(crm)
    t0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
    t1 = dt.datetime(2024, 1, 2, tzinfo=UTC)
    new = CampaignMember(campaign_id="c", contact_id="p", status_at=None)
    assert rules(new, None) is new  # a new member is stored as given
    stored = attrs.evolve(new, status_at=t0)
    moved = attrs.evolve(stored, status=MemberStatus.SENT, updated_at=t1)
    assert rules(moved, stored).status_at == t1
    given = attrs.evolve(moved, status_at=t0 - dt.timedelta(days=1))
    assert rules(given, stored).status_at == given.status_at  # the write set it
    same = attrs.evolve(stored, updated_at=t1)
    assert rules(same, stored).status_at == t0
    assert rules.changed(moved, stored)
    assert not rules.changed(same, stored)
    assert not rules.changed(new, None)
    assert rules.changed(attrs.evolve(new, status=MemberStatus.SENT), None)
