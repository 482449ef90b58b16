"""Conformance tests of privacy (export, erasure, suppression) and contact-account links.

The erasure test reads the backend's raw storage afterwards (:func:`raw_dump`) and checks
that no byte of it still holds the person's email addresses, phone number or names.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import pathlib
from decimal import Decimal
from typing import Any

import attrs
import pytest

import crmkit
from crmkit import CRM, Account, Contact, Deal, Interaction, Role, Segment, Task, Ticket, User
from crmkit.dedupe.merge import Override
from crmkit.entities import (
    AccountContact,
    AccountRole,
    Address,
    Article,
    ArticleStatus,
    Attachment,
    AuditAction,
    AuditEntry,
    Campaign,
    CampaignMember,
    Consent,
    InteractionKind,
    LawfulBasis,
    LifecycleStage,
    MergeRecord,
    Money,
    Order,
    OrderLine,
    Participant,
    ParticipantRole,
    Pipeline,
    SegmentKind,
    Stage,
    SurveyKind,
    SurveyResponse,
)
from crmkit.query import F, from_dict

__all__ = ["PrivacyConformance", "raw_dump"]

EMAIL = "zyxwa.qorvath@example.org"
OLD_EMAIL = "zq.private@old-mail.example"
PHONE = "+442079460958"
FIRST, LAST = "Zyxwa", "Qorvath"
AT = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)


def raw_dump(crm: CRM) -> bytes:
    """Every byte a CRM's backend stores, for tests that look for leftover data.

    A backend may provide its own ``raw_dump() -> bytes`` method; otherwise crmkit's
    backends are read directly: memory (every record, every index key, the undo log),
    SQLite (the database file and its write-ahead log, or the serialized in-memory
    database), PostgreSQL (every row of every crmkit table as text: dead row versions are
    not visible to SQL, ``VACUUM`` removes them) and MongoDB (every document).
    """
    backend: Any = crm.backend
    own = getattr(backend, "raw_dump", None)
    if own is not None:
        data: bytes = own()
        return data
    kind = type(backend).__name__
    if kind == "MemoryBackend":
        parts = []
        for store in backend._stores.values():
            parts += [repr(r) for r in store._rows.values()]
            parts += [repr(list(index)) for index in store._indexes.values()]
        parts.append(repr(getattr(backend._local, "log", None)))
        return "\n".join(parts).encode()
    if kind == "SqlBackend":
        engine = backend.engine
        if engine.dialect.name == "sqlite":
            path = engine.url.database
            with backend.reading() as conn:
                if path and path != ":memory:":
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    files = [pathlib.Path(path), pathlib.Path(f"{path}-wal")]
                    return b"".join(f.read_bytes() for f in files if f.exists())
                raw: bytes = conn.connection.dbapi_connection.serialize()
                return raw
        out: list[str] = []
        with backend.reading() as conn:
            for table in backend.metadata.sorted_tables:
                rows = conn.exec_driver_sql(f"SELECT t::text FROM {table.fullname} AS t")
                out += [r[0] for r in rows]
        return "\n".join(out).encode()
    if kind == "MongoBackend":
        db = backend.database
        docs = [repr(d) for name in db.list_collection_names() for d in db[name].find()]
        return "\n".join(docs).encode()
    raise NotImplementedError(f"no raw dump for {kind}: give the backend a raw_dump() method")


class PrivacyConformance:
    """Privacy and relationship tests every backend must pass (mixed into the suite)."""

    # --- contacts in several accounts ----------------------------------------------------

    def test_privacy_links_keep_primary_in_sync(self, crm: CRM) -> None:
        """A primary link sets ``account_id``; at most one link is primary."""
        acme = crm.accounts.add(Account(name="Acme"))
        board = crm.accounts.add(Account(name="Board Co"))
        ada = crm.contacts.add(Contact(first_name="Ada", account_id=acme.id))
        rel = crm.relationships
        consultant = rel.link(ada.id or "", board.id or "", role="consultant")
        assert not consultant.is_primary
        rel.link(ada.id or "", acme.id or "", primary=True)
        rel.link(ada.id or "", board.id or "", role="board_member", primary=True)
        assert crm.contacts.get(ada.id or "").account_id == board.id
        links = rel.accounts_of(ada.id or "")
        assert [(x.account_id, x.is_primary, x.role) for x in links] == [
            (board.id, True, "board_member"),
            (acme.id, False, "employee"),
        ]
        assert [x.contact_id for x in rel.contacts_of(acme.id or "")] == [ada.id]
        # changing account_id directly moves the primary flag
        crm.contacts.update(attrs.evolve(crm.contacts.get(ada.id or ""), account_id=acme.id))
        assert [x.account_id for x in rel.accounts_of(ada.id or "") if x.is_primary] == [acme.id]
        rel.unlink(ada.id or "", acme.id or "")
        assert crm.contacts.get(ada.id or "").account_id is None
        assert [x.account_id for x in rel.accounts_of(ada.id or "")] == [board.id]
        with pytest.raises(crmkit.NotFound):
            rel.unlink(ada.id or "", acme.id or "")
        with pytest.raises(crmkit.ValidationError):
            rel.link(ada.id or "", acme.id or "", role="astronaut")

    def test_privacy_links_in_timeline_and_views(self, crm: CRM) -> None:
        """An account's timeline shows linked contacts' activity; views never leak links."""
        acme = crm.accounts.add(Account(name="Acme"))
        bob = crm.users.add(User(name="Bob"))
        role = crm.roles.add(
            Role(name="rep", permissions={"contacts": {"read": "own"}, "accounts": {"read": "all"}})
        )
        crm.users.update(attrs.evolve(bob, role_ids=(role.id or "",)))
        mine = crm.contacts.add(Contact(first_name="Mine", owner_id=bob.id))
        hidden = crm.contacts.add(Contact(first_name="Hidden"))
        for person in (mine, hidden):
            crm.relationships.link(person.id or "", acme.id or "", role="consultant")
        crm.interactions.add(
            Interaction(kind=InteractionKind.CALL, occurred_at=AT, contact_ids=(hidden.id or "",))
        )
        assert [
            getattr(i.record, "contact_ids", None) for i in crm.timeline(account_id=acme.id)
        ] == [(hidden.id,)]
        view = crm.as_user(bob.id or "")
        assert [x.contact_id for x in view.relationships.contacts_of(acme.id or "")] == [mine.id]
        with pytest.raises(crmkit.NotFound):
            view.relationships.accounts_of(hidden.id or "")

    def test_privacy_links_rules_hold_on_every_write(self, crm: CRM) -> None:
        """The repository refuses a second link of the same two records, a primary flag that
        disagrees with ``account_id`` and unknown ends; ``link`` changes only what it is
        given, and a link to the contact's account is its primary one."""
        acme = crm.accounts.add(Account(name="Acme"))
        fund = crm.accounts.add(Account(name="Fund"))
        ada = crm.contacts.add(Contact(first_name="Ada", account_id=acme.id))
        a, f = ada.id or "", fund.id or ""
        rel, links = crm.relationships, crm.account_contacts
        assert rel.link(a, acme.id or "").is_primary  # the contact's account_id
        seat = rel.link(a, f, role="board_member", label="Chair", started=dt.date(2023, 1, 1))
        promoted = rel.link(a, f, primary=True)
        assert (promoted.role, promoted.label, promoted.started, promoted.is_primary) == (
            "board_member",
            "Chair",
            dt.date(2023, 1, 1),
            True,
        )
        assert rel.link(a, f, label=None).label is None
        assert crm.contacts.get(a).account_id == fund.id
        before = sorted((x.account_id, x.is_primary, x.version) for x in links.find())
        bad: list[AccountContact] = [
            AccountContact(
                contact_id=a, account_id=f, role=AccountRole.CONSULTANT, is_primary=True
            ),
            AccountContact(contact_id=a, account_id=acme.id or "", is_primary=True),
            AccountContact(contact_id="no-such-contact", account_id=f),
            AccountContact(contact_id=a, account_id="no-such-account"),
        ]
        for link in bad:
            with pytest.raises(crmkit.ValidationError):
                links.add(link)
        other = crm.contacts.add(Contact(first_name="Grace"))
        twice = [AccountContact(contact_id=other.id or "", account_id=f) for _ in range(2)]
        with pytest.raises(crmkit.ValidationError):
            links.add_many(twice)
        seat = rel.accounts_of(a)[1]
        with pytest.raises(crmkit.ValidationError):
            links.update(attrs.evolve(seat, is_primary=True))
        with pytest.raises(crmkit.ValidationError):
            links.update(attrs.evolve(seat, account_id=f))  # the pair the primary link joins
        assert sorted((x.account_id, x.is_primary, x.version) for x in links.find()) == before
        with pytest.raises(crmkit.ValidationError):
            rel.link(["x"], f)  # type: ignore[arg-type]

    def test_privacy_links_go_with_a_deleted_contact_or_account(self, crm: CRM) -> None:
        acme = crm.accounts.add(Account(name="Acme"))
        fund = crm.accounts.add(Account(name="Fund"))
        ada = crm.contacts.add(Contact(first_name="Ada", account_id=acme.id))
        grace = crm.contacts.add(Contact(first_name="Grace"))
        for person in (ada, grace):
            for account in (acme, fund):
                crm.relationships.link(person.id or "", account.id or "", label="Ada's seat")
        crm.contacts.delete(ada.id or "")
        assert {(x.contact_id, x.account_id) for x in crm.account_contacts.find()} == {
            (grace.id, acme.id),
            (grace.id, fund.id),
        }
        crm.accounts.delete(fund.id or "")
        assert [x.account_id for x in crm.account_contacts.find()] == [acme.id]
        deleted = crm.audit_log.find(
            (F.record_collection == "account_contacts") & (F.action == AuditAction.DELETE)
        )
        assert len(deleted) == 3  # each link's deletion is audited, so erasure finds it

    def test_privacy_links_follow_a_merge_and_its_undoing(self, crm: CRM) -> None:
        acme = crm.accounts.add(Account(name="Acme"))
        fund = crm.accounts.add(Account(name="Fund"))
        shop = crm.accounts.add(Account(name="Shop"))
        ada = crm.contacts.add(Contact(first_name="Ada", last_name="King", account_id=acme.id))
        dup = crm.contacts.add(Contact(first_name="Ada", last_name="King", account_id=fund.id))
        a, d = ada.id or "", dup.id or ""
        rel = crm.relationships
        rel.link(a, acme.id or "", role="employee")
        rel.link(d, fund.id or "", role="board_member", label="Chair")  # dup's primary
        rel.link(d, acme.id or "", role="consultant")  # ada has her own link to acme
        rel.link(d, shop.id or "", role="owner")

        def state() -> list[tuple[Any, ...]]:
            return sorted(
                (x.contact_id, x.account_id, x.role, x.label, x.is_primary)
                for x in crm.account_contacts.find()
            )

        before = state()
        merge = crm.dedupe.merge(a, [d])
        # dup's links are ada's now (her own link to acme is kept); flags follow her account
        assert state() == sorted(
            [
                (a, acme.id, "employee", None, True),
                (a, fund.id, "board_member", "Chair", False),
                (a, shop.id, "owner", None, False),
            ]
        )
        assert rel.accounts_of(a)[0].account_id == acme.id  # primary first
        crm.dedupe.unmerge(merge.id or "")
        assert state() == before
        # an account merge moves the links to the surviving account the same way
        grace = crm.contacts.add(Contact(first_name="Grace", account_id=fund.id))
        rel.link(grace.id or "", fund.id or "", role="employee")
        rel.link(grace.id or "", acme.id or "", role="consultant")
        before = state()
        merge = crm.dedupe.merge(acme.id or "", [fund.id or ""])
        assert crm.contacts.get(grace.id or "").account_id == acme.id
        assert [(x.account_id, x.role, x.is_primary) for x in rel.accounts_of(grace.id or "")] == [
            (acme.id, "consultant", True)  # her own link to acme kept, fund's removed
        ]
        assert {x.account_id for x in crm.account_contacts.find()} == {acme.id, shop.id}
        primary = {x.contact_id for x in rel.contacts_of(acme.id or "") if x.is_primary}
        assert primary == {a, d, grace.id}  # dup is back: her account was fund
        crm.dedupe.unmerge(merge.id or "")
        assert state() == before

    def test_privacy_links_in_a_view_need_both_ends_readable(self, crm: CRM) -> None:
        acme = crm.accounts.add(Account(name="Acme"))
        bob = crm.users.add(User(name="Bob"))
        role = crm.roles.add(
            Role(
                name="rep",
                permissions={
                    "contacts": {"read": "own", "update": "own"},
                    "accounts": {"read": "own"},
                    "account_contacts": {"read": "all", "create": "all", "delete": "all"},
                    "interactions": {"read": "all"},
                },
            )
        )
        crm.users.update(attrs.evolve(bob, role_ids=(role.id or "",)))
        mine = crm.accounts.add(Account(name="Mine", owner_id=bob.id))
        me = crm.contacts.add(Contact(first_name="Mine", owner_id=bob.id))
        secret = crm.contacts.add(Contact(first_name="Secret"))
        crm.relationships.link(secret.id or "", mine.id or "", label="Board seat via M&A")
        crm.relationships.link(me.id or "", acme.id or "")
        crm.interactions.add(
            Interaction(kind=InteractionKind.CALL, occurred_at=AT, contact_ids=(secret.id or "",))
        )
        view = crm.as_user(bob.id or "")
        assert view.account_contacts.find() == []
        assert view.account_contacts.count() == 0
        hidden = crm.account_contacts.find()
        with pytest.raises(crmkit.NotFound):
            view.account_contacts.get(hidden[0].id or "")
        with pytest.raises(crmkit.NotFound):
            view.account_contacts.delete(hidden[0].id or "")
        with pytest.raises((crmkit.NotFound, crmkit.PermissionDenied)):
            view.account_contacts.add(
                AccountContact(contact_id=me.id or "", account_id=acme.id or "")
            )
        link = view.account_contacts.add(
            AccountContact(contact_id=me.id or "", account_id=mine.id or "")
        )
        assert [x.id for x in view.account_contacts.find()] == [link.id]
        assert len(crm.account_contacts.find()) == 3
        # the timeline of bob's account leaves out the calls of a linked contact he may not read
        assert list(view.timeline(account_id=mine.id)) == []
        assert len(list(crm.timeline(account_id=mine.id))) == 1

    def test_privacy_links_stored_by_an_older_crmkit_are_put_right_on_write(self, crm: CRM) -> None:
        # links stored without the rules (a flag that disagrees with account_id, a link to
        # an account deleted since) can still be written, and erased
        acme = crm.accounts.add(Account(name="Acme"))
        gone = crm.accounts.add(Account(name="Gone"))
        ann = crm.contacts.add(
            Contact(first_name="Ann", emails=("ann@acme.example",), account_id=acme.id)
        )
        store = crm.backend.store(AccountContact)
        stamp: dict[str, Any] = {"version": 1, "created_at": AT, "updated_at": AT}
        store.insert(
            [
                AccountContact(
                    id="old-1", contact_id=ann.id or "", account_id=acme.id or "", **stamp
                ),
                AccountContact(
                    id="old-2",
                    contact_id=ann.id or "",
                    account_id=gone.id or "",
                    label="Ann at Gone",
                    **stamp,
                ),
            ]
        )
        crm.backend.store(Account).delete(gone.id or "", 1)
        fixed = crm.relationships.link(ann.id or "", acme.id or "", primary=True)
        assert (fixed.id, fixed.is_primary) == ("old-1", True)
        crm.privacy.erase(ann.id or "")
        assert "Ann" not in (crm.account_contacts.get("old-2").label or "")

    def test_privacy_links_a_merge_cannot_restore_refuse_its_undoing(self, crm: CRM) -> None:
        fund = crm.accounts.add(Account(name="Fund"))
        ada = crm.contacts.add(Contact(first_name="Ada", last_name="King"))
        dup = crm.contacts.add(Contact(first_name="Ada", last_name="King"))
        for person in (ada, dup):  # the duplicate's link is removed by the merge
            crm.relationships.link(person.id or "", fund.id or "", role="partner")
        merge = crm.dedupe.merge(ada.id or "", [dup.id or ""])
        crm.accounts.delete(fund.id or "")  # and the account is deleted since
        with pytest.raises(crmkit.ConflictError, match="cannot be restored"):
            crm.dedupe.unmerge(merge.id or "")
        assert crm.account_contacts.count() == 0
        with pytest.raises(crmkit.NotFound):
            crm.contacts.get(dup.id or "")

    def test_privacy_links_bulk_writes_collect_a_pair_stored_already(self, crm: CRM) -> None:
        acme = crm.accounts.add(Account(name="Acme"))
        fund = crm.accounts.add(Account(name="Fund"))
        ada = crm.contacts.add(Contact(first_name="Ada"))
        crm.relationships.link(ada.id or "", acme.id or "")
        result = crm.account_contacts.add_many(
            [
                AccountContact(contact_id=ada.id or "", account_id=acme.id or ""),
                AccountContact(contact_id=ada.id or "", account_id=fund.id or ""),
            ],
            on_error="collect",
        )
        assert [x.account_id for x in result] == [fund.id]
        assert [r.index for r in result.rejected] == [0]
        assert "another link" in result.rejected[0].reasons[0]

    def test_privacy_links_in_merge_snapshots_follow_the_users_reads(self, crm: CRM) -> None:
        bob = crm.users.add(User(name="Bob"))
        role = crm.roles.add(
            Role(
                name="auditor",
                permissions={
                    "contacts": {"read": "all"},
                    "accounts": {"read": "own"},
                    "account_contacts": {"read": "all"},
                    "merges": {"read": "all"},
                },
            )
        )
        crm.users.update(attrs.evolve(bob, role_ids=(role.id or "",)))
        secret = crm.accounts.add(Account(name="Secret"))
        ada = crm.contacts.add(Contact(first_name="Ada", last_name="King"))
        dup = crm.contacts.add(Contact(first_name="Ada", last_name="King"))
        for person in (ada, dup):
            crm.relationships.link(
                person.id or "", secret.id or "", label="Board seat, takeover talks"
            )
        merge = crm.dedupe.merge(ada.id or "", [dup.id or ""])
        view = crm.as_user(bob.id or "")
        assert view.account_contacts.count() == 0
        merges = view.repository(MergeRecord)
        for seen in (
            merges.get(merge.id or "").snapshot,
            merges.find()[0].snapshot,
            merges.first().snapshot,  # type: ignore[union-attr]
            view.dedupe.merges()[0].snapshot,
        ):
            assert [set(r) for r in seen["removed"]] == [{"collection", "id"}]
            assert seen["survivor"]["first_name"] == "Ada"  # contacts bob may read
        assert "takeover" not in repr(view.audit.history(merge.id or ""))
        # a user who may not read merge records gets none from the dedupe service either
        carol = crm.users.add(User(name="Carol", role_ids=()))
        assert crm.as_user(carol.id or "").dedupe.merges() == []
        assert "takeover" in repr(crm.repository(MergeRecord).get(merge.id or "").snapshot)

    # --- consent --------------------------------------------------------------------------

    def test_privacy_consent_round_trip(self, crm: CRM) -> None:
        """Consent decisions and the lawful basis are stored and read back exactly."""
        ada = crm.contacts.add(
            Contact(
                first_name="Ada",
                lawful_basis=LawfulBasis.CONSENT,
                consents=(
                    Consent(purpose="newsletter", granted=True, at=AT, source="web form"),
                    Consent(purpose="newsletter", granted=False, at=AT + dt.timedelta(days=3)),
                ),
            )
        )
        stored = crm.contacts.get(ada.id or "")
        assert stored == ada
        assert stored.consent("newsletter") is False
        assert stored.consent("phone") is None

    # --- export and erasure ---------------------------------------------------------------

    def _person(self, crm: CRM) -> dict[str, Any]:
        acme = crm.accounts.add(Account(name="Acme Corp", domain="acme.com"))
        other = crm.accounts.add(Account(name="Board Co"))
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                last_name=LAST,
                emails=(EMAIL,),
                phones=("+44 20 7946 0958",),
                title="Chief Zyxwa Officer",
                account_id=acme.id,
                address=Address(street="12 Qorvath Lane", city="London"),
                custom={"nickname": "Zyxwa-Q"},
                lawful_basis=LawfulBasis.CONTRACT,
            )
        )
        dup = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(OLD_EMAIL,)))
        # a task of the duplicate, deleted before the merge: only its audit entries remain
        old_task = crm.tasks.add(Task(title="Write", description=OLD_EMAIL, contact_id=dup.id))
        crm.tasks.delete(old_task.id or "")
        merge = crm.dedupe.merge(ada.id or "", [dup.id or ""])
        ada = crm.contacts.get(ada.id or "")
        colleague = crm.contacts.add(Contact(first_name="Grace", emails=("grace@acme.com",)))
        crm.relationships.link(ada.id or "", other.id or "", role="board_member")
        alone = crm.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                occurred_at=AT,
                subject=f"Hello {FIRST}",
                body=f"Write to {EMAIL} or call +44 (20) 7946-0958",
                contact_ids=(ada.id or "",),
            )
        )
        participant: Any = getattr(crmkit.entities, "Participant", None)
        if participant is not None:  # email participants: the person's address and name
            alone = crm.interactions.update(
                attrs.evolve(
                    alone,
                    participants=(
                        participant(
                            role="from",
                            address="zq.alias@alias.example",
                            name=f"{FIRST} {LAST}",
                            contact_id=ada.id,
                        ),
                        participant(role="to", address="sales@acme.com", name="Sales"),
                    ),
                )
            )
        shared = crm.interactions.add(
            Interaction(
                kind=InteractionKind.MEETING,
                occurred_at=AT,
                body=f"Grace met {FIRST} {LAST} about pricing",
                contact_ids=(ada.id or "", colleague.id or ""),
            )
        )
        mention = crm.interactions.add(
            Interaction(kind=InteractionKind.NOTE, occurred_at=AT, body=f"Forwarded by {EMAIL}")
        )
        with crm.acting(None, reason=f"{LAST} asked for a renewal"):  # in its stage history
            deal = crm.deals.add(
                Deal(
                    name=f"Renewal for {FIRST} {LAST}",
                    amount=Money(amount=Decimal("1200.00"), currency="EUR"),
                    account_id=acme.id,
                    contact_ids=(ada.id or "",),
                )
            )
        # deleted before the erasure: only its audit entries remain
        gone = crm.interactions.add(
            Interaction(
                kind=InteractionKind.CALL,
                occurred_at=AT,
                body=f"Left a message on {PHONE}",
                contact_ids=(ada.id or "",),
            )
        )
        crm.interactions.delete(gone.id or "")
        task = crm.tasks.add(
            Task(title="Call back", description=f"ring {PHONE}", contact_id=ada.id)
        )
        ticket = crm.tickets.add(
            Ticket(subject=f"{LAST} cannot log in", description=EMAIL, contact_id=ada.id)
        )
        campaign = crm.campaigns.add(Campaign(name="Spring"))
        member = crm.campaign_members.add(
            CampaignMember(campaign_id=campaign.id or "", contact_id=ada.id or "")
        )
        segment = crm.segments.add(
            Segment(name="VIP", rule=F.emails.contains(EMAIL).to_dict(), kind=SegmentKind.STATIC)
        )
        crm.segments.snapshot(segment.id or "")
        order = crm.orders.upsert(
            Order(
                external_id="S-1",
                placed_at=AT,
                contact_id=ada.id,
                customer_name=f"{FIRST} {LAST}",
                customer_email=EMAIL,
                lines=(
                    OrderLine(
                        sku="K-1",
                        quantity=2,
                        unit_price=Money(amount=Decimal("10"), currency="EUR"),
                    ),
                ),
            )
        )
        survey = crm.survey_responses.add(
            SurveyResponse(
                kind=SurveyKind.NPS,
                score=9,
                responded_at=AT,
                contact_id=ada.id,
                comment=f"{FIRST} says: call {PHONE}",
            )
        )
        crm.audit_log.add(
            AuditEntry(
                record_collection="contacts",
                record_id=ada.id or "",
                action=AuditAction.UPDATE,
                changed=("emails", "title"),
                at=AT,
                changes={
                    "emails": {"old": [OLD_EMAIL], "new": [EMAIL, OLD_EMAIL]},
                    "title": {"old": None, "new": "Chief Zyxwa Officer"},
                },
            )
        )
        return {
            "acme": acme,
            "ada": ada,
            "merge": merge,
            "alone": alone,
            "shared": shared,
            "mention": mention,
            "deal": deal,
            "task": task,
            "ticket": ticket,
            "member": member,
            "segment": segment,
            "order": order,
            "survey": survey,
        }

    def test_privacy_export_is_complete_json(self, crm: CRM) -> None:
        """The export holds every record about the person and survives ``json.dumps``."""
        p = self._person(crm)
        doc = crm.privacy.export(p["ada"].id)
        text = json.dumps(doc)
        assert json.loads(text) == doc
        assert doc["contact"]["emails"] == [EMAIL, OLD_EMAIL]

        def ids(key: str) -> set[str]:
            return {r["id"] for r in doc[key]}

        assert ids("interactions") == {p["alone"].id, p["shared"].id}
        assert ids("deals") == {p["deal"].id}
        assert ids("tasks") == {p["task"].id}
        assert ids("tickets") == {p["ticket"].id}
        assert ids("campaign_memberships") == {p["member"].id}
        assert ids("merges") == {p["merge"].id}
        assert ids("segments") == {p["segment"].id}
        assert ids("orders") == {p["order"].id}
        assert ids("survey_responses") == {p["survey"].id}
        assert len(doc["account_links"]) == 1
        assert {a["name"] for a in doc["accounts"]} == {"Acme Corp", "Board Co"}
        assert p["ada"].id in {a["record_id"] for a in doc["audit_entries"]}
        assert doc["deals"][0]["amount"] == {"amount": "1200.00", "currency": "EUR"}

    def test_privacy_erase_leaves_no_bytes(self, crm: CRM) -> None:
        """After erasure no stored byte holds the person's email, phone or name, business
        facts stay, and the email and phone are suppressed for adds and imports."""
        p = self._person(crm)
        before = raw_dump(crm)
        for term in (EMAIL, OLD_EMAIL, PHONE, FIRST, LAST):
            assert term.encode() in before
        tombstone = crm.privacy.erase(p["ada"].id)
        assert tombstone.erased_at is not None
        assert tombstone.emails == ()
        assert tombstone.first_name is None
        after = raw_dump(crm)
        # identifiers, and personal values (title, street) wherever they were copied: merge
        # snapshots and the audit entries of every record written
        for term in (EMAIL, OLD_EMAIL, PHONE, FIRST, LAST, "zq.alias@alias.example", "Qorvath"):
            assert term.encode() not in after, term
        assert crm.accounts.get(p["acme"].id).name == "Acme Corp"
        deal = crm.deals.get(p["deal"].id)
        assert str(deal.amount) == "1200.00 EUR"
        assert deal.contact_ids == (p["ada"].id,)
        assert deal.name == "Renewal for [erased]"
        alone = crm.interactions.get(p["alone"].id)
        assert alone.body is None
        assert alone.subject is None
        assert crm.interactions.get(p["shared"].id).body == ("Grace met [erased] about pricing")
        assert p["ada"].id not in crm.segments.get(p["segment"].id).member_ids
        assert crm.tickets.get(p["ticket"].id).subject == "[erased] cannot log in"
        order = crm.orders.get(p["order"].id)
        assert (order.customer_name, order.customer_email) == (None, None)
        assert order.total == p["order"].total
        assert order.lines == p["order"].lines
        survey = crm.survey_responses.get(p["survey"].id)
        assert (survey.score, survey.comment) == (9, None)
        # suppression: adds and imports of the email or phone are refused
        with pytest.raises(crmkit.Suppressed):
            crm.contacts.add(Contact(first_name="New", emails=(EMAIL.upper(),)))
        with pytest.raises(crmkit.Suppressed):
            crm.contacts.add(Contact(first_name="New", phones=("+44 20 7946 0958",)))
        assert crm.privacy.is_suppressed(OLD_EMAIL)
        source = io.StringIO(f"first_name,emails\nBack,{EMAIL}\nFresh,fresh@example.org\n")
        summary = crm.imports.csv(source)
        assert (summary.created, summary.rejected) == (1, 1)
        assert crm.contacts.count(F.emails.contains(EMAIL)) == 0
        assert EMAIL.encode() not in raw_dump(crm)

    def test_privacy_custom_fields_follow_their_definitions(self, crm: CRM) -> None:
        """Erasure keeps custom fields defined as not personal (redacted), drops the ones
        defined personal and the undefined ones."""
        schema = crm.schema
        schema.define_field("contacts", "nickname", "text", sensitivity="personal")
        schema.define_field("contacts", "segment_code", "text")
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                custom={"nickname": "Zed", "segment_code": f"B2B {FIRST}", "extra": "x"},
            )
        )
        assert crm.privacy.erase(ada.id or "").custom == {"segment_code": "B2B [erased]"}

    def test_privacy_erase_covers_what_the_record_held_before(self, crm: CRM) -> None:
        """An email or phone the person had earlier is erased and suppressed too, and the
        tags and lead source a tombstone empties leave its history as well."""
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                emails=("zq.before@old-mail.example",),
                phones=("+14155550177",),
                tags=("zq-oncology-programme",),
                lead_source="zq-referral",
            )
        )
        grace = crm.contacts.add(Contact(first_name="Grace"))
        shared = crm.interactions.add(
            Interaction(
                kind=InteractionKind.MEETING,
                occurred_at=AT,
                body="Reach her at zq.before@old-mail.example or +1 415 555 0177",
                contact_ids=(ada.id or "", grace.id or ""),
            )
        )
        crm.contacts.update(attrs.evolve(ada, emails=(EMAIL,), phones=()))
        crm.privacy.erase(ada.id or "")
        assert crm.interactions.get(shared.id or "").body == "Reach her at [erased] or [erased]"
        assert crm.privacy.is_suppressed("zq.before@old-mail.example")
        assert crm.privacy.is_suppressed("+14155550177")
        after = raw_dump(crm)
        for term in ("zq.before@old-mail.example", "+14155550177", "zq-oncology", "zq-referral"):
            assert term.encode() not in after, term

    def test_privacy_undone_merge_keeps_the_other_person(self, crm: CRM) -> None:
        """A merge that was undone does not make two contacts one person: erasing one leaves
        the other's record, audit trail and email alone, and an export holds only its own."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        bob = crm.contacts.add(
            Contact(first_name="Bob", last_name="Olmstead", emails=("bob@olmstead.example",))
        )
        merge = crm.dedupe.merge(ada.id or "", [bob.id or ""])
        crm.dedupe.unmerge(merge.id or "")
        doc = crm.privacy.export(ada.id or "")
        assert [m["id"] for m in doc["merges"]] == [merge.id]
        assert bob.id not in {e["record_id"] for e in doc["audit_entries"]}
        assert "Olmstead" not in json.dumps(doc)  # nor in the merge's snapshots
        assert "bob@olmstead.example" not in json.dumps(doc)  # nor in Ada's history
        bob = crm.contacts.update(
            attrs.evolve(crm.contacts.get(bob.id or ""), phones=("+14155550166",))
        )
        crm.contacts.update(attrs.evolve(bob, emails=("bob@new.example",)))
        crm.privacy.erase(ada.id or "")
        assert crm.contacts.get(bob.id or "").emails == ("bob@new.example",)
        assert not crm.privacy.is_suppressed("bob@olmstead.example")  # his, before
        created = crm.audit.history(bob.id or "", collection="contacts")[-1]
        assert created.action is AuditAction.CREATE
        assert created.changes["last_name"]["new"] == "Olmstead"
        after = raw_dump(crm)
        assert LAST.encode() not in after
        assert b"Olmstead" in after

    def test_privacy_erase_is_all_or_nothing(self, crm: CRM) -> None:
        """A failing erasure changes nothing; an unknown contact raises ``NotFound``."""
        p = self._person(crm)
        with pytest.raises(crmkit.NotFound):
            crm.privacy.erase("missing")

        def erase_then_fail() -> None:
            with crm.transaction():
                crm.privacy.erase(p["ada"].id)
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            erase_then_fail()
        assert crm.contacts.get(p["ada"].id) == p["ada"]
        assert not crm.privacy.is_suppressed(EMAIL)

    def test_privacy_erase_keeps_enum_choices_unless_they_identify(self, crm: CRM) -> None:
        """An enum value is business data: kept, or cleared when it holds the person's
        identifiers (a multi-enum loses those choices), never redacted into a value outside
        the choices, so the erasure cannot fail on it (a required field included)."""
        schema = crm.schema
        schema.define_field("tickets", "product", "enum", choices=[LAST, "Falcon"], required=True)
        schema.define_field("tickets", "tier", "enum", choices=["gold", "silver"])
        schema.define_field("tickets", "lines", "multi_enum", choices=[LAST, "Falcon", "Web"])
        schema.define_field("tickets", "note", "text")
        schema.define_field("contacts", "region", "enum", choices=["emea", FIRST])
        schema.define_field("contacts", "cohort", "enum", choices=["2023", FIRST])
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                last_name=LAST,
                emails=(EMAIL,),
                custom={"region": "emea", "cohort": FIRST},
            )
        )
        ticket = crm.tickets.add(
            Ticket(
                subject="Crash on start",
                contact_id=ada.id,
                custom={
                    "product": LAST,
                    "tier": "gold",
                    "lines": [LAST, "Web"],
                    "note": f"seen by {EMAIL}",
                },
            )
        )
        rule = (F.custom.cohort == FIRST) | F.emails.contains(EMAIL)
        segment = crm.segments.add(Segment(name="Cohort", rule=rule.to_dict()))
        unrelated = (F.lifecycle_stage == "lead") | (F.custom.region == "emea")
        leads = crm.segments.add(Segment(name="Leads", rule=unrelated.to_dict()))
        tombstone = crm.privacy.erase(ada.id or "")
        assert tombstone.custom == {"region": "emea"}
        assert crm.tickets.get(ticket.id or "").custom == {
            "tier": "gold",
            "lines": ("Web",),
            "note": "seen by [erased]",
        }
        # a segment rule keeps its enum choice (and still runs); the email is redacted
        stored = from_dict(crm.segments.get(segment.id or "").rule).to_dict()
        assert stored == ((F.custom.cohort == FIRST) | F.emails.contains("[erased]")).to_dict()
        assert crm.segments.member_count(segment.id or "") == 0
        assert crm.segments.get(leads.id or "").version == leads.version  # nothing to redact
        assert EMAIL.encode() not in raw_dump(crm)  # the names are choices: they stay

    def test_privacy_erase_wipes_an_unparseable_participant_address(self, crm: CRM) -> None:
        """A participant linked to the person whose address is not a valid email is wiped
        like any other and does not make the erasure fail: only valid addresses are
        suppressed."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        unparseable = f"{FIRST} {LAST} <undisclosed-recipients>"
        mail = crm.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                occurred_at=AT,
                subject="Crash",
                contact_ids=(ada.id or "",),
                participants=(
                    Participant(role=ParticipantRole.FROM, address=unparseable, contact_id=ada.id),
                    Participant(role=ParticipantRole.TO, address="help@acme.example", name="Help"),
                ),
            )
        )
        crm.privacy.erase(ada.id or "")
        who = crm.interactions.get(mail.id or "").participants
        assert [(p.address, p.name) for p in who] == [
            ("[erased]", None),
            ("help@acme.example", "Help"),
        ]
        assert crm.privacy.is_suppressed(EMAIL)
        after = raw_dump(crm)
        for term in (EMAIL, "undisclosed-recipients", LAST):
            assert term.encode() not in after, term

    def test_privacy_tombstone_keeps_consents_without_their_source_text(self, crm: CRM) -> None:
        """The consent history stays on the tombstone (purpose, decision, time: the legal
        record), with the person's identifiers redacted from each source."""
        consents = (
            Consent(purpose="newsletter", granted=True, at=AT, source=f"double opt-in by {EMAIL}"),
            Consent(
                purpose="calls",
                granted=True,
                at=AT,
                source=f"verbal, call to +44 20 7946 0958 with {FIRST} {LAST}",
            ),
            Consent(purpose="calls", granted=False, at=AT + dt.timedelta(days=1)),
            Consent(purpose="sms", granted=True, at=AT, source="web form"),
        )
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                last_name=LAST,
                emails=(EMAIL,),
                phones=(PHONE,),
                consents=consents,
            )
        )
        tombstone = crm.privacy.erase(ada.id or "")
        assert crm.contacts.get(ada.id or "") == tombstone
        assert [(c.purpose, c.granted, c.at, c.source) for c in tombstone.consents] == [
            ("newsletter", True, AT, "double opt-in by [erased]"),
            ("calls", True, AT, "verbal, call to [erased] with [erased]"),
            ("calls", False, AT + dt.timedelta(days=1), None),
            ("sms", True, AT, "web form"),
        ]
        assert tombstone.consent("calls") is False
        after = raw_dump(crm)
        for term in (EMAIL, FIRST, LAST, "7946"):
            assert term.encode() not in after, term

    def test_privacy_erase_empties_merge_override_rules(self, crm: CRM) -> None:
        """A merge's survivorship rules lose the person's override values like its snapshot:
        personal fields emptied, identifiers redacted elsewhere, strategies kept."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        dup = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(OLD_EMAIL,)))
        merge = crm.dedupe.merge(
            ada.id or "",
            [dup.id or ""],
            rules={
                "title": Override(f"Rear Admiral {FIRST} {LAST}"),
                "emails": Override([EMAIL, OLD_EMAIL, "zq.third@navy.example"]),
                "lifecycle_stage": Override("customer"),
                "lead_source": Override(f"referral from {EMAIL}"),
            },
        )
        crm.privacy.erase(ada.id or "")
        rules = crm.repository(MergeRecord).get(merge.id or "").rules
        assert rules["title"] == {"value": None}
        assert tuple(rules["emails"]["value"]) == ()
        assert rules["lifecycle_stage"] == {"value": "customer"}
        assert rules["lead_source"] == {"value": "referral from [erased]"}
        assert rules["phones"] == "union"
        assert crm.privacy.is_suppressed("zq.third@navy.example")
        after = raw_dump(crm)
        for term in (EMAIL, OLD_EMAIL, "zq.third@navy.example", LAST, "Rear Admiral"):
            assert term.encode() not in after, term

    def test_privacy_erase_finds_phones_however_written(self, crm: CRM) -> None:
        """A number is redacted in national or international form, with a trunk prefix or
        an extension, whatever the separators; longer digit runs are left alone."""
        ada = crm.contacts.add(
            Contact(
                first_name=FIRST,
                phones=("+1 415 555 0177", "+1 415 555 0188 ext. 12", "+44 20 7946 0958"),
            )
        )
        grace = crm.contacts.add(Contact(first_name="Grace"))
        shared = crm.interactions.add(
            Interaction(
                kind=InteractionKind.CALL,
                occurred_at=AT,
                body=(
                    "Call (415) 555-0177, 415.555.0177, 1-415-555-0177, +1 415 555 0188 ext. 12,"
                    " 415-555-0188 x12, 020 7946 0958 or +44 (0)20 7946 0958;"
                    " not 415-555-01779 nor 2415 555 0177"
                ),
                contact_ids=(ada.id or "", grace.id or ""),
            )
        )
        deal = crm.deals.add(
            Deal(
                name="Renewal",
                contact_ids=(ada.id or "",),
                custom={"champion_mobile": "(415) 555-0177 ext 2"},
            )
        )
        crm.privacy.erase(ada.id or "")
        assert crm.interactions.get(shared.id or "").body == (
            "Call [erased], [erased], [erased], [erased], [erased], [erased] or [erased];"
            " not 415-555-01779 nor 2415 555 0177"
        )
        assert crm.deals.get(deal.id or "").custom == {"champion_mobile": "[erased]"}
        after = raw_dump(crm)
        for term in ("(415) 555-0177", "415.555.0177", "0188 x12", "7946 0958", "4155550188"):
            assert term.encode() not in after, term

    def test_privacy_erase_finds_mentions_in_any_case_and_every_text(self, crm: CRM) -> None:
        """Interactions not linked to the person are found when their subject, body, quoted
        text, signature or a participant's address or name holds the person's email (in any
        case) or phone number; a participant at the person's address is wiped."""
        ada = crm.contacts.add(
            Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,), phones=(PHONE,))
        )
        bob = crm.contacts.add(Contact(first_name="Bob", emails=("bob@bob.example",)))

        def add(**fields: Any) -> Interaction:
            kind = InteractionKind.EMAIL if "participants" in fields else InteractionKind.NOTE
            return crm.interactions.add(
                Interaction(kind=kind, occurred_at=AT, contact_ids=(bob.id or "",), **fields)
            )

        upper = add(subject=f"Fwd: {EMAIL.upper()}", body=f"forwarded to {EMAIL.upper()}")
        cc = add(
            body="see attached",
            participants=(
                Participant(role=ParticipantRole.CC, address=EMAIL, name=f"{FIRST} {LAST}"),
            ),
        )
        named = add(
            body="digest",
            participants=(
                Participant(
                    role=ParticipantRole.FROM,
                    address="list@lists.example",
                    name=f"{EMAIL} via List",
                ),
            ),
        )
        quoted = add(
            body="thanks",
            quoted_text=f"> On Monday {EMAIL} wrote",
            signature=f"{FIRST} {LAST}, {PHONE}",
        )
        other = add(
            body="nothing about her",
            participants=(Participant(role=ParticipantRole.TO, address="x@y.example"),),
        )
        crm.privacy.erase(ada.id or "")
        got = {i.id: i for i in crm.interactions.find()}
        assert (got[upper.id].subject, got[upper.id].body) == (
            "Fwd: [erased]",
            "forwarded to [erased]",
        )
        assert [(p.address, p.name) for p in got[cc.id].participants] == [("[erased]", None)]
        assert got[named.id].participants[0].name == "[erased] via List"
        assert (got[quoted.id].quoted_text, got[quoted.id].signature) == (
            "> On Monday [erased] wrote",
            "[erased], [erased]",
        )
        assert got[other.id] == other
        after = raw_dump(crm)
        for term in (EMAIL, FIRST, LAST, PHONE):
            assert term.encode() not in after, term

    def test_privacy_erase_and_export_reach_records_tied_other_than_by_contact(
        self, crm: CRM
    ) -> None:
        """Records tied to the person through one of their tickets or deals (deleted ones:
        their audit entries), deals naming them only in ``contact_roles`` and orders placed
        at their address (a guest checkout) are exported and erased: wiped when they are
        the person's alone, redacted when they are someone else's too."""
        ada = crm.contacts.add(
            Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,), phones=(PHONE,))
        )
        bob = crm.contacts.add(Contact(first_name="Bob", emails=("bob@bob.example",)))
        ticket = crm.tickets.add(Ticket(subject="Refund", contact_id=ada.id))
        deal = crm.deals.add(
            Deal(
                name=f"{LAST} expansion",
                contact_ids=(bob.id or "",),
                contact_roles={ada.id or "": "champion"},
            )
        )

        def note(body: str, **links: Any) -> Interaction:
            kind = InteractionKind.NOTE
            return crm.interactions.add(Interaction(kind=kind, occurred_at=AT, body=body, **links))

        on_ticket = note(f"Spoke to {FIRST} {LAST}, she is upset", ticket_id=ticket.id)
        bobs = note(f"{FIRST} {LAST} called for Bob", ticket_id=ticket.id, contact_ids=[bob.id])
        on_deal = note(f"{LAST} is our champion", deal_id=deal.id)
        gone = note(f"{FIRST} {LAST} was upset", ticket_id=ticket.id)
        crm.interactions.delete(gone.id or "")  # its audit entries remain
        task = crm.tasks.add(
            Task(title=f"Call back {FIRST} {LAST}", description=f"on {PHONE}", ticket_id=ticket.id)
        )
        deal_task = crm.tasks.add(Task(title=f"Send {LAST} the quote", deal_id=deal.id))
        survey = crm.survey_responses.add(
            SurveyResponse(
                kind=SurveyKind.CSAT,
                score=2,
                responded_at=AT,
                ticket_id=ticket.id,
                comment=f"I'm {FIRST} {LAST} and this was slow",
            )
        )
        lines = (OrderLine(sku="K-1", unit_price=Money(amount=Decimal("10"), currency="EUR")),)

        def order(external_id: str, email: str, **fields: Any) -> Order:
            return crm.orders.upsert(
                Order(
                    external_id=external_id,
                    placed_at=AT,
                    customer_email=email,
                    lines=lines,
                    **fields,
                )
            )

        guest = order(
            "G-1",
            f" {EMAIL.upper()}",
            customer_name=f"{FIRST} {LAST}",
            shipping_address=Address(street="12 Qorvath Lane", city="London"),
        )
        for_bob = order("G-2", EMAIL, contact_id=bob.id, customer_name="Bob Olmstead")
        stranger = order("G-3", f"a{EMAIL}", customer_name="Ann")  # holds hers: not hers
        doc = crm.privacy.export(ada.id or "")

        def ids(key: str) -> set[str]:
            return {r["id"] for r in doc[key]}

        assert ids("interactions") == {on_ticket.id, bobs.id, on_deal.id}
        assert ids("tasks") == {task.id, deal_task.id}
        assert ids("survey_responses") == {survey.id}
        assert ids("deals") == {deal.id}
        assert ids("orders") == {guest.id, for_bob.id}
        assert gone.id in {e["record_id"] for e in doc["audit_entries"]}
        crm.privacy.erase(ada.id or "")
        assert crm.interactions.get(on_ticket.id or "").body is None
        assert crm.interactions.get(bobs.id or "").body == "[erased] called for Bob"
        assert crm.interactions.get(on_deal.id or "").body == "[erased] is our champion"
        stored = crm.tasks.get(task.id or "")
        assert (stored.title, stored.description) == ("Call back [erased]", "on [erased]")
        assert crm.tasks.get(deal_task.id or "").title == "Send [erased] the quote"
        assert crm.survey_responses.get(survey.id or "").comment is None
        stored_deal = crm.deals.get(deal.id or "")
        assert (stored_deal.name, dict(stored_deal.contact_roles)) == (
            "[erased] expansion",
            {ada.id: "champion"},
        )
        stored_order = crm.orders.get(guest.id or "")
        assert (stored_order.customer_name, stored_order.customer_email) == (None, None)
        assert stored_order.shipping_address is None
        assert stored_order.total == guest.total
        stored_order = crm.orders.get(for_bob.id or "")
        assert (stored_order.customer_name, stored_order.customer_email) == (
            "Bob Olmstead",
            "[erased]",
        )
        assert crm.orders.get(stranger.id or "") == stranger
        after = raw_dump(crm)
        for term in (FIRST, LAST, PHONE, EMAIL.upper(), "Qorvath Lane"):
            assert term.encode() not in after, term

    def test_privacy_erase_redacts_articles_of_the_persons_tickets(self, crm: CRM) -> None:
        """Knowledge-base articles linked to the person's tickets lose the person's
        identifiers, in the text search index too, and are listed in the export."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        ticket = crm.tickets.add(Ticket(subject="Login loop", contact_id=ada.id))
        article = crm.articles.add(
            Article(
                title=f"Login loop seen by {LAST}",
                body=f"First seen for {FIRST} {LAST} ({EMAIL}); clear the cookies",
                tags=(f"{LAST.lower()}-case", "login"),
                status=ArticleStatus.PUBLISHED,
                ticket_ids=(ticket.id or "",),
            )
        )
        other = crm.articles.add(
            Article(title="Cookies", body="Clear the cookies", status=ArticleStatus.PUBLISHED)
        )
        assert [h.article.id for h in crm.articles.search(LAST)] == [article.id]
        assert [a["id"] for a in crm.privacy.export(ada.id or "")["articles"]] == [article.id]
        crm.privacy.erase(ada.id or "")
        stored = crm.articles.get(article.id or "")
        assert (stored.title, stored.body, stored.tags) == (
            "Login loop seen by [erased]",
            "First seen for [erased] ([erased]); clear the cookies",
            ("[erased]-case", "login"),
        )
        assert crm.articles.search(f"{FIRST} {LAST}") == []
        assert {h.article.id for h in crm.articles.search("cookies")} == {article.id, other.id}
        after = raw_dump(crm)  # the index keeps no stem of the names either
        for term in (FIRST, LAST, FIRST.lower(), LAST.lower(), EMAIL):
            assert term.encode() not in after, term

    def test_privacy_erase_redacts_lifecycle_reasons_and_export_lists_stage_history(
        self, crm: CRM
    ) -> None:
        """The contact's lifecycle history loses the person's identifiers from its reasons
        like the stage history of their deals and tickets, and the export lists it all."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        pipeline = crm.pipelines.add(
            Pipeline(name="Sales", stages=(Stage(key="lead", name="Lead"),))
        )
        with crm.acting(None, reason=f"{FIRST} {LAST} asked for a demo"):
            crm.contacts.update(attrs.evolve(ada, lifecycle_stage=LifecycleStage.CUSTOMER))
            deal = crm.deals.add(
                Deal(name="Demo", pipeline_id=pipeline.id, contact_ids=(ada.id or "",))
            )
            ticket = crm.tickets.add(Ticket(subject="Demo access", contact_id=ada.id))
        doc = crm.privacy.export(ada.id or "")
        exported = {(c["record_collection"], c["record_id"]) for c in doc["stage_changes"]}
        assert {
            ("contacts", ada.id),
            ("deals", deal.id),
            ("tickets", ticket.id),
        } <= exported
        assert f"{FIRST} {LAST} asked for a demo" in {c["reason"] for c in doc["stage_changes"]}
        crm.privacy.erase(ada.id or "")
        lifecycle = crm.stage_changes.find(
            (F.record_collection == "contacts") & (F.record_id == ada.id)
        )
        assert "customer" in {c.to_stage for c in lifecycle}
        reasons = {c.reason for c in crm.stage_changes.find() if c.reason}
        assert reasons == {"[erased] asked for a demo"}
        after = raw_dump(crm)
        for term in (FIRST, LAST, EMAIL):
            assert term.encode() not in after, term

    def test_privacy_erase_finds_names_joined_by_underscores(self, crm: CRM) -> None:
        """A name joined to other words by ``_`` (a file name) is redacted, in the
        attachment names of the person's own (wiped) interactions too; a longer word that
        starts with the name is not."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        bob = crm.contacts.add(Contact(first_name="Bob", emails=("bob@bob.example",)))
        own = crm.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                occurred_at=AT,
                body="attached",
                contact_ids=(ada.id or "",),
                attachments=(
                    Attachment(
                        filename=f"passport_{FIRST.lower()}_{LAST.lower()}.jpg",
                        content_type="image/jpeg",
                        sha256="ab" * 32,
                    ),
                    Attachment(
                        filename=f"{FIRST}_{LAST}_CV.pdf",
                        content_type="application/pdf",
                        sha256="cd" * 32,
                    ),
                ),
            )
        )
        shared = crm.interactions.add(
            Interaction(
                kind=InteractionKind.NOTE,
                occurred_at=AT,
                body=f"see {LAST}_notes.txt, not {LAST}ian_notes.txt",
                contact_ids=(ada.id or "", bob.id or ""),
            )
        )
        crm.privacy.erase(ada.id or "")
        stored = crm.interactions.get(own.id or "")
        assert stored.body is None
        assert [a.filename for a in stored.attachments] == [
            "passport_[erased]_[erased].jpg",
            "[erased]_[erased]_CV.pdf",
        ]
        assert crm.interactions.get(shared.id or "").body == (
            f"see [erased]_notes.txt, not {LAST}ian_notes.txt"
        )

    def test_privacy_order_at_a_suppressed_address_is_stored_without_the_customer(
        self, crm: CRM
    ) -> None:
        """An order written with a suppressed ``customer_email`` (a shop feed running again
        after the erasure, a new guest checkout) is stored without the customer's name,
        email and shipping address; the order itself is kept, and other orders are not
        touched."""
        ada = crm.contacts.add(Contact(first_name=FIRST, last_name=LAST, emails=(EMAIL,)))
        lines = (OrderLine(sku="K-1", unit_price=Money(amount=Decimal("10"), currency="EUR")),)

        def order(external_id: str, email: str, **fields: Any) -> Order:
            return Order(
                external_id=external_id,
                placed_at=AT,
                customer_name=f"{FIRST} {LAST}",
                customer_email=email,
                shipping_address=Address(street="12 Qorvath Lane", city="London"),
                lines=lines,
                **fields,
            )

        crm.schema.define_field("orders", "channel", "text", required=True, sensitivity="personal")
        crm.schema.define_field("orders", "gift_note", "text", sensitivity="personal")
        notes = {"channel": "web", "gift_note": f"for {FIRST}"}
        crm.orders.upsert(order("S-1", EMAIL, contact_id=ada.id, custom=notes))
        crm.privacy.erase(ada.id or "")
        again = crm.orders.upsert(order("S-1", EMAIL, contact_id=ada.id, custom=notes))
        # the feed again: a required field is kept, else the order could not be stored
        assert again.custom == {"channel": "web"}
        guest = crm.orders.upsert(order("S-2", EMAIL.upper(), custom={"channel": "shop"}))
        for stored in (again, guest, *(crm.orders.get(o.id or "") for o in (again, guest))):
            assert (stored.customer_name, stored.customer_email) == (None, None)
            assert stored.shipping_address is None
            assert stored.total == Money(amount=Decimal("10"), currency="EUR")
        assert crm.orders.get(again.id or "").contact_id == ada.id
        feed = crm.orders.upsert_many(
            [
                order("S-3", EMAIL, custom={"channel": "web"}),
                Order(
                    external_id="S-4",
                    placed_at=AT,
                    customer_name="Bob",
                    customer_email="bob@bob.example",
                    lines=lines,
                    custom={"channel": "web"},
                ),
            ]
        )
        assert [(o.customer_name, o.customer_email) for o in feed] == [
            (None, None),
            ("Bob", "bob@bob.example"),
        ]
        after = raw_dump(crm)
        for term in (FIRST, LAST, EMAIL, "Qorvath Lane"):
            assert term.encode() not in after, term

    def test_privacy_erase_never_fails_on_text_redaction_makes_too_long(self, crm: CRM) -> None:
        """``[erased]`` is longer than a short name: a text it would push past its field's
        length is cut at that length rather than making the erasure fail."""
        al = crm.contacts.add(Contact(first_name="Al", emails=("al@al.example",)))
        title = " ".join(["Al"] * 166)  # 497 of the 500 characters a task title may have
        task = crm.tasks.add(Task(title=title, contact_id=al.id))
        crm.privacy.erase(al.id or "")
        stored = crm.tasks.get(task.id or "").title
        assert len(stored) == 500
        assert stored.startswith("[erased] [erased]")
        assert " Al " not in stored

    def test_privacy_an_undone_merge_keeps_two_people_apart(self, crm: CRM) -> None:
        """A merge later undone wrote one person's values into the other's history: one
        person's export holds none of the other's, and erasing one takes their values out
        of the other's history while the other's own values stay."""
        grace = crm.contacts.add(
            Contact(first_name="Grace", emails=("grace@g.example",), custom={"tier": "gold"})
        )
        bob = crm.contacts.add(
            Contact(
                first_name="Bob",
                last_name="Smithers",
                title="CFO at Initech",
                emails=("bob.smithers@initech.example",),
                phones=("+12125550111",),
                custom={"diagnosis": "Bobsecret asthma"},
            )
        )
        merge = crm.dedupe.merge(grace.id or "", [bob.id or ""])
        crm.dedupe.unmerge(merge.id or "")
        bobs = (
            "Smithers",
            "CFO at Initech",
            "bob.smithers@initech.example",
            "2125550111",
            "Bobsecret",
        )
        exported = json.dumps(crm.privacy.export(grace.id or ""))
        for term in bobs:
            assert term not in exported, term
        assert "grace@g.example" in exported
        crm.privacy.erase(bob.id or "")
        dump = raw_dump(crm)
        for term in bobs:
            assert term.encode() not in dump, term
        assert crm.contacts.get(grace.id or "").emails == ("grace@g.example",)
        assert crm.contacts.get(grace.id or "").custom == {"tier": "gold"}
        grace_history = json.dumps(crm.privacy.export(grace.id or "")["audit_entries"])
        assert "grace@g.example" in grace_history

    def test_privacy_erase_drops_tagged_custom_fields_of_the_persons_own_records(
        self, crm: CRM
    ) -> None:
        """Custom fields defined personal or sensitive are dropped from the tickets, tasks
        and deals that are the person's alone; records shared with someone else keep them,
        with the person's identifiers redacted."""
        crm.schema.define_field("tickets", "medical_note", "text", sensitivity="sensitive")
        crm.schema.define_field("tickets", "product", "text")
        ada = crm.contacts.add(Contact(first_name=FIRST, emails=(EMAIL,)))
        own = crm.tickets.add(
            Ticket(
                subject="Access",
                contact_id=ada.id,
                custom={"medical_note": "uses a wheelchair", "product": "Lift"},
            )
        )
        bob = crm.contacts.add(Contact(first_name="Bob"))
        other = crm.tickets.add(
            Ticket(subject="Other", contact_id=bob.id, custom={"medical_note": "asthma"})
        )
        crm.privacy.erase(ada.id or "")
        assert crm.tickets.get(own.id or "").custom == {"product": "Lift"}
        assert crm.tickets.get(other.id or "").custom == {"medical_note": "asthma"}
        assert b"uses a wheelchair" not in raw_dump(crm)

    def test_privacy_erase_cuts_nested_texts_and_keeps_shared_records_custom_history(
        self, crm: CRM
    ) -> None:
        """Texts inside values (a consent's source, a participant's name) that ``[erased]``
        makes too long are cut too; a deal naming someone else (also only as a role) keeps
        its sensitive custom fields and their history; a short national number is only
        recognized with its country code."""
        crm.schema.define_field("deals", "medical_note", "text", sensitivity="sensitive")
        long = " ".join(["Al"] * 166)
        al = crm.contacts.add(
            Contact(
                first_name="Al",
                phones=("+6834002",),
                consents=(Consent(purpose="calls", granted=True, at=AT, source=long),),
            )
        )
        bob = crm.contacts.add(Contact(first_name="Bob"))
        note = crm.interactions.add(
            Interaction(
                kind=InteractionKind.EMAIL,
                occurred_at=AT,
                body="hi",
                contact_ids=(al.id or "", bob.id or ""),
                participants=(
                    Participant(role=ParticipantRole.TO, address="x@x.example", name=long),
                ),
            )
        )
        shared = crm.deals.add(
            Deal(name="Order of 4002 units", contact_ids=(al.id or "", bob.id or ""))
        )
        shared = crm.deals.update(attrs.evolve(shared, custom={"medical_note": "Bob: asthma"}))
        role = crm.deals.add(
            Deal(
                name="Call +683 4002",
                contact_ids=(al.id or "",),
                contact_roles={bob.id or "": "champion"},
                custom={"medical_note": "Bob: allergy"},
            )
        )
        tombstone = crm.privacy.erase(al.id or "")
        assert len(tombstone.consents[0].source or "") == 500
        assert tombstone.consent("calls") is True
        assert len(crm.interactions.get(note.id or "").participants[0].name or "") == 500
        assert crm.deals.get(shared.id or "").custom == {"medical_note": "Bob: asthma"}
        assert crm.deals.get(shared.id or "").name == "Order of 4002 units"
        assert crm.deals.get(role.id or "").custom == {"medical_note": "Bob: allergy"}
        assert crm.deals.get(role.id or "").name == "Call [erased]"
        history = json.dumps(crm.privacy.export(bob.id or "")["audit_entries"])
        assert "Bob: asthma" in history
