"""A support desk: customer email opens tickets under an SLA, the knowledge base suggests
answers, the agent's reply is the first response, and the SLA report shows what is due.

Run: python examples/support_desk.py [URL]   (default: an in-memory CRM)
"""

from __future__ import annotations

import datetime as dt
import sys
from email.message import EmailMessage

import crmkit
from crmkit import Article, Contact
from crmkit.calendars import BusinessCalendar
from crmkit.entities import ArticleStatus
from crmkit.query import F
from crmkit.sla import SlaPolicy

SUPPORT = "Support <support@example.com>"


def message(
    sender: str,
    subject: str,
    body: str,
    message_id: str,
    *,
    to: str = SUPPORT,
    reply_to: str | None = None,
) -> bytes:
    """An RFC 822 message as a mail server would deliver it."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail["Date"] = "Mon, 23 Nov 2026 09:15:00 +0000"
    if reply_to:
        mail["In-Reply-To"] = reply_to
        mail["References"] = reply_to
    mail.set_content(body)
    return mail.as_bytes()


def main(url: str = "memory://") -> None:
    crm = crmkit.connect(url)
    # Support works 24/7: one hour to answer a high-priority ticket, a day to solve it.
    crm.sla.define(
        "support",
        SlaPolicy(
            high={"first_response": 3600, "resolution": 24 * 3600},
            normal={"first_response": 4 * 3600, "resolution": 3 * 24 * 3600},
        ),
        BusinessCalendar(timezone="UTC", working_hours=["00:00-24:00"] * 7),
    )
    crm.email.configure(
        own_domains=["example.com"], support_addresses=["support@example.com"], create_leads=True
    )
    crm.contacts.add(Contact(first_name="Ada", last_name="Lovelace", emails=["ada@acme.com"]))
    crm.articles.add_many(
        [
            Article(
                title="Resetting your password",
                body="Use the 'Forgot password' link on the sign-in page; the link is valid "
                "for one hour.",
                tags=["account", "password"],
                status=ArticleStatus.PUBLISHED,
            ),
            Article(
                title="Exporting contacts to CSV",
                body="Exports stream in batches, so large exports are not cut off.",
                tags=["export", "csv"],
                status=ArticleStatus.PUBLISHED,
            ),
            Article(title="Internal: refund policy", body="Draft, not for customers."),
        ]
    )

    inbox = [
        message(
            "Ada Lovelace <ada@acme.com>",
            "Cannot reset my password",
            "The password reset link says it has expired.",
            "<m1@acme.com>",
        ),
        message(
            "New Person <lin@globex.com>",
            "CSV export stops early",
            "Our contacts export to CSV stops after a while.",
            "<m2@globex.com>",
        ),
        b"not an email at all",
    ]
    report = crm.email.ingest_many((f"inbox:{n}", raw) for n, raw in enumerate(inbox, 1))
    print(
        f"{report.total} messages: {report.created} stored, {report.tickets_opened} "
        f"tickets opened, {len(report.rejected)} rejected"
    )
    for rejected in report.rejected:
        print(f"  rejected {rejected.source}: {rejected.reason}")
    lead = crm.contacts.first(F.emails.contains("lin@globex.com"))
    assert lead is not None
    print(f"unknown sender became a lead contact: {lead.name} ({lead.lifecycle_stage})")

    print("\nKnowledge-base suggestions per ticket:")
    for ticket in crm.tickets.find(order_by="created_at"):
        hits = crm.articles.suggest(ticket, limit=2)
        titles = "; ".join(hit.article.title for hit in hits) or "none"
        print(f"  {ticket.subject!r}: {titles}")

    # The agent answers the first ticket by email: that reply is its first response.
    first = crm.tickets.first(F.subject == "Cannot reset my password")
    assert first is not None
    reply = message(
        SUPPORT,
        "Re: Cannot reset my password",
        "Here is a new link, valid for one hour.",
        "<r1@example.com>",
        to="Ada Lovelace <ada@acme.com>",
        reply_to="<m1@acme.com>",
    )
    result = crm.email.ingest(reply, source="outbox:1")
    print(f"\nreply stored ({result.status}), linked to ticket: {result.ticket is not None}")

    print("\nSLA report (open tickets):")
    now = crm.now()
    for ticket in crm.tickets.find(~F.closed_at.exists(), order_by="first_response_due_at"):
        responded = ticket.first_response_at is not None
        due = ticket.first_response_due_at
        state = "answered" if responded else f"answer due by {due:%H:%M}" if due else "no SLA"
        print(f"  {ticket.subject:<26} {ticket.priority.value:<7} {state}")
    later = now + dt.timedelta(hours=5)
    breaching = crm.tickets.breaching(later)
    print(f"breaching in 5 hours if nobody answers: {[t.subject for t in breaching]}")
    crm.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
