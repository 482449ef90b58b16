"""Commerce: order upserts and order reports on SQLite against baselines in the same run.

Run with ``python benchmarks/bench_commerce.py [--n 20000]``. Builds a SQLite CRM of ``n``
orders (one to three lines over 20 products) of ``n / 5`` contacts over two years, and
prints for each operation crmkit's time, a baseline's time and their ratio:

* re-importing the unchanged feed with ``crm.orders.upsert_many`` (reads every order by
  external id, compares, writes nothing) against ``add_many`` of the same orders into an
  empty CRM - target <= 1.0x: an idempotent re-import costs no more than the first import;
* ``crm.orders.rfm()`` against the hand-written ``GROUP BY contact_id`` query computing
  the same sums, counts and last dates - target <= 3x (crmkit sums money exactly, as
  decimals, where the raw query adds floats; the report adds the quintile scoring);
* ``crm.orders.bought_together(min_count=1)`` against a hand-written self-join of the SKU
  list table counting every pair - target <= 8x (the aggregate API groups by one list
  field at a time, so pairs take one aggregate per product: 20 here).

Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import tempfile

from _timing import best_of, print_ratios, timed

import crmkit
from crmkit import Contact, Money, Order, OrderLine

SKUS = [f"SKU{i:02d}" for i in range(20)]


def feed(contacts: list[str], n: int, seed: int = 11) -> list[Order]:
    """``n`` orders of ``contacts`` over two years, one to three lines each."""
    rng = random.Random(seed)
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    out = []
    for i in range(n):
        skus = rng.sample(SKUS, rng.randint(1, 3))
        out.append(
            Order(
                external_id=f"O{i}",
                contact_id=rng.choice(contacts),
                placed_at=start + dt.timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)),
                lines=tuple(
                    OrderLine(
                        sku=s,
                        category=f"cat{int(s[3:]) % 5}",
                        quantity=rng.randint(1, 3),
                        unit_price=Money(amount=rng.randint(5, 500), currency="EUR"),
                    )
                    for s in skus
                ),
            )
        )
    return out


def crm_with_contacts(path: str, n: int) -> tuple[crmkit.CRM, list[str]]:
    """A fresh SQLite CRM at ``path`` with ``n / 5`` contacts."""
    crm = crmkit.connect(f"sqlite:///{path}")
    crm.create_schema()
    made = crm.contacts.add_many(
        (Contact(first_name=f"P{i}") for i in range(max(n // 5, 1))), batch_size=5000
    )
    return crm, [c.id or "" for c in made]


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="orders")
    parser.add_argument("--runs", type=int, default=3, help="timings per report (best kept)")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        crm, contacts = crm_with_contacts(f"{tmp}/first.db", args.n)
        orders = feed(contacts, args.n)
        first = timed(lambda: crm.orders.add_many(orders, batch_size=5000))
        baseline, _ = crm_with_contacts(f"{tmp}/baseline.db", args.n)
        first = min(first, timed(lambda: baseline.orders.add_many(orders, batch_size=5000)))
        baseline.close()
        again = best_of(args.runs, lambda: crm.orders.upsert_many(orders))
        assert crm.orders.count() == args.n
        rows.append(("re-import unchanged (upsert_many)", again, first, "<= 1.0x"))

        raw = sqlite3.connect(f"{tmp}/first.db")
        as_of = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        rfm_sql = (
            "SELECT contact_id, total_currency, count(*), sum(total_amount), max(placed_at) "
            "FROM crm_orders WHERE status IN ('pending', 'paid', 'fulfilled') "
            "AND placed_at < ? AND contact_id IS NOT NULL GROUP BY contact_id, total_currency"
        )
        stamp = as_of.isoformat(" ", "milliseconds")
        assert len(raw.execute(rfm_sql, (stamp,)).fetchall()) == len(crm.orders.rfm(as_of=as_of))
        rows.append(
            (
                "rfm (orders)",
                best_of(args.runs, lambda: crm.orders.rfm(as_of=as_of)),
                best_of(args.runs, lambda: raw.execute(rfm_sql, (stamp,)).fetchall()),
                "<= 3x",
            )
        )
        pairs_sql = (
            "SELECT a.value, b.value, count(*) FROM crm_orders_skus a "
            "JOIN crm_orders_skus b ON a.owner_id = b.owner_id AND a.value < b.value "
            "GROUP BY a.value, b.value"
        )
        assert len(raw.execute(pairs_sql).fetchall()) == len(
            crm.orders.bought_together(min_count=1, limit=None)
        )
        rows.append(
            (
                "bought_together",
                best_of(args.runs, lambda: crm.orders.bought_together(min_count=1, limit=None)),
                best_of(args.runs, lambda: raw.execute(pairs_sql).fetchall()),
                "<= 8x",
            )
        )
        raw.close()
        crm.close()
    print_ratios(
        f"commerce on SQLite over {args.n:,} orders, {max(args.n // 5, 1):,} contacts",
        "operation",
        rows,
    )


if __name__ == "__main__":
    main()
