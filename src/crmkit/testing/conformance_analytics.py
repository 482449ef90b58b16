"""Conformance tests of the analytical services: segments, campaigns and the timeline.
Mixed into :class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them
through its ``crm`` fixture.

What is checked here depends on the backend: segment rules evaluated by the database
(custom fields, relative dates, keyset paging), snapshots stored and read back, campaign
membership and reports computed with the backend's queries and aggregates, and the
timeline's per-source queries, each through a user's view as well.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest

from crmkit import (
    CRM,
    Account,
    Campaign,
    Contact,
    Deal,
    Interaction,
    Money,
    Role,
    Segment,
    Task,
    Ticket,
    User,
)
from crmkit.entities import (
    CampaignMember,
    InteractionKind,
    MemberStatus,
    SegmentKind,
    TransitionPolicy,
)
from crmkit.errors import NotFound, PermissionDenied, ValidationError
from crmkit.query import F
from crmkit.testing.conformance_operations import sales_pipeline
from crmkit.timeline import TimelineItem

__all__ = ["AnalyticsConformance"]

UTC = dt.UTC


def _people(crm: CRM) -> dict[str, Contact]:
    """Five contacts: two owned by ``u1`` with tier gold, one silver, one without a tier."""
    made = crm.contacts.add_many(
        [
            Contact(first_name="Ada", owner_id="u1", title="CTO", custom={"tier": "gold"}),
            Contact(first_name="Bea", owner_id="u1", custom={"tier": "gold", "score": 7}),
            Contact(first_name="Cy", owner_id="u2", title="CEO", custom={"tier": "silver"}),
            Contact(first_name="Di", owner_id="u2", custom={"score": 3}),
            Contact(first_name="Ed", owner_id="u1", do_not_contact=True),
        ]
    )
    return {c.first_name or "": c for c in made}


def _tick() -> None:
    """Let the CRM's millisecond clock move on, so that "before" and "after" differ."""
    time.sleep(0.003)


def _eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


