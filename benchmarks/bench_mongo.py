"""The MongoDB backend against raw pymongo-API calls, on mongomock.

Run: ``python benchmarks/bench_mongo.py [--contacts N] [--gets M] [--repeat R]``
(defaults: 20,000 contacts, 5,000 gets, best of 1 round).

Both sides use the same mongomock client in the same run, so only the ratios mean anything:

- *add_many*: ``crm.contacts.add_many`` of N new contacts (ids, versions, timestamps,
  normalization, entity -> document conversion, batched ``insert_many`` in an emulated
  transaction) against ``insert_many`` of the same contacts already converted to dicts;
- *get*: ``crm.contacts.get(id)`` of M random ids (``find_one`` by ``_id``, document ->
  entity conversion) against ``find_one({"_id": id})`` on the same collection.

mongomock answers every query by scanning the whole collection (about 5 us per document),
so the get rounds take minutes at the default sizes and their ratio is dominated by that
scan; pass a smaller ``--gets`` for a quick run. It never asserts a time.
"""

from __future__ import annotations

import argparse
import functools
import random

from _timing import timed

import crmkit
from crmkit import Contact
from crmkit.backends.mongo import MongoBackend


def make_contacts(n: int, tag: str) -> list[Contact]:
    """N distinct contacts shaped like a CRM import."""
    return [
        Contact(
            first_name=f"First{i}",
            last_name=f"Last{i % 997}",
            emails=(f"person{i}.{tag}@example.com",),
            phones=(f"+4420794{i % 100000:05d}",),
            title="Engineer" if i % 3 else None,
            tags=("import", f"batch{i % 10}"),
            custom={"score": i % 100, "tier": "gold" if i % 7 == 0 else "silver"},
        )
        for i in range(n)
    ]


def backend(crm: crmkit.CRM) -> MongoBackend:
    """The CRM's Mongo backend, typed."""
    assert isinstance(crm.backend, MongoBackend)
    return crm.backend


def main() -> None:
    """Measure both operations and print a table of ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--gets", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    rows: list[tuple[str, float, float]] = []
    best_crm = best_raw = float("inf")
    crm = crmkit.connect("mongomock://")
    for r in range(args.repeat):
        crm = crmkit.connect("mongomock://")
        contacts = make_contacts(args.contacts, f"c{r}")
        best_crm = min(best_crm, timed(functools.partial(crm.contacts.add_many, contacts)))
        # the baseline: the same entities, stamped and converted beforehand (not timed)
        prepared = list(
            crmkit.connect("memory://").contacts.add_many(make_contacts(args.contacts, f"r{r}"))
        )
        docs = [backend(crm).converter.to_document(c) for c in prepared]
        raw = backend(crm).database.get_collection("raw_contacts")
        best_raw = min(best_raw, timed(functools.partial(raw.insert_many, docs)))
    rows.append((f"add_many of {args.contacts:,} contacts", best_crm, best_raw))

    collection = backend(crm).database.get_collection("contacts")
    ids = [d["_id"] for d in collection.find({}, {"_id": 1})]
    wanted = random.Random(42).sample(ids, min(args.gets, len(ids)))
    best_crm = best_raw = float("inf")
    for _ in range(args.repeat):
        best_crm = min(best_crm, timed(lambda: [crm.contacts.get(i) for i in wanted]))
        best_raw = min(best_raw, timed(lambda: [collection.find_one({"_id": i}) for i in wanted]))
    rows.append((f"get of {len(wanted):,} ids (of {len(ids):,})", best_crm, best_raw))

    print(f"{'operation':<36} {'crmkit/raw':>11}")
    for name, ours, baseline in rows:
        print(f"{name:<36} {ours / baseline:>10.2f}x")
    crm.close()


if __name__ == "__main__":
    main()
