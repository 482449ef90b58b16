"""Analytics: ``crm.analytics`` reports on SQLite against the same SQL written by hand.

Run with ``python benchmarks/bench_insights.py [--n 100000]``. Builds a SQLite CRM of
``n`` interactions over ``n / 10`` contacts (two years of dates, four kinds, both
directions, one or two contacts each) and prints, for each report, crmkit's time, the time
of a hand-written ``sqlite3`` query computing the same figures on the same file, and their
ratio:

* ``interactions_by_channel("week")`` - ``GROUP BY`` the Monday of the week, kind and
  direction;
* ``rfm()`` (interactions only) - ``GROUP BY`` contact over the contact-id child table,
  plus the readable-contacts check.

Target: <= 1.5x for each (the report adds validation, row objects and scoring in Python).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import tempfile

from _timing import best_of, print_ratios

import crmkit
from crmkit import Contact, Interaction

KINDS = ["email", "call", "meeting", "note"]
DIRECTIONS = ["inbound", "outbound", None]


def build(crm: crmkit.CRM, n: int, seed: int = 5) -> None:
    """``n / 10`` contacts and ``n`` interactions over two years."""
    rng = random.Random(seed)
    people = [
        c.id or ""
        for c in crm.contacts.add_many(
            (Contact(first_name=f"P{i}") for i in range(max(n // 10, 1))), batch_size=5000
        )
    ]
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)

    def interaction(i: int) -> Interaction:
        who = rng.sample(people, 2 if rng.random() < 0.2 and len(people) > 1 else 1)
        return Interaction(
            kind=rng.choice(KINDS),
            direction=rng.choice(DIRECTIONS),
            occurred_at=start + dt.timedelta(minutes=rng.randrange(2 * 365 * 24 * 60)),
            contact_ids=who,
        )

    crm.interactions.add_many((interaction(i) for i in range(n)), batch_size=5000)


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="interactions")
    parser.add_argument("--runs", type=int, default=5, help="timings per report (best kept)")
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/crm.db"
        crm = crmkit.connect(f"sqlite:///{path}")
        crm.create_schema()
        build(crm, args.n)
        raw = sqlite3.connect(path)
        as_of = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

        weekly_sql = (
            "SELECT date(substr(occurred_at, 1, 10), '-6 days', 'weekday 1') AS w, kind, "
            "direction, count(*) FROM crm_interactions GROUP BY w, kind, direction"
        )
        assert len(raw.execute(weekly_sql).fetchall()) == len(
            crm.analytics.interactions_by_channel("week")
        )
        rows.append(
            (
                "interactions_by_channel(week)",
                best_of(args.runs, lambda: crm.analytics.interactions_by_channel("week")),
                best_of(args.runs, lambda: raw.execute(weekly_sql).fetchall()),
            )
        )
        rfm_sql = (
            "SELECT l.value, count(*), max(i.occurred_at) FROM crm_interactions i "
            "JOIN crm_interactions_contact_ids l ON l.owner_id = i.id "
            "WHERE i.occurred_at < ? GROUP BY l.value"
        )
        stamp = as_of.isoformat(" ", "milliseconds")
        assert len(raw.execute(rfm_sql, (stamp,)).fetchall()) == len(crm.analytics.rfm(as_of=as_of))
        rows.append(
            (
                "rfm (interactions)",
                best_of(args.runs, lambda: crm.analytics.rfm(as_of=as_of)),
                best_of(args.runs, lambda: raw.execute(rfm_sql, (stamp,)).fetchall()),
            )
        )
        raw.close()
        crm.close()
    title = f"analytics on SQLite over {args.n:,} interactions, {max(args.n // 10, 1):,} contacts"
    print_ratios(title, "report", [(label, ours, base, "<= 1.5x") for label, ours, base in rows])


if __name__ == "__main__":
    main()
