"""crmkit in two minutes: accounts, contacts, queries, versions and transactions.

Run: python examples/quickstart.py [URL]   (default: an in-memory CRM)
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import attrs

import crmkit
from crmkit import Account, Contact, Interaction
from crmkit.query import F


def main(url: str = "memory://") -> None:
    crm = crmkit.connect(url)

    acme = crm.accounts.add(Account(name="Acme Corp", domain="acme.com"))
    ada = crm.contacts.add(
        Contact(
            first_name="Ada",
            last_name="Lovelace",
            emails=["ada@acme.com"],
            phones=["+442079460958"],
            account_id=acme.id,
        )
    )
    crm.contacts.add_many(
        Contact(first_name=name, last_name="Hopper", account_id=acme.id, title=title)
        for name, title in [("Grace", "Rear Admiral"), ("Walter", None), ("Anne", "CEO")]
    )
    print(f"added {ada.name} as {ada.id} (version {ada.version})")

    # Queries run in the backend; None never matches a comparison.
    hoppers = crm.contacts.find(F.last_name == "Hopper", order_by=["title", "first_name"])
    print("Hoppers by title (no title last):", [c.first_name for c in hoppers])
    not_ceo = crm.contacts.count(~(F.title == "CEO"))
    print("contacts who are not CEO (including those without a title):", not_ceo)

    # Optimistic locking: updates carry the version they were read at.
    cto = crm.contacts.update(attrs.evolve(ada, title="CTO"))
    try:
        crm.contacts.update(attrs.evolve(ada, title="CEO"))  # stale: still version 1
    except crmkit.ConflictError as exc:
        print("stale update refused:", exc)
    assert crm.contacts.get(ada.id or "").title == "CTO"

    # All or nothing.
    try:
        with crm.transaction():
            crm.interactions.add(
                Interaction(
                    kind="call",
                    direction="outbound",
                    occurred_at=datetime.now(UTC) - timedelta(hours=1),
                    contact_ids=[cto.id or ""],
                    subject="Intro call",
                )
            )
            raise RuntimeError("something went wrong after the write")
    except RuntimeError:
        pass
    assert crm.interactions.count() == 0
    print("rolled back: interactions =", crm.interactions.count())

    # Bad input is refused with the field, the value and the reason; nothing is written.
    try:
        Interaction(kind="fax", occurred_at=datetime.now(UTC))
    except crmkit.ValidationError as exc:
        print("refused:", exc)

    # Keyset paging: each page carries the cursor of the next.
    page = crm.contacts.page(order_by="first_name", limit=2)
    names = [c.first_name for c in page]
    while page.next_cursor:
        page = crm.contacts.page(order_by="first_name", limit=2, after=page.next_cursor)
        names += [c.first_name for c in page]
    print("all contacts, paged:", names)
    assert names == sorted(names)
    crm.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
