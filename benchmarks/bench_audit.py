"""The cost of the audit trail: writes with it on against the same writes with it off.

Run with ``python benchmarks/bench_audit.py [--n 20000]``. Prints ratios measured in this
run (audit on / audit off, same data, same backend); asserts nothing. Target: <= 1.5x for
``add_many`` (one bulk insert of entries per batch) and <= 2x for single updates (one more
row in the same transaction).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable

import attrs
from _timing import best_of

import crmkit
from crmkit import Contact


def make_contacts(n: int) -> list[Contact]:
    return [
        Contact(
            first_name="Ada",
            last_name=f"Person{i}",
            emails=[f"person{i}@example{i % 97}.com"],
            title="CTO" if i % 2 else None,
            custom={"tier": "gold" if i % 3 else "silver", "score": i},
        )
        for i in range(n)
    ]


def run(label: str, url_of: Callable[[str], str], n: int, updates: int, runs: int) -> None:
    contacts = make_contacts(n)
    counter = iter(range(1_000_000))

    def bulk(audit: bool) -> Callable[[], None]:
        def go() -> None:
            crm = crmkit.connect(url_of(f"bulk{next(counter)}"))
            crm.audit.enabled = audit
            crm.contacts.add_many(contacts, batch_size=5000)
            crm.close()

        return go

    def single(audit: bool) -> Callable[[], None]:
        crm = crmkit.connect(url_of(f"single{next(counter)}"))
        stored = list(crm.contacts.add_many(contacts[:updates]))
        crm.audit.enabled = audit

        def go() -> None:
            for i, c in enumerate(stored):
                stored[i] = crm.contacts.update(attrs.evolve(c, title=f"T{c.version}"))

        return go

    off = best_of(runs, bulk(False))
    on = best_of(runs, bulk(True))
    print(f"{label:<8} add_many {n:>7,}  off {off:7.3f}s  on {on:7.3f}s  {on / off:5.2f}x  1.5x")
    off = best_of(runs, single(False))
    on = best_of(runs, single(True))
    print(
        f"{label:<8} update   {updates:>7,}  off {off:7.3f}s  on {on:7.3f}s  {on / off:5.2f}x  2x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="contacts per add_many")
    parser.add_argument("--updates", type=int, default=1_000, help="single updates")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run("memory", lambda name: "memory://", args.n, args.updates, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", lambda name: f"sqlite:///{tmp}/{name}.db", args.n, args.updates, args.runs)


if __name__ == "__main__":
    main()
