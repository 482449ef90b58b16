"""Memory backend: add_many and get against the same work on plain dicts.

Run with ``nox -s bench`` or ``python benchmarks/bench_memory.py [--n 100000]``. Prints
ratios measured in this run; asserts nothing (the targets are <= 3x for add, <= 2x for get).
add_many includes normalizing every contact (emails, phones, names), which the plain-dict
baseline does not do; the normalizer's own time is measured and shown separately. It also
includes the audit trail (one entry per record, on by default), which writes a second
record per contact; the same call with ``crm.audit.enabled = False`` is shown too, as the
work that matches the baseline.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from _timing import best_of

import crmkit
from crmkit import Contact
from crmkit.entities.schema import indexed_fields
from crmkit.ids import new_id
from crmkit.normalize import EntityNormalizer, Normalizer


def make_contacts(n: int, seed: int = 7) -> list[Contact]:
    rng = random.Random(seed)
    accounts = [new_id() for _ in range(max(1, n // 50))]
    return [
        Contact(
            first_name=rng.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"]),
            last_name=f"Person{i}",
            emails=[f"person{i}@example{i % 97}.com"],
            phones=[f"+1415{i:07d}"],
            account_id=rng.choice(accounts),
            title=rng.choice([None, "CTO", "CEO", "Engineer"]),
        )
        for i in range(n)
    ]


def baseline_add(contacts: list[Contact]) -> dict[str, Contact]:
    """The same work by hand: ids, a dict by id, and the same secondary indexes."""
    rows: dict[str, Contact] = {}
    fields = indexed_fields(Contact)
    indexes: dict[str, dict[Any, set[str]]] = {name: {} for name in fields}
    lists = {"emails", "phones", "tags"}
    for contact in contacts:
        id = new_id()
        rows[id] = contact
        for name in fields:
            value = getattr(contact, name)
            if value is None:
                continue
            for item in value if name in lists else (value,):
                indexes[name].setdefault(item, set()).add(id)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    contacts = make_contacts(args.n)

    base_add = best_of(args.runs, lambda: baseline_add(contacts))

    def crm_add(audit: bool = True) -> None:
        crm = crmkit.connect("memory://")
        crm.audit.enabled = audit
        crm.contacts.add_many(contacts)

    ours_add = best_of(args.runs, crm_add)
    no_audit = best_of(args.runs, lambda: crm_add(audit=False))
    # the normalization every write goes through (emails, phones, names), on its own
    normalizer = EntityNormalizer(Normalizer("US"))
    norm = best_of(args.runs, lambda: [normalizer.contact(c) for c in contacts])

    crm = crmkit.connect("memory://")
    stored = crm.contacts.add_many(contacts)
    ids = [c.id or "" for c in stored]
    random.Random(1).shuffle(ids)
    plain = {c.id: c for c in stored}
    get = crm.contacts.get

    def base_get() -> None:
        for i in ids:
            plain[i]

    def ours_get() -> None:
        for i in ids:
            get(i)

    base_g = best_of(args.runs, base_get)
    ours_g = best_of(args.runs, ours_get)

    print(f"memory backend, n={args.n:,} (best of {args.runs})")
    print(f"{'operation':<22}{'plain dicts':>14}{'crmkit':>12}{'ratio':>8}{'target':>8}")
    print(
        f"{'add_many':<22}{base_add:>13.3f}s{ours_add:>11.3f}s{ours_add / base_add:>7.2f}x{'3x':>8}"
    )
    print(
        f"{'add_many, audit off':<22}{base_add:>13.3f}s{no_audit:>11.3f}s"
        f"{no_audit / base_add:>7.2f}x{'3x':>8}"
    )
    print(
        f"{'  of which storage':<22}{base_add:>13.3f}s{no_audit - norm:>11.3f}s"
        f"{(no_audit - norm) / base_add:>7.2f}x{'3x':>8}"
    )
    print(f"{'  of which normalizing':<22}{'':>14}{norm:>11.3f}s  ({norm / no_audit:.0%} of it)")
    print(
        f"{'get (random ids)':<22}{base_g:>13.3f}s{ours_g:>11.3f}s{ours_g / base_g:>7.2f}x{'2x':>8}"
    )


if __name__ == "__main__":
    main()
