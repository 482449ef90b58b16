"""A guided tour of crmkit on a real SQLite file: ``python -m crmkit.demo [URL]``.

Builds a small, realistic CRM (accounts, contacts typed in messy formats, interactions, a
sales pipeline with deals, support tickets), then shows what the library does with it:
normalization, duplicate detection and merge, pipeline rules, a forecast computed in the
database, optimistic locking and all-or-nothing bulk writes.
The default URL is ``sqlite:///crmkit-demo.db`` in the current directory (recreated on
every run); pass another URL (``memory://``, ``postgresql+psycopg://...``) to use that.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from decimal import Decimal

import attrs

import crmkit
from crmkit import Account, Address, Contact, Deal, Interaction, Money, Pipeline, Stage, Ticket
from crmkit.entities import Direction, InteractionKind, LifecycleStage, Priority, StageKind
from crmkit.query import F

DEFAULT_URL = "sqlite:///crmkit-demo.db"


def build(crm: crmkit.CRM, now: dt.datetime) -> None:
    """Fill ``crm`` with the demo data set."""
    with crm.transaction():
        acme, globex, initech = crm.accounts.add_many(
            [
                Account(name="Acme Corp", domain="acme.com", industry="Manufacturing"),
                Account(name="Globex", domain="globex.co.uk", industry="Energy"),
                Account(name="Initech", domain="initech.io", industry="Software"),
            ]
        )
        people = crm.contacts.add_many(
            [
                Contact(
                    first_name="  Ada ",
                    last_name="Lovelace",
                    emails=(" ADA@Acme.COM. ",),
                    phones=("+44 (0)20 7946 0958",),
                    title="CTO",
                    account_id=acme.id,
                    lifecycle_stage=LifecycleStage.CUSTOMER,
                ),
                Contact(
                    first_name="Grace",
                    last_name="Hopper",
                    emails=("grace@globex.co.uk",),
                    account_id=globex.id,
                    lifecycle_stage=LifecycleStage.OPPORTUNITY,
                ),
                Contact(
                    first_name="Émile",
                    last_name="Zola",
                    emails=("emile@initech.io",),
                    account_id=initech.id,
                    lifecycle_stage=LifecycleStage.LEAD,
                    custom={"newsletter": True},
                ),
                Contact(first_name="Alan", last_name="Turing", account_id=acme.id, title="CEO"),
                # the same Ada again, typed in by someone else
                Contact(
                    first_name="ADA",
                    last_name="Lovelace",
                    emails=("ada@acme.com", "ada@home.org.uk"),
                    phones=("020 7946 0958",),
                    address=Address(country="United Kingdom"),
                ),
            ]
        )
        sales = crm.pipelines.add(
            Pipeline(
                name="Sales",
                stages=(
                    Stage(key="qualify", name="Qualify", probability=Decimal("0.1")),
                    Stage(
                        key="proposal",
                        name="Proposal",
                        probability=Decimal("0.5"),
                        required_fields=("amount", "close_date"),
                    ),
                    Stage(key="won", name="Won", kind=StageKind.WON, probability=Decimal(1)),
                    Stage(key="lost", name="Lost", kind=StageKind.LOST, probability=Decimal(0)),
                ),
            )
        )
        deals = {}
        for name, account, amount, closing in [
            ("Acme renewal", acme, "48000", now.date() + dt.timedelta(days=40)),
            ("Globex pilot", globex, "12500", None),
            ("Initech licences", initech, "30000", now.date()),
            ("Acme add-on", acme, "7200", now.date() + dt.timedelta(days=70)),
        ]:
            deals[name] = crm.deals.add(  # a new deal starts in the pipeline's first stage
                Deal(
                    name=name,
                    pipeline_id=sales.id,
                    account_id=account.id,
                    amount=Money(amount=Decimal(amount), currency="EUR"),
                    close_date=closing,
                )
            )
        crm.deals.move(deals["Acme renewal"].id or "", "proposal")
        crm.deals.move(deals["Initech licences"].id or "", "proposal")
        crm.deals.move(deals["Initech licences"].id or "", "won")
        for days, kind, direction, who, subject in [
            (30, InteractionKind.EMAIL, Direction.INBOUND, people[0], "Question about renewal"),
            (12, InteractionKind.CALL, Direction.OUTBOUND, people[0], "Renewal pricing"),
            (3, InteractionKind.MEETING, Direction.OUTBOUND, people[1], "Pilot kickoff"),
            (1, InteractionKind.EMAIL, Direction.INBOUND, people[2], "Invoice request"),
        ]:
            crm.interactions.add(
                Interaction(
                    kind=kind,
                    direction=direction,
                    occurred_at=now - dt.timedelta(days=days),
                    contact_ids=(who.id or "",),
                    account_id=who.account_id,
                    subject=subject,
                )
            )
        crm.tickets.add_many(
            [
                Ticket(subject="Cannot log in", priority=Priority.HIGH, contact_id=people[1].id),
                Ticket(subject="Invoice copy", priority=Priority.LOW, contact_id=people[2].id),
            ]
        )


def tour(crm: crmkit.CRM, now: dt.datetime) -> None:
    """Print what crmkit can tell about the demo data."""
    print("== Normalized on the way in (typed ' ADA@Acme.COM. ', '+44 (0)20 7946 0958')")
    for contact in crm.contacts.find(F.last_name == "Lovelace"):
        print(f"  {contact.name:<16} {', '.join(contact.emails):<32} {', '.join(contact.phones)}")

    print("\n== Duplicates found, explained and merged")
    for group in crm.dedupe.find("contacts"):
        fields = ", ".join(group.matches[0].matched)
        print(f"  {len(group)} records, p={group.probability:.3f}; matched on {fields}")
        record = crm.dedupe.merge(str(group.ids[0]), [str(i) for i in group.ids[1:]])
        survivor = crm.contacts.get(record.survivor_id)
        print(f"  merged into {survivor.name}: {', '.join(survivor.emails)}")

    print("\n== Accounts and their contacts")
    for account in crm.accounts.find(order_by="name"):
        names = [
            c.name for c in crm.contacts.find(F.account_id == account.id, order_by="last_name")
        ]
        print(f"  {account.name:<12} {account.domain:<14} {', '.join(names)}")

    print("\n== Contacts who are not CEO (a missing title counts as 'not CEO')")
    for contact in crm.contacts.find(~(F.title == "CEO"), order_by=["title", "last_name"]):
        print(f"  {contact.name:<16} title={contact.title}")

    print("\n== Pipeline rules hold on every write")
    pilot = crm.deals.first(F.name == "Globex pilot")
    assert pilot is not None
    try:
        crm.deals.move(pilot.id or "", "proposal")
    except crmkit.TransitionError as exc:
        print(f"  refused: {exc}")
    initech = crm.deals.first(F.name == "Initech licences")
    assert initech is not None
    for change in crm.deals.history(initech.id or ""):
        print(f"  Initech licences: {change.from_stage} -> {change.to_stage}")

    print("\n== Weighted forecast of open deals by close month (computed in the database)")
    for row in crm.reports.forecast(by="month"):
        month = f"{row.month:%Y-%m}" if row.month else "no date"
        print(
            f"  {month:<8} {row.deals} deal(s) {row.amount:>10} {row.currency}"
            f"  weighted {row.weighted:>10.2f} {row.currency}"
        )

    print("\n== Inbound email in the last 14 days")
    recent = (F.kind == "email") & (F.direction == "inbound")
    for item in crm.interactions.find(recent & F.occurred_at.within_last(dt.timedelta(days=14))):
        print(f"  {item.occurred_at:%Y-%m-%d} {item.subject}")

    print("\n== Optimistic locking")
    ada = crm.contacts.first(F.emails.contains("ADA@acme.com"))  # lookups are normalized too
    assert ada is not None
    crm.contacts.update(attrs.evolve(ada, title="Chief Scientist"))
    try:
        crm.contacts.update(attrs.evolve(ada, title="stale edit"))
    except crmkit.ConflictError as exc:
        print(f"  refused: {exc}")

    print("\n== Bad input changes nothing")
    before = crm.contacts.count()
    try:
        crm.contacts.add_many([Contact(first_name="Valid"), {"first_name": "Bad", "emails": 7}])
    except crmkit.ValidationError as exc:
        print(f"  refused: {exc}")
    print(f"  contacts before {before}, after {crm.contacts.count()}")

    print(f"\n{crm.tickets.count(F.priority == 'high')} high-priority ticket(s) open.")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else DEFAULT_URL
    if url == DEFAULT_URL and os.path.exists("crmkit-demo.db"):
        os.remove("crmkit-demo.db")
    print(f"crmkit demo on {url}\n")
    now = dt.datetime.now(dt.UTC)
    with crmkit.connect(url) as crm:
        build(crm, now)
        tour(crm, now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
