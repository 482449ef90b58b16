"""Conformance tests of email capture (``crm.email``). Mixed into
:class:`crmkit.testing.conformance.ConformanceSuite`, so every backend runs them through its
``crm`` fixture.

The corpus of :mod:`crmkit.testing.email_corpus` is ingested on the backend: links to
contacts, threads, tickets (opened, joined, first response recorded), automatic messages,
rejected messages, idempotency and a user's permissions depend on the backend's queries
(message keys, threads, e-mail lookups, embedded participants and attachments).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mailbox
import os
import tempfile

from crmkit import CRM
from crmkit.email import IngestResult
from crmkit.entities import Account, Contact, Interaction, Role, Ticket, User
from crmkit.query import F
from crmkit.testing.email_corpus import CORPUS, EXPECTED, OWN_DOMAINS, SUPPORT

__all__ = ["EmailConformance"]


def _setup(crm: CRM) -> dict[str, str]:
    """Ada (with an account), Grace, ticket T-1042 and the routing settings."""
    crm.email.configure(own_domains=OWN_DOMAINS, support_addresses=[SUPPORT], create_leads=True)
    engines = crm.accounts.add(Account(name="Analytical Engines"))
    ada = crm.contacts.add(
        Contact(
            first_name="Ada",
            last_name="Lovelace",
            emails=("ada@customer.example",),
            account_id=engines.id,
        )
    )
    grace = crm.contacts.add(
        Contact(first_name="Grace", last_name="Hopper", emails=("Grace@Navy.example",))
    )
    ticket = crm.tickets.add(
        Ticket(
            subject="Invoice question", contact_id=grace.id, external_ids={"reference": "T-1042"}
        )
    )
    return {
        "ada": ada.id or "",
        "grace": grace.id or "",
        "T-1042": ticket.id or "",
        "account": engines.id or "",
    }


def _mail(results: dict[str, IngestResult], name: str) -> Interaction:
    """The interaction stored for message ``name``."""
    mail = results[name].interaction
    assert mail is not None, name
    return mail


def _ingest_all(crm: CRM) -> dict[str, IngestResult]:
    return {name: crm.email.ingest(raw, source=name) for name, raw in CORPUS.items()}


def _state(crm: CRM) -> list[tuple[object, ...]]:
    return [
        (type(e).__name__, e.id, e.version)
        for repo in (crm.interactions, crm.tickets, crm.contacts)
        for e in repo.find(order_by="id")
    ]


class EmailConformance:
    """Email capture behaviour every backend must show."""

    def test_email_corpus_links_threads_and_tickets(self, crm: CRM) -> None:
        """Every corpus message is stored (or rejected) with the expected direction,
        thread, ticket, contacts, text, attachments and times."""
        ids = _setup(crm)
        results = _ingest_all(crm)
        assert len(results) >= 30
        first_names = {c.id: c.first_name for c in crm.contacts.find()}
        for name, expected in EXPECTED.items():
            result = results[name]
            status = expected.get("status", "created")
            assert result.status == status, (name, result.reason)
            if status == "rejected":
                assert expected["reason"] in (result.reason or ""), (name, result)
                continue
            assert result.interaction is not None, name
            stored = crm.interactions.get(result.interaction.id or "")
            assert stored.kind == "email"
            if "direction" in expected:
                assert stored.direction == expected["direction"], name
            thread_root = expected.get("thread", name)
            root = crm.interactions.get(_mail(results, thread_root).id or "")
            assert stored.thread_id == root.thread_id, name
            if "ticket" in expected:
                want = expected["ticket"]
                if want is None:
                    assert stored.ticket_id is None, name
                elif want in ids:
                    assert stored.ticket_id == ids[want], name
                else:
                    assert stored.ticket_id == _mail(results, want).ticket_id, name
                    assert stored.ticket_id is not None, name
            if "contacts" in expected:
                assert [
                    first_names.get(c) or crm.contacts.get(c).first_name for c in stored.contact_ids
                ] == expected["contacts"], name
            if "body" in expected:
                assert stored.body == expected["body"], name
            for part in expected.get("body_contains", ()):
                assert part in (stored.body or ""), (name, part)
            if "subject" in expected:
                assert stored.subject == expected["subject"], name
            if "signature" in expected:
                assert stored.signature == expected["signature"], name
            if expected.get("quoted"):
                assert stored.quoted_text, name
            if "sender_name" in expected:
                assert stored.participants[0].name == expected["sender_name"], name
            if "automatic" in expected:
                assert stored.outcome == expected["automatic"], name
                assert result.automatic == expected["automatic"], name
            if "attachments" in expected:
                got = [(a.filename, a.content_type, a.size) for a in stored.attachments]
                want_att = expected["attachments"]
                assert len(got) == len(want_att), name
                for g, w in zip(got, want_att, strict=True):
                    assert g[:2] == w[:2], name
                    assert w[2] is None or g[2] == w[2], name
                for a in stored.attachments:
                    assert len(a.sha256) == 64
            if "participants" in expected:
                got_p = [(p.role, p.address) for p in stored.participants]
                assert got_p == expected["participants"], name
            if "occurred_at" in expected:
                assert stored.occurred_at == dt.datetime.fromisoformat(expected["occurred_at"])
            if expected.get("key_hashed"):
                digest = hashlib.sha256(CORPUS[name]).hexdigest()
                assert stored.message_id == f"sha256:{digest}", name
        # the tickets: opened by m01, m11, m24; T-1042 joined; m01 answered by m02
        opened = crm.tickets.get(_mail(results, "m01_support_request").ticket_id or "")
        assert opened.channel == "email"
        assert opened.contact_id == ids["ada"]
        assert opened.account_id == ids["account"]
        reply = _mail(results, "m02_agent_reply")
        assert opened.first_response_at == reply.occurred_at
        assert crm.tickets.count() == 4
        assert crm.tickets.get(ids["T-1042"]).first_response_at is None
        # the lead: created once, normalized, a lead
        lead = crm.contacts.first(F.emails.contains("linus@newco.example"))
        assert lead is not None
        assert lead.lifecycle_stage == "lead"
        assert lead.last_name == "Newman"
        assert lead.lead_source == "email"
        # Ada's timeline holds her messages in time order, linked to her account
        ada_mails = crm.interactions.find(
            F.contact_ids.contains(ids["ada"]), order_by="occurred_at"
        )
        assert ada_mails[0].account_id == ids["account"]

    def test_email_ingest_twice_changes_nothing(self, crm: CRM) -> None:
        """A second ingest of every message (with or without Message-ID) stores nothing."""
        _setup(crm)
        _ingest_all(crm)
        before = _state(crm)
        again = _ingest_all(crm)
        assert {r.status for r in again.values()} == {"duplicate", "rejected"}
        assert _state(crm) == before
        created = [n for n, e in EXPECTED.items() if e.get("status", "created") == "created"]
        assert crm.interactions.count(F.message_id.exists()) == len(created)

    def test_email_mailbox_mbox_and_maildir(self, crm: CRM) -> None:
        """mbox files and Maildir folders are read message by message; rejected ones are
        reported with their reason, nothing is dropped."""
        _setup(crm)
        with tempfile.TemporaryDirectory() as tmp:
            mbox_path = os.path.join(tmp, "inbox.mbox")
            box = mailbox.mbox(mbox_path)
            names = [*sorted(CORPUS)[:16], "m27_no_sender"]
            for name in names:
                box.add(CORPUS[name])
            box.close()
            report = crm.email.ingest_mailbox(mbox_path)
            assert report.created == 16
            assert len(report.rejected) == 1
            assert "sender" in report.rejected[0].reason
            maildir = mailbox.Maildir(os.path.join(tmp, "Maildir"))
            for name in sorted(CORPUS)[16:]:
                maildir.add(CORPUS[name])
            report = crm.email.ingest_mailbox(os.path.join(tmp, "Maildir"))
            assert report.total == len(CORPUS) - 16
            assert report.automatic == 4
            assert report.tickets_opened == 1
            assert len(report.rejected) == 4  # m27 again is rejected, m28-m30 too
            assert crm.email.ingest_mailbox(mbox_path).duplicates == 16

    def test_email_outbound_reply_records_first_response_once(self, crm: CRM) -> None:
        """Only the first outbound reply records a ticket's first response; a message in
        the thread of a resolved ticket opens a new one."""
        _setup(crm)
        for name in ("m01_support_request", "m02_agent_reply"):
            crm.email.ingest(CORPUS[name])
        ticket = crm.tickets.first(F.channel == "email")
        assert ticket is not None
        first = ticket.first_response_at
        late = CORPUS["m02_agent_reply"].replace(b"<m02@acme.example>", b"<m02b@acme.example>")
        late = late.replace(b"10:30:00 +0100", b"18:30:00 +0100")
        result = crm.email.ingest(late)
        assert result.interaction is not None
        assert result.interaction.ticket_id == ticket.id
        assert crm.tickets.get(ticket.id or "").first_response_at == first
        crm.tickets.move(ticket.id or "", "solved")
        followup = crm.email.ingest(CORPUS["m03_customer_followup"])
        assert followup.ticket is not None
        assert followup.ticket.id != ticket.id

    def test_email_respects_user_permissions(self, crm: CRM) -> None:
        """Through a user's view messages are ingested with that user's rights: a user
        who may not create interactions gets the message rejected, nothing stored."""
        _setup(crm)
        reader = crm.roles.add(Role(name="reader", permissions={"interactions": {"read": "all"}}))
        writer = crm.roles.add(
            Role(
                name="writer",
                permissions={
                    c: {"read": "all", "create": "all", "update": "all"}
                    for c in ("interactions", "contacts", "tickets", "accounts")
                },
            )
        )
        alice = crm.users.add(User(name="Alice", role_ids=(reader.id or "",)))
        bob = crm.users.add(User(name="Bob", role_ids=(writer.id or "",)))
        denied = crm.as_user(alice).email.ingest(CORPUS["m05_multipart_alternative"])
        assert denied.status == "rejected"
        assert denied.reason
        assert crm.interactions.count() == 0
        allowed = crm.as_user(bob).email.ingest(CORPUS["m05_multipart_alternative"])
        assert allowed.status == "created", allowed.reason
        stored: Interaction = crm.interactions.get(allowed.interaction.id or "")  # type: ignore[union-attr]
        assert stored.message_id == "m05@navy.example"
