"""The cost of privacy: the suppression check on contact writes, and erasure.

Run with ``python benchmarks/bench_privacy.py [--n 20000]``. Prints ratios measured in this
run; asserts nothing.

- ``add_many`` of ``n`` contacts with a non-empty suppression list against the same
  writes without the suppression check (target <= 1.3x): the check is one primary-key
  read per new contact with an email or phone.
- ``erase`` of one person with ``--history`` interactions among ``n`` contacts against
  exporting the same person (target <= 20x): both read the person's records through
  indexes; erasure rewrites each of them and their audit entries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from collections.abc import Callable

from _timing import best_of

import crmkit
from crmkit import Contact, Interaction
from crmkit.entities import InteractionKind


def make_contacts(n: int) -> list[Contact]:
    return [
        Contact(
            first_name="Ada",
            last_name=f"Person{i}",
            emails=(f"person{i}@example{i % 97}.com",),
            phones=(f"+1415555{i % 10000:04d}",),
        )
        for i in range(n)
    ]


def run(label: str, url_of: Callable[[str], str], n: int, history: int, runs: int) -> None:
    contacts = make_contacts(n)
    counter = iter(range(1_000_000))

    def bulk(check: bool) -> Callable[[], None]:
        def go() -> None:
            crm = crmkit.connect(url_of(f"bulk{next(counter)}"))
            crm.privacy.suppress(emails=["gone@example.org"])
            if not check:
                crm._write_hooks.remove(crm.privacy)
            crm.contacts.add_many(contacts, batch_size=5000)
            crm.close()

        return go

    off = best_of(runs, bulk(False))
    on = best_of(runs, bulk(True))
    print(f"{label:<8} add_many {n:>7,}  off {off:7.3f}s  on {on:7.3f}s  {on / off:5.2f}x  1.3x")

    crm = crmkit.connect(url_of(f"erase{next(counter)}"))
    stored = crm.contacts.add_many(contacts, batch_size=5000)
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    people = [c.id or "" for c in stored[: runs + 1]]
    for person in people:
        crm.interactions.add_many(
            Interaction(
                kind=InteractionKind.NOTE,
                occurred_at=at,
                body=f"note {i} about Person and {contacts[0].emails[0]}",
                contact_ids=(person,),
            )
            for i in range(history)
        )
    export = best_of(runs, lambda: crm.privacy.export(people[0]))
    victims = iter(people)
    erase = best_of(runs, lambda: crm.privacy.erase(next(victims)))
    print(
        f"{label:<8} erase   {history:>7,}  export {export:7.3f}s  erase {erase:7.3f}s  "
        f"{erase / export:5.2f}x  20x"
    )
    crm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="contacts per add_many")
    parser.add_argument("--history", type=int, default=200, help="interactions per person")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run("memory", lambda name: "memory://", args.n, args.history, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", lambda name: f"sqlite:///{tmp}/{name}.db", args.n, args.history, args.runs)


if __name__ == "__main__":
    main()
