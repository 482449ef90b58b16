"""Aggregate conditions on related records, on SQLite, against hand-written SQL in the same run.

Run with ``python benchmarks/bench_related_aggregates.py [--n 20000]``. Builds the SQLite
CRM of :mod:`bench_commerce` (``n`` orders of ``n / 5`` contacts over two years) and prints
for each rule crmkit's time to count the matching contacts, the baseline's time and their
ratio:

* ``spent_more_than(1000, "EUR", as_of=...)`` - a sum over the related orders - against
  ``id IN (SELECT contact_id ... GROUP BY contact_id HAVING sum(total_amount) > 1000)``
  - target <= 3x (crmkit adds the amounts exactly, as decimals, in a Python aggregate
  function; the raw query adds floats);
* ``F.related("orders", counted).count() < 3`` - true for contacts without orders, so it
  compiles to ``id NOT IN (... HAVING NOT count(*) < 3)`` - against the same query written
  by hand - target <= 1.5x.

Asserts that both sides count the same contacts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile

from _timing import best_of, print_ratios
from bench_commerce import crm_with_contacts, feed

from crmkit.commerce import counted, spent_more_than
from crmkit.query import F


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="orders")
    parser.add_argument("--runs", type=int, default=5, help="timings per rule (best kept)")
    args = parser.parse_args()
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        crm, contacts = crm_with_contacts(f"{tmp}/crm.db", args.n)
        crm.orders.add_many(feed(contacts, args.n), batch_size=5000)
        raw = sqlite3.connect(f"{tmp}/crm.db")
        as_of = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        since = (as_of - dt.timedelta(days=365)).isoformat(" ", "milliseconds")
        until = as_of.isoformat(" ", "milliseconds")
        statuses = "status IN ('pending', 'paid', 'fulfilled')"
        spent_sql = (
            "SELECT count(*) FROM crm_contacts WHERE id IN (SELECT contact_id FROM crm_orders "
            f"WHERE contact_id IS NOT NULL AND {statuses} AND total_currency = 'EUR' "
            "AND placed_at >= ? AND placed_at < ? "
            "GROUP BY contact_id HAVING sum(total_amount) > 1000)"
        )
        rule = spent_more_than(1000, "EUR", as_of=as_of)
        want = raw.execute(spent_sql, (since, until)).fetchone()[0]
        assert crm.contacts.count(rule) == want, (crm.contacts.count(rule), want)
        rows.append(
            (
                "spent_more_than (sum > x)",
                best_of(args.runs, lambda: crm.contacts.count(rule)),
                best_of(args.runs, lambda: raw.execute(spent_sql, (since, until)).fetchone()),
                "<= 3x",
            )
        )
        few_sql = (
            "SELECT count(*) FROM crm_contacts WHERE id NOT IN (SELECT contact_id FROM "
            f"crm_orders WHERE contact_id IS NOT NULL AND {statuses} "
            "GROUP BY contact_id HAVING count(*) >= 3)"
        )
        few = F.related("orders", counted()).count() < 3
        assert crm.contacts.count(few) == raw.execute(few_sql).fetchone()[0]
        rows.append(
            (
                "count() < 3 (NOT IN)",
                best_of(args.runs, lambda: crm.contacts.count(few)),
                best_of(args.runs, lambda: raw.execute(few_sql).fetchone()),
                "<= 1.5x",
            )
        )
        raw.close()
        crm.close()
    print_ratios(
        f"related aggregates on SQLite: {args.n:,} orders, {max(args.n // 5, 1):,} contacts",
        "rule",
        rows,
    )


if __name__ == "__main__":
    main()
