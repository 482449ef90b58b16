"""Conformance tests of deduplication and merge (``crm.dedupe``), part of the shipped suite.

Finding, candidates on add, merging (with every related record re-pointed, all or
nothing) and unmerging go through repositories only, so they must behave the same on
every backend; these tests run on each through
:class:`crmkit.testing.conformance.ConformanceSuite`.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import crmkit
from crmkit import (
    CRM,
    Account,
    Campaign,
    CampaignMember,
    Contact,
    Deal,
    Interaction,
    Role,
    Segment,
    Task,
    Team,
    Ticket,
    User,
)
from crmkit.dedupe import DuplicateFound, Override
from crmkit.entities import InteractionKind, MemberStatus, MergeRecord, SegmentKind, Share
from crmkit.events import Created
from crmkit.query import F

__all__ = ["DedupeConformance"]


class _Failure(Exception):
    """Raised by a test to break a merge half-way."""


def _ada(**fields: Any) -> Contact:
    values: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "emails": ["ada@analytical.co.uk"],
        "phones": ["+44 20 7946 0958"],
    }
    values.update(fields)
    return Contact(**values)


def _state(crm: CRM) -> dict[str, list[Any]]:
    """Every record of the collections a merge touches, for before/after comparisons."""
    names = (
        "contacts",
        "accounts",
        "interactions",
        "deals",
        "tickets",
        "tasks",
        "campaign_members",
        "segments",
        "shares",
    )
    return {name: crm.repository(name).find(order_by="id") for name in names}


class DedupeConformance:
    """``crm.dedupe`` finds, explains, guards, merges and unmerges on every backend."""

    @pytest.fixture
    def family(self, crm: CRM) -> dict[str, Any]:
        """Ada twice (a duplicate written differently), Charles once, and records of every
        kind that refer to the duplicate or to Ada."""
        acme = crm.accounts.add(Account(name="Analytical Engines Ltd", domain="analytical.co.uk"))
        ada = crm.contacts.add(_ada(account_id=acme.id))
        dup = crm.contacts.add(
            Contact(
                first_name="ADA",
                last_name="Lovelace",
                emails=(
                    "Ada@Analytical.co.uk",
                    "ada@home.org.uk",
                ),
                phones=("+44 (0)20 7946 0958",),
                title="Countess",
                tags=("vip",),
            )
        )
        charles = crm.contacts.add(
            Contact(first_name="Charles", last_name="Babbage", emails=("cb@analytical.co.uk",))
        )
        call = crm.interactions.add(
            Interaction(
                kind=InteractionKind.CALL,
                occurred_at=crm.now(),
                contact_ids=(ada.id or "", dup.id or ""),
            )
        )
        deal = crm.deals.add(
            Deal(
                name="Engine",
                contact_ids=(dup.id or "", charles.id or ""),
                contact_roles={dup.id or "": "champion"},
            )
        )
        ticket = crm.tickets.add(Ticket(subject="Punch cards", contact_id=dup.id))
        task = crm.tasks.add(Task(title="Call back", contact_id=dup.id))
        spring = crm.campaigns.add(Campaign(name="Spring"))
        autumn = crm.campaigns.add(Campaign(name="Autumn"))
        both = crm.campaign_members.add(
            CampaignMember(campaign_id=spring.id or "", contact_id=ada.id or "")
        )
        twice = crm.campaign_members.add(
            CampaignMember(campaign_id=spring.id or "", contact_id=dup.id or "")
        )
        only = crm.campaign_members.add(
            CampaignMember(campaign_id=autumn.id or "", contact_id=dup.id or "")
        )
        segment = crm.segments.add(
            Segment(
                name="VIPs", kind=SegmentKind.STATIC, member_ids=(dup.id or "", charles.id or "")
            )
        )
        # dup's record is shared with a colleague; a share of another kind has the same id
        share = crm.shares.add(
            Share(record_collection="contacts", record_id=dup.id or "", user_id="colleague")
        )
        other = crm.shares.add(
            Share(record_collection="deals", record_id=dup.id or "", user_id="colleague")
        )
        return {
            "share": share,
            "other_share": other,
            "acme": acme,
            "ada": ada,
            "dup": dup,
            "charles": charles,
            "call": call,
            "deal": deal,
            "ticket": ticket,
            "task": task,
            "member": both,
            "twice": twice,
            "only": only,
            "segment": segment,
        }

    # --- find, explain, candidates ---------------------------------------------------------

    def test_dedupe_find_groups_duplicates_and_explains_them(
        self, crm: CRM, family: dict[str, Any]
    ) -> None:
        groups = crm.dedupe.find("contacts")
        assert [set(g.ids) for g in groups] == [{family["ada"].id, family["dup"].id}]
        (match,) = groups[0].matches
        assert match.probability >= 0.9
        assert {"email", "phone", "first_name", "last_name"} <= set(match.matched)
        assert "email" in groups[0].explain()
        assert crm.dedupe.find("contacts", threshold=0.999999)[0].probability > 0.999
        assert crm.dedupe.find("contacts", where=crmkit.F.first_name == "Ada") == []
        streamed = crm.dedupe.find("contacts", batch_size=1)
        assert [g.ids for g in streamed] == [g.ids for g in groups]
        explained = crm.dedupe.explain(family["ada"].id, family["charles"].id)
        assert explained.probability < 0.5
        assert explained.vetoed_by == "first_name"

    def test_dedupe_find_on_accounts(self, crm: CRM) -> None:
        one = crm.accounts.add(Account(name="Acme Corp", domain="acme.com"))
        two = crm.accounts.add(Account(name="ACME Corporation", domain="acme.com"))
        crm.accounts.add(Account(name="Initech", domain="initech.com"))
        groups = crm.dedupe.find("accounts")
        assert [set(g.ids) for g in groups] == [{one.id, two.id}]
        with pytest.raises(crmkit.ValidationError):
            crm.dedupe.find("deals")

    def test_dedupe_candidates_checks_a_record_before_it_is_saved(
        self, crm: CRM, family: dict[str, Any]
    ) -> None:
        found = crm.dedupe.candidates(
            Contact(first_name="Ada", last_name="Lovelace", emails=("ADA@analytical.co.uk",))
        )
        assert {m.b for m in found} == {family["ada"].id, family["dup"].id}
        assert all(m.probability >= 0.9 for m in found)
        assert crm.dedupe.candidates(Contact(first_name="Grace", last_name="Hopper")) == []
        swapped = crm.dedupe.candidates(
            {"first_name": "Lovelace", "last_name": "Ada", "phones": ["+442079460958"]}
        )
        assert family["ada"].id in {m.b for m in swapped}

    def test_duplicate_rule_on_add_raises_or_flags(self, crm: CRM, family: dict[str, Any]) -> None:
        twin = Contact(first_name="Charles", last_name="Babbage", emails=("CB@analytical.co.uk",))
        crm.contacts.add(Contact(first_name="Grace", last_name="Hopper"))  # no rule: allowed
        crm.dedupe.set_duplicate_rule("contacts", on_duplicate="raise")
        before = crm.contacts.count()
        with pytest.raises(DuplicateFound) as info:
            crm.contacts.add(twin)
        assert info.value.duplicate_id == family["charles"].id
        assert family["charles"].id in str(info.value)
        assert isinstance(info.value, crmkit.ValidationError)
        assert crm.contacts.count() == before
        crm.contacts.add(Contact(first_name="Alan", last_name="Turing"))
        crm.dedupe.set_duplicate_rule("contacts", on_duplicate="allow")
        flagged = crm.contacts.add(twin)
        assert "possible-duplicate" in flagged.tags
        crm.dedupe.clear_duplicate_rule("contacts")
        assert crm.contacts.add(twin).tags == ()
        assert crm.dedupe.duplicate_rule("contacts") is None

    # --- merge and unmerge -----------------------------------------------------------------

    def test_merge_applies_survivorship_and_repoints_every_related_record(
        self, crm: CRM, family: dict[str, Any]
    ) -> None:
        ada, dup = family["ada"], family["dup"]
        record = crm.dedupe.merge(ada.id, [dup.id])
        assert isinstance(record, MergeRecord)
        assert record.merged_ids == (dup.id,)
        survivor = crm.contacts.get(ada.id)
        assert survivor.first_name == "Ada"  # the survivor's non-empty value
        assert survivor.title == "Countess"  # filled from the duplicate
        assert survivor.emails == ("ada@analytical.co.uk", "ada@home.org.uk")  # union
        assert survivor.tags == ("vip",)
        assert survivor.account_id == family["acme"].id
        with pytest.raises(crmkit.NotFound):
            crm.contacts.get(dup.id)
        assert crm.interactions.get(family["call"].id).contact_ids == (ada.id,)
        deal = crm.deals.get(family["deal"].id)
        assert deal.contact_ids == (ada.id, family["charles"].id)
        assert dict(deal.contact_roles) == {ada.id: "champion"}
        assert crm.tickets.get(family["ticket"].id).contact_id == ada.id
        assert crm.tasks.get(family["task"].id).contact_id == ada.id
        assert crm.shares.get(family["share"].id).record_id == ada.id
        assert crm.shares.get(family["other_share"].id).record_id == dup.id  # not a contact
        assert crm.campaign_members.get(family["only"].id).contact_id == ada.id
        with pytest.raises(crmkit.NotFound):  # ada was already in that campaign
            crm.campaign_members.get(family["twice"].id)
        assert crm.segments.get(family["segment"].id).member_ids == (
            ada.id,
            family["charles"].id,
        )
        assert crm.dedupe.merges(ada.id) == [crm.repository(MergeRecord).get(record.id or "")]
        overridden = crm.dedupe.merge(
            ada.id,
            [family["charles"].id],
            rules={"title": Override("Analyst"), "emails": "survivor"},
        )
        assert crm.contacts.get(ada.id).title == "Analyst"
        assert crm.contacts.get(ada.id).emails == survivor.emails
        assert overridden.rules["title"] == {"value": "Analyst"}

    def test_merge_of_accounts_repoints_contacts_children_and_deals(self, crm: CRM) -> None:
        keep = crm.accounts.add(Account(name="Acme Corp", domain="acme.com"))
        gone = crm.accounts.add(Account(name="ACME", domain="acme.com", industry="Tools"))
        child = crm.accounts.add(Account(name="Acme UK", parent_id=gone.id))
        also = crm.accounts.add(Account(name="Acme Inc", domain="acme.com", parent_id=gone.id))
        person = crm.contacts.add(Contact(first_name="Wile", account_id=gone.id))
        deal = crm.deals.add(Deal(name="Anvils", account_id=gone.id))
        ticket = crm.tickets.add(Ticket(subject="Broken", account_id=gone.id))
        task = crm.tasks.add(Task(title="Ship", account_id=gone.id))
        note = crm.interactions.add(
            Interaction(kind=InteractionKind.NOTE, occurred_at=crm.now(), account_id=gone.id)
        )
        record = crm.dedupe.merge(
            keep.id or "", [gone.id or "", also.id or ""], collection="accounts"
        )
        assert crm.accounts.get(keep.id or "").industry == "Tools"
        assert crm.accounts.get(child.id or "").parent_id == keep.id
        assert crm.contacts.get(person.id or "").account_id == keep.id
        assert crm.deals.get(deal.id or "").account_id == keep.id
        assert crm.tickets.get(ticket.id or "").account_id == keep.id
        assert crm.tasks.get(task.id or "").account_id == keep.id
        assert crm.interactions.get(note.id or "").account_id == keep.id
        crm.dedupe.unmerge(record.id or "")
        assert crm.accounts.get(child.id or "").parent_id == gone.id
        assert crm.contacts.get(person.id or "").account_id == gone.id
        assert crm.accounts.get(gone.id or "") == gone
        assert crm.accounts.get(also.id or "") == also

    def test_merge_that_fails_half_way_changes_nothing(
        self, crm: CRM, family: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = _state(crm)

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise _Failure

        # Tasks are re-pointed after interactions, deals and tickets: those writes and the
        # survivor's update must all be undone.
        monkeypatch.setattr(crm.repository("tasks"), "update", fail)
        with pytest.raises(_Failure):
            crm.dedupe.merge(family["ada"].id, [family["dup"].id])
        monkeypatch.undo()
        assert _state(crm) == before
        assert crm.repository(MergeRecord).count() == 0
        with pytest.raises(crmkit.NotFound):
            crm.dedupe.merge(family["ada"].id, ["no-such-contact"])
        with pytest.raises(crmkit.ValidationError):
            crm.dedupe.merge(family["ada"].id, [family["dup"].id], rules={"emails": "best"})
        with pytest.raises(crmkit.ValidationError):
            crm.dedupe.merge(family["ada"].id, [family["ada"].id])
        assert _state(crm) == before

    def test_unmerge_restores_the_previous_state(self, crm: CRM, family: dict[str, Any]) -> None:
        before = _state(crm)
        record = crm.dedupe.merge(family["ada"].id, [family["dup"].id])
        created: list[Created] = []
        crm.events.subscribe(Created, created.append)
        restored = crm.dedupe.unmerge(record.id or "")
        after = _state(crm)
        # subscribers hear of the restored duplicate (and the removed membership) again
        assert {(e.collection, e.entity_id) for e in created} >= {
            ("contacts", family["dup"].id),
            ("campaign_members", family["twice"].id),
        }

        def content(records: list[Any]) -> list[dict[str, Any]]:
            skip = {"version", "updated_at"}
            return [
                {k: v for k, v in attrs.asdict(r, recurse=False).items() if k not in skip}
                for r in records
            ]

        for name, records in before.items():
            assert content(after[name]) == content(records), name
        assert crm.contacts.get(family["dup"].id) == family["dup"]  # id, version, timestamps
        assert crm.contacts.get(family["ada"].id).title is None
        assert restored.version > family["ada"].version
        assert crm.repository(MergeRecord).get(record.id or "").unmerged_at is not None
        with pytest.raises(crmkit.ConflictError):
            crm.dedupe.unmerge(record.id or "")
        with pytest.raises(crmkit.NotFound):
            crm.dedupe.unmerge("no-such-merge")

    @pytest.mark.parametrize("changed", ["survivor", "related"])
    def test_unmerge_is_refused_after_a_later_change(
        self, crm: CRM, family: dict[str, Any], changed: str
    ) -> None:
        record = crm.dedupe.merge(family["ada"].id, [family["dup"].id])
        if changed == "survivor":
            survivor = crm.contacts.get(family["ada"].id)
            crm.contacts.update(attrs.evolve(survivor, title="Mathematician"))
        else:
            ticket = crm.tickets.get(family["ticket"].id)
            crm.tickets.update(attrs.evolve(ticket, subject="Punched cards"))
        before = _state(crm)
        with pytest.raises(crmkit.ConflictError):
            crm.dedupe.unmerge(record.id or "")
        assert _state(crm) == before
        assert crm.repository(MergeRecord).get(record.id or "").unmerged_at is None

    # --- permission views ------------------------------------------------------------------

    def test_dedupe_through_a_view_sees_and_merges_only_what_the_user_may(self, crm: CRM) -> None:
        emea = crm.teams.add(Team(name="EMEA"))
        sales = crm.roles.add(
            Role(
                name="sales",
                permissions={
                    "contacts": {"read": "team", "create": "own", "update": "own", "delete": "own"},
                    "merges": {"read": "own"},
                },
                hidden_fields={"contacts": ["phones"]},
            )
        )
        alice = crm.users.add(
            User(name="Alice", team_ids=(emea.id or "",), role_ids=(sales.id or "",))
        )
        bob = crm.users.add(User(name="Bob", team_ids=(emea.id or "",), role_ids=(sales.id or "",)))
        carol = crm.users.add(User(name="Carol", role_ids=(sales.id or "",)))
        mine = [
            crm.contacts.add(_ada(owner_id=alice.id)),
            crm.contacts.add(_ada(owner_id=alice.id, phones=("+44 20 7946 0999",))),
        ]
        bobs = crm.contacts.add(_ada(owner_id=bob.id, title="Countess"))
        carols = [
            crm.contacts.add(
                Contact(
                    first_name="Cat",
                    last_name="Stevens",
                    emails=("cat@catmail.com",),
                    owner_id=carol.id,
                )
            )
            for _ in range(2)
        ]
        dedupe = crm.as_user(alice.id or "").dedupe
        groups = dedupe.find("contacts")
        assert [set(g.ids) for g in groups] == [{mine[0].id, mine[1].id, bobs.id}]
        assert all(c.id not in g.ids for g in groups for c in carols)
        assert {
            m.b
            for m in dedupe.candidates(
                Contact(first_name="Cat", last_name="Stevens", emails=("cat@catmail.com",))
            )
        } == set()
        # phones are hidden from alice: the check does without them
        assert {m.b for m in dedupe.candidates(_ada())} == {mine[0].id, mine[1].id, bobs.id}
        before = _state(crm)
        with pytest.raises(crmkit.NotFound):
            dedupe.merge(mine[0].id or "", [carols[0].id or ""])
        with pytest.raises(crmkit.PermissionDenied):  # alice may read bob's but not delete it
            dedupe.merge(mine[0].id or "", [bobs.id or ""])
        assert _state(crm) == before
        record = dedupe.merge(mine[0].id or "", [mine[1].id or ""])
        assert record.actor_id == alice.id
        # the merge record alice may read keeps the phones hidden from her out of its
        # snapshots, and so does its audit history
        view = crm.as_user(alice.id or "")
        seen = view.repository(MergeRecord).get(record.id or "").snapshot
        assert "phones" not in seen["survivor"]
        assert all("phones" not in d for d in seen["duplicates"])
        phone = mine[1].phones[0]
        assert phone not in repr(view.audit.history(record.id or ""))
        assert phone not in repr(view.audit.field_history(record.id or "", "snapshot"))
        with pytest.raises(crmkit.PermissionDenied):  # a part of a snapshot: not masked
            view.audit.field_history(record.id or "", "snapshot.survivor")
        assert phone in repr(crm.audit.history(record.id or ""))
        assert "phones" in crm.repository(MergeRecord).get(record.id or "").snapshot["survivor"]
        survivor = crm.contacts.get(mine[0].id or "")
        assert survivor.phones == mine[0].phones  # hidden from alice: the survivor's own
        dedupe.unmerge(record.id or "")
        # every write of the merge and of its undoing is the user's, the merge record's too
        written = crm.audit_log.find(F.reason.in_(["merge", "unmerge"]))
        assert {e.record_collection for e in written} >= {"contacts", "merges"}
        assert {e.actor_id for e in written} == {alice.id}
        assert crm.contacts.get(mine[1].id or "") == mine[1]
        assert crm.contacts.get(mine[0].id or "").phones == mine[0].phones
        with pytest.raises(crmkit.NotFound):
            crm.dedupe.as_user(carol.id or "").unmerge(record.id or "")
        # the duplicate rule does not reveal a record the writing user may not read
        crm.dedupe.set_duplicate_rule("contacts", on_duplicate="raise")
        cat = Contact(first_name="Cat", last_name="Stevens", emails=("cat@catmail.com",))
        with pytest.raises(DuplicateFound) as hidden:
            crm.as_user(alice.id or "").contacts.add(cat)
        assert hidden.value.duplicate_id is None
        assert all((c.id or "") not in str(hidden.value) for c in carols)
        with pytest.raises(DuplicateFound) as shown:
            crm.as_user(carol.id or "").contacts.add(cat)
        assert shown.value.duplicate_id in {c.id for c in carols}
        crm.dedupe.clear_duplicate_rule("contacts")

    def test_a_merge_record_seen_by_a_user_hides_the_related_records_hidden_fields(
        self, crm: CRM
    ) -> None:
        # a merge snapshot also holds the records it re-pointed (their earlier values) and
        # removed (whole): their collections' hidden fields are left out of it too
        sales = crm.roles.add(
            Role(
                name="sales",
                permissions={
                    "contacts": {"read": "own", "update": "own", "delete": "own"},
                    "merges": {"read": "own"},
                    "deals": {"read": "all"},
                    "campaign_members": {"read": "all"},
                },
                hidden_fields={"deals": ["contact_roles"], "campaign_members": ["status"]},
            )
        )
        auditor = crm.roles.add(
            Role(
                name="auditor", permissions={"contacts": {"read": "all"}, "merges": {"read": "all"}}
            )
        )
        alice = crm.users.add(User(name="Alice", role_ids=(sales.id or "",)))
        bob = crm.users.add(User(name="Bob", role_ids=(auditor.id or "",)))
        ada = crm.contacts.add(_ada(owner_id=alice.id))
        dup = crm.contacts.add(_ada(owner_id=alice.id))
        crm.deals.add(
            Deal(
                name="Engine", contact_ids=(dup.id or "",), contact_roles={dup.id or "": "champion"}
            )
        )
        spring = crm.campaigns.add(Campaign(name="Spring"))
        for contact in (ada, dup):
            crm.campaign_members.add(
                CampaignMember(
                    campaign_id=spring.id or "",
                    contact_id=contact.id or "",
                    status=MemberStatus.RESPONDED,
                )
            )
        view = crm.as_user(alice.id or "")
        record = view.dedupe.merge(ada.id or "", [dup.id or ""])
        returned = record.snapshot  # the merge's own answer is masked like a read
        assert "contact_roles" not in returned["related"][0]["before"]
        assert all("status" not in r for r in returned["removed"])
        seen = view.repository(MergeRecord).get(record.id or "").snapshot
        (deal,) = [r for r in seen["related"] if r["collection"] == "deals"]
        assert set(deal["before"]) == {"contact_ids"}
        (member,) = seen["removed"]
        assert member["contact_id"] == dup.id
        assert "status" not in member
        assert "champion" not in repr(view.audit.history(record.id or ""))
        assert "responded" not in repr(view.audit.field_history(record.id or "", "snapshot"))
        with pytest.raises(crmkit.PermissionDenied):  # a part of a snapshot: not masked
            view.audit.field_history(record.id or "", "snapshot.removed")
        # of records of a collection a user may not read at all, only ids are left
        seen = crm.as_user(bob.id or "").repository(MergeRecord).get(record.id or "").snapshot
        (deal,) = [r for r in seen["related"] if r["collection"] == "deals"]
        assert deal["before"] == {}
        assert [dict(r) for r in seen["removed"]] == [
            {"collection": "campaign_members", "id": member["id"]}
        ]
        assert seen["survivor"]["id"] == ada.id  # contacts: bob may read them
        assert "champion" not in repr(crm.as_user(bob.id or "").audit.history(record.id or ""))
        stored = crm.repository(MergeRecord).get(record.id or "").snapshot
        assert stored["removed"][0]["status"] == "responded"
        assert "champion" in repr(crm.audit.history(record.id or ""))