class AnalyticsConformance:
    """Segments, campaigns and timeline behaviour every backend must have."""

    # --- segments -----------------------------------------------------------------------

    def test_dynamic_segment_members_and_count(self, crm: CRM) -> None:
        """A stored rule (custom field, negation, relative date) is evaluated each time."""
        people = _people(crm)
        rule = (F.custom.tier == "gold") | ~F.title.exists() & F.custom.score.exists()
        rule = rule & F.created_at.within_last(dt.timedelta(days=1))
        segment = crm.segments.add(Segment(name="warm", rule=rule.to_dict()))
        assert crm.segments.count(segment.id or "") == 3
        page = crm.segments.members(segment.id or "", order_by="first_name", limit=10)
        assert [c.first_name for c in page] == ["Ada", "Bea", "Di"]
        assert page.next_cursor is None
        crm.contacts.add(Contact(first_name="Flo", custom={"tier": "gold"}))
        assert crm.segments.count(segment.id or "") == 4  # evaluated again, not cached
        assert crm.segments.count() == 1  # counting the segments themselves still works
        assert segment.rule["and"][-1]["op"] == "within_last"  # stored relative, not as a date
        recent = F.created_at.within_last(dt.timedelta(days=1))
        old = crm.segments.add(Segment(name="old", rule=(~recent).to_dict()))
        assert crm.segments.count(old.id or "") == 0
        assert len(people) == 5

    def test_segment_members_page_by_cursor(self, crm: CRM) -> None:
        """members() pages by keyset with the order given, without skips or repeats."""
        _people(crm)
        everyone = crm.segments.add(Segment(name="all", rule={}))
        seen: list[str | None] = []
        after = None
        while True:
            page = crm.segments.members(
                everyone.id or "", order_by="-first_name", limit=2, after=after
            )
            seen.extend(c.first_name for c in page)
            after = page.next_cursor
            if after is None:
                break
        assert seen == ["Ed", "Di", "Cy", "Bea", "Ada"]
        assert crm.segments.count(everyone.id or "") == 5

    def test_account_segment(self, crm: CRM) -> None:
        """Segments select accounts as well as contacts."""
        crm.accounts.add_many(
            [
                Account(name="Acme", industry="Software", tags=("key",)),
                Account(name="Globex", industry="Energy"),
                Account(name="Initech", industry="Software"),
            ]
        )
        rule = (F.industry == "Software") & ~F.tags.contains("key")
        segment = crm.segments.add(Segment(name="sw", entity="accounts", rule=rule.to_dict()))
        assert [a.name for a in crm.segments.members(segment.id or "")] == ["Initech"]
        assert crm.segments.count(segment.id or "") == 1

    def test_static_segment_snapshot(self, crm: CRM) -> None:
        """A snapshot stores member ids and the time taken; later changes do not move it."""
        people = _people(crm)
        rule = (F.owner_id == "u1").to_dict()
        static = crm.segments.add(Segment(name="u1", rule=rule, kind=SegmentKind.STATIC))
        assert crm.segments.count(static.id or "") == 0  # nothing taken yet
        before = crm.now()
        taken = crm.segments.snapshot(static.id or "")
        assert taken.snapshot_at is not None
        assert taken.snapshot_at >= before
        assert sorted(taken.member_ids) == sorted(people[n].id or "" for n in ("Ada", "Bea", "Ed"))
        assert crm.segments.get(static.id or "").member_ids == taken.member_ids
        crm.contacts.add(Contact(first_name="Gus", owner_id="u1"))
        crm.contacts.delete(people["Ed"].id or "")
        assert crm.segments.count(static.id or "") == 2
        page = crm.segments.members(static.id or "", order_by="first_name")
        assert [c.first_name for c in page] == ["Ada", "Bea"]
        dynamic = crm.segments.add(Segment(name="d", rule=rule))
        with pytest.raises(ValidationError) as info:
            crm.segments.snapshot(dynamic.id or "")
        assert info.value.field == "segment.kind"

    def test_bad_segment_rules_are_refused(self, crm: CRM) -> None:
        """Evaluating a rule with an unknown field, a wrong operator or a bad value raises
        ValidationError naming the field."""
        bad_rules: list[dict[str, Any]] = [
            {"field": "titel", "op": "eq", "value": "CEO"},
            {"field": "emails", "op": "eq", "value": "a@b.c"},
            {"field": "created_at", "op": "gt", "value": "yesterday"},
            {"field": "title", "op": "resembles", "value": "x"},
            {"and": []},
        ]
        for rule in bad_rules:
            segment = crm.segments.add(Segment(name="bad", rule=rule))
            for evaluate in (crm.segments.count, crm.segments.members):
                with pytest.raises(ValidationError) as info:
                    evaluate(segment.id or "")
                assert info.value.field.startswith("segment.rule")
                text = str(info.value)
                assert rule.get("field", "and") in text or "query" in text
        wrong = crm.segments.add(Segment(name="bad", entity="deals"))
        with pytest.raises(ValidationError) as info:
            crm.segments.count(wrong.id or "")
        assert info.value.field == "segment.entity"
        with pytest.raises(NotFound):
            crm.segments.members("missing")

    def test_segments_through_a_view(self, crm: CRM) -> None:
        """Members are the user's readable records; a hidden field in a rule is refused."""
        _people(crm)
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={"contacts": {"read": "own"}, "segments": {"read": "all"}},
                hidden_fields={"contacts": ["title"]},
            )
        )
        user = crm.users.add(User(name="Uma", role_ids=(role.id or "",)))
        gold = crm.segments.add(
            Segment(name="gold", rule=(F.custom.tier == "gold").to_dict(), owner_id="x")
        )
        everyone = crm.segments.add(Segment(name="all", rule={}))
        titled = crm.segments.add(Segment(name="t", rule=F.title.exists().to_dict()))
        crm.contacts.add(Contact(first_name="Zoe", owner_id=user.id, custom={"tier": "gold"}))
        view = crm.as_user(user)
        assert view.segments.count(everyone.id or "") == 1
        assert [c.first_name for c in view.segments.members(gold.id or "")] == ["Zoe"]
        assert view.segments.members(everyone.id or "")[0].title is None
        with pytest.raises(PermissionDenied):
            view.segments.members(titled.id or "")
        with pytest.raises(PermissionDenied):
            view.segments.count(titled.id or "")
        assert crm.segments.count(titled.id or "") == 2

    # --- campaigns ----------------------------------------------------------------------

    def test_campaign_members_are_idempotent_and_exclusions_reported(self, crm: CRM) -> None:
        """do_not_contact and unsubscribed contacts are left out and reported; adding twice
        adds nobody twice; unknown ids are reported as not found."""
        people = _people(crm)
        ids = {n: c.id or "" for n, c in people.items()}
        old = crm.campaigns.add(Campaign(name="Old"))
        crm.campaign_members.add(
            CampaignMember(
                campaign_id=old.id or "", contact_id=ids["Cy"], status=MemberStatus.UNSUBSCRIBED
            )
        )
        spring = crm.campaigns.add(Campaign(name="Spring"))
        first = crm.campaigns.add_members(
            spring.id or "", contact_ids=[ids["Ada"], ids["Cy"], ids["Ed"], "nope", ids["Ada"]]
        )
        assert [m.contact_id for m in first.added] == [ids["Ada"]]
        assert first.added[0].status is MemberStatus.PLANNED
        assert first.added[0].status_at is not None
        reasons = {(e.contact_id, e.reason) for e in first.excluded}
        assert reasons == {
            (ids["Cy"], "unsubscribed"),
            (ids["Ed"], "do_not_contact"),
            ("nope", "not_found"),
        }
        everyone = crm.segments.add(Segment(name="all"))
        second = crm.campaigns.add_members(spring.id or "", segment_id=everyone.id)
        assert sorted(m.contact_id for m in second.added) == sorted([ids["Bea"], ids["Di"]])
        assert second.already == (ids["Ada"],)
        assert {e.reason for e in second.excluded} == {"unsubscribed", "do_not_contact"}
        third = crm.campaigns.add_members(spring.id or "", segment_id=everyone.id)
        assert third.added == ()
        assert crm.campaign_members.count(F.campaign_id == spring.id) == 3
        with pytest.raises(ValidationError):
            crm.campaigns.add_members(spring.id or "")
        with pytest.raises(NotFound):
            crm.campaigns.add_members("missing", contact_ids=[ids["Ada"]])

    def test_member_status_timestamps_and_history(self, crm: CRM) -> None:
        """set_status records the time given (or now) and each change in the history."""
        ada = crm.contacts.add(Contact(first_name="Ada"))
        campaign = crm.campaigns.add(Campaign(name="C", owner_id="u1"))
        (member,) = crm.campaigns.add_members(campaign.id or "", contact_ids=[ada.id or ""]).added
        sent_at = dt.datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
        sent = crm.campaigns.set_status(member.id or "", "sent", at=sent_at)
        assert sent.status is MemberStatus.SENT
        assert sent.status_at == sent_at
        before = crm.now()
        opened = crm.campaigns.set_status(member.id or "", MemberStatus.OPENED)
        assert opened.status_at is not None
        assert opened.status_at >= before
        history = crm.stage_changes.find(
            (F.record_collection == "campaign_members") & (F.record_id == member.id),
            order_by="at",
        )
        assert [(h.from_stage, h.to_stage) for h in history] == [
            ("planned", "sent"),
            ("sent", "opened"),
        ]
        assert history[0].at == sent_at
        assert history[1].owner_id == "u1"
        with pytest.raises(ValidationError):
            crm.campaigns.set_status(member.id or "", "teleported")

    def test_campaign_report(self, crm: CRM) -> None:
        """Funnel, rates, cost per response and influenced deals, checked by hand."""
        pipeline = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY))
        pid = pipeline.id or ""
        names = ["a", "b", "c", "d", "e", "f"]
        people = {
            c.first_name: c.id or ""
            for c in crm.contacts.add_many([Contact(first_name=n) for n in names])
        }
        # won before anyone joined: not influenced
        crm.deals.add(
            Deal(name="early", pipeline_id=pid, stage="won", amount=_eur("999"),
                 contact_ids=(people["a"],))
        )  # fmt: skip
        _tick()
        campaign = crm.campaigns.add(Campaign(name="Launch", cost=_eur("300")))
        cid = campaign.id or ""
        added = crm.campaigns.add_members(cid, contact_ids=[people[n] for n in names]).added
        member = {m.contact_id: m.id or "" for m in added}
        for name, status in [
            ("a", "sent"),
            ("b", "opened"),
            ("c", "responded"),
            ("d", "converted"),
            ("e", "bounced"),
        ]:
            crm.campaigns.set_status(member[people[name]], status)
        _tick()
        crm.deals.add_many(
            [
                Deal(name="won-c", pipeline_id=pid, stage="won", amount=_eur("100.50"),
                     contact_ids=(people["c"],)),
                Deal(name="won-d", pipeline_id=pid, stage="won",
                     amount=Money(amount=Decimal("70"), currency="USD"),
                     contact_ids=(people["d"], people["c"])),
                Deal(name="open-b", pipeline_id=pid, stage="lead", contact_ids=(people["b"],)),
                Deal(name="lost-f", pipeline_id=pid, stage="lost", lost_reason="price",
                     contact_ids=(people["f"],)),
                Deal(name="nobody", pipeline_id=pid, stage="won", amount=_eur("5")),
            ]
        )  # fmt: skip
        report = crm.campaigns.report(cid)
        assert report.members == 6
        assert report.by_status == {
            "planned": 1,
            "sent": 1,
            "opened": 1,
            "responded": 1,
            "converted": 1,
            "bounced": 1,
        }
        assert [(s.status.value, s.reached) for s in report.funnel] == [
            ("planned", 6),
            ("sent", 5),
            ("delivered", 3),
            ("opened", 3),
            ("clicked", 2),
            ("responded", 2),
            ("converted", 1),
        ]
        assert (report.sent, report.responses, report.conversions) == (5, 2, 1)
        assert report.response_rate == Decimal(2) / 5
        assert report.conversion_rate == Decimal(1) / 5
        assert report.cost_per_response == _eur("150")
        assert report.influenced_deals == 4
        assert report.won_deals == 2
        assert report.won_revenue == (_eur("100.50"), Money(amount=Decimal(70), currency="USD"))
        empty = crm.campaigns.report(crm.campaigns.add(Campaign(name="Empty")).id or "")
        assert (empty.members, empty.response_rate, empty.cost_per_response) == (0, None, None)

    def test_campaigns_through_a_view(self, crm: CRM) -> None:
        """A view adds only contacts it may read; a hidden do_not_contact still excludes;
        the report counts the user's members and deals."""
        role = crm.roles.add(
            Role(
                name="marketer",
                permissions={
                    "contacts": {"read": "own"},
                    "campaigns": {"read": "own"},
                    "campaign_members": {"read": "all", "create": "all", "update": "all"},
                    "deals": {"read": "own"},
                },
                hidden_fields={"contacts": ["do_not_contact"]},
            )
        )
        user = crm.users.add(User(name="Mo", role_ids=(role.id or "",)))
        mine = crm.contacts.add(Contact(first_name="Mine", owner_id=user.id))
        quiet = crm.contacts.add(Contact(first_name="Quiet", owner_id=user.id, do_not_contact=True))
        other = crm.contacts.add(Contact(first_name="Other", owner_id="someone"))
        campaign = crm.campaigns.add(Campaign(name="Mo's", owner_id=user.id))
        hidden = crm.campaigns.add(Campaign(name="Not Mo's", owner_id="someone"))
        view = crm.as_user(user)
        result = view.campaigns.add_members(
            campaign.id or "", contact_ids=[mine.id or "", quiet.id or "", other.id or ""]
        )
        assert [m.contact_id for m in result.added] == [mine.id]
        assert {(e.contact_id, e.reason) for e in result.excluded} == {
            (quiet.id, "do_not_contact"),
            (other.id, "not_found"),
        }
        with pytest.raises(NotFound):
            view.campaigns.add_members(hidden.id or "", contact_ids=[mine.id or ""])
        with pytest.raises(NotFound):
            view.campaigns.report(hidden.id or "")
        crm.campaign_members.add(CampaignMember(campaign_id=campaign.id or "", contact_id="x"))
        crm.deals.add(Deal(name="theirs", owner_id="someone", contact_ids=(mine.id or "",)))
        crm.deals.add(Deal(name="own", owner_id=user.id, contact_ids=(mine.id or "",)))
        report = view.campaigns.report(campaign.id or "")
        assert report.members == 2
        assert report.influenced_deals == 1

    # --- timeline -----------------------------------------------------------------------

    def _history(self, crm: CRM) -> dict[str, str]:
        """Two accounts (a parent and its child, with a grandchild), three contacts and
        one item of every kind for each; returns ids by name."""
        pipeline = crm.pipelines.add(sales_pipeline(TransitionPolicy.ANY))
        parent = crm.accounts.add(Account(name="Parent"))
        child = crm.accounts.add(Account(name="Child", parent_id=parent.id))
        grandchild = crm.accounts.add(Account(name="Grandchild", parent_id=child.id))
        ids = {"parent": parent.id or "", "child": child.id or "", "grand": grandchild.id or ""}
        people = {"p1": parent.id, "p2": child.id, "p3": None}
        for n, (name, account_id) in enumerate(people.items()):
            person = crm.contacts.add(Contact(first_name=name, account_id=account_id))
            pid = person.id or ""
            ids[name] = pid
            for day in (1, 2):
                crm.interactions.add(
                    Interaction(
                        kind=InteractionKind.EMAIL,
                        occurred_at=dt.datetime(2024, 1, day, 9, n, tzinfo=UTC),
                        contact_ids=(pid,),
                        owner_id="u1" if day == 1 else "u2",
                    )
                )
            deal = crm.deals.add(
                Deal(
                    name=f"deal-{name}",
                    pipeline_id=pipeline.id,
                    contact_ids=(pid,),
                    amount=_eur("10"),
                    close_date=dt.date(2024, 6, 1),
                )
            )
            crm.deals.move(deal.id or "", "proposal" if name != "p3" else "lost", reason="price")
            crm.tickets.add(Ticket(subject=f"help {name}", contact_id=pid))
            crm.tasks.add(Task(title=f"call {name}", contact_id=pid))
            campaign = crm.campaigns.add(Campaign(name=f"c-{name}"))
            (member,) = crm.campaigns.add_members(campaign.id or "", contact_ids=[pid]).added
            crm.campaigns.set_status(
                member.id or "", "sent", at=dt.datetime(2024, 2, 1, n, tzinfo=UTC)
            )
        crm.interactions.add(
            Interaction(
                kind=InteractionKind.CALL,
                occurred_at=dt.datetime(2023, 6, 1, tzinfo=UTC),
                account_id=grandchild.id,
            )
        )
        return ids

    @staticmethod
    def _walk(crm: Any, record_id: str, limit: int) -> list[TimelineItem]:
        items: list[TimelineItem] = []
        before = None
        for _ in range(100):
            page = crm.timeline(record_id, limit=limit, before=before)
            assert len(page) <= limit
            items.extend(page)
            before = page.next_cursor
            if before is None:
                return items
        raise AssertionError("the timeline did not end")

    def test_timeline_of_a_contact(self, crm: CRM) -> None:
        """Every kind of item of one contact, newest first; pages join up exactly."""
        ids = self._history(crm)
        whole = crm.timeline(ids["p1"], limit=100)
        assert whole.next_cursor is None
        kinds = sorted(item.kind.value for item in whole)
        assert kinds == [
            "campaign_status",
            "deal_stage",
            "deal_stage",
            "interaction",
            "interaction",
            "task",
            "ticket",
        ]
        assert [i.at for i in whole] == sorted((i.at for i in whole), reverse=True)
        assert whole[-1].at == dt.datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
        assert whole[-1].record.id is not None
        for limit in (1, 2, 3):
            paged = self._walk(crm, ids["p1"], limit)
            assert [(i.kind, i.record.id) for i in paged] == [(i.kind, i.record.id) for i in whole]
        assert crm.timeline(contact_id=ids["p3"], limit=100).items[-1].record.id is not None

    def test_timeline_of_an_account_covers_children_and_contacts(self, crm: CRM) -> None:
        """An account's timeline has its own items, its contacts' and its descendants'."""
        ids = self._history(crm)
        whole = crm.timeline(account_id=ids["parent"], limit=100)
        assert len(whole) == 2 * 7 + 1
        assert whole[-1].at == dt.datetime(2023, 6, 1, tzinfo=UTC)  # the grandchild's call
        contacts = {
            c
            for item in whole
            for c in (
                getattr(item.record, "contact_ids", ()) or (getattr(item.record, "contact_id", ""),)
            )
        }
        assert ids["p3"] not in contacts
        assert [(i.kind, i.record.id) for i in self._walk(crm, ids["parent"], 4)] == [
            (i.kind, i.record.id) for i in whole
        ]
        assert len(crm.timeline(ids["child"], limit=100)) == 7 + 1
        assert len(crm.timeline(ids["grand"], limit=100)) == 1

    def test_timeline_errors_and_views(self, crm: CRM) -> None:
        """Unknown ids, bad cursors and limits are refused; a view shows readable items."""
        ids = self._history(crm)
        with pytest.raises(NotFound):
            crm.timeline("missing")
        with pytest.raises(ValidationError):
            crm.timeline(ids["p1"], before="not a cursor")
        with pytest.raises(ValidationError):
            crm.timeline(ids["p1"], limit=0)
        with pytest.raises(ValidationError):
            crm.timeline(contact_id=ids["p1"], account_id=ids["parent"])
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={"contacts": {"read": "all"}, "interactions": {"read": "own"}},
            )
        )
        user = crm.users.add(User(name="U one", role_ids=(role.id or "",)))
        crm.interactions.add(
            Interaction(
                kind=InteractionKind.NOTE,
                occurred_at=dt.datetime(2024, 3, 1, tzinfo=UTC),
                contact_ids=(ids["p1"],),
                owner_id=user.id,
            )
        )
        view = crm.as_user(user)
        seen = view.timeline(ids["p1"], limit=100)
        assert [(i.kind.value, i.record.owner_id) for i in seen] == [  # type: ignore[attr-defined]
            ("interaction", user.id)
        ]
        with pytest.raises(NotFound):
            view.timeline(ids["parent"])  # accounts are not readable
        with pytest.raises(NotFound):
            view.timeline(account_id=ids["parent"])
