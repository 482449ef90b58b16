"""CSV import into SQLite: rows per second, peak memory at two sizes, re-import rate.

Run with ``nox -s bench`` or ``python benchmarks/bench_import.py [--rows 1000000]
[--upsert-rows 100000]``. CSVs of generated contacts are imported into fresh SQLite files
with ``crm.imports.csv``, each import in a child process so that its peak resident memory
(:func:`peak_memory_kib`) is its own; comparing two sizes shows whether memory grows with
the row count.

- *create*: ``--rows`` rows and a tenth of that, mapped without an external id (every row
  is created): the import pipeline's own rate, end to end.
- *upsert*: ``--upsert-rows`` rows and a tenth of that, keyed by ``external_ids.shop``, then
  the same file again (every row unchanged). Each batch looks its external ids up in the
  indexed child table of ``external_ids``, so the rate does not fall as the table grows.

Baselines measured in the same run: reading the file with the ``csv`` module alone; the same
rows as field dicts through ``crm.contacts.add_many`` (``add_many``: the repository without
the import machinery); and ``raw``: the rows a ``create`` import stored (contacts, their email
and phone index rows, their audit entries) inserted again into an empty copy of the schema
with ``sqlite3`` ``executemany``, 1,000 rows per transaction: what SQLite itself costs for
these writes, the floor of any import. Target: >= 20,000 rows/s; peak memory flat in the row
count. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

import crmkit

MAPPING = {
    "customer_id": "external_ids.shop",
    "first": "first_name",
    "last": "last_name",
    "email": "emails",
    "phone": "phones",
    "city": "address.city",
    "tier": "custom.tier",
}
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Donald"]
CITIES = ["London", "Paris", "Berlin", "Madrid", "Rome", "Lisbon", ""]
TIERS = ["gold", "silver", "bronze", ""]


def write_csv(path: pathlib.Path, rows: int) -> None:
    """``rows`` contacts with an external id, an email, a phone, a city and a tier."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(list(MAPPING))
        for i in range(rows):
            writer.writerow(
                [
                    f"C-{i}",
                    FIRST[i % len(FIRST)],
                    f"Person{i}",
                    f"person{i}@example{i % 97}.com",
                    f"+1415{i % 10_000_000:07d}",
                    CITIES[i % len(CITIES)],
                    TIERS[i % len(TIERS)],
                ]
            )


#: The mapping without the external id: every row is created.
CREATE_ONLY = {k: v for k, v in MAPPING.items() if not v.startswith("external_ids")}


def child(csv_path: str, db_path: str, mode: str) -> None:
    """Import the file into ``db_path`` (twice when upserting); print figures as JSON."""
    crm = crmkit.connect(f"sqlite:///{db_path}")
    crm.create_schema()
    if mode == "add_many":
        add_many_baseline(crm, csv_path)
        return
    mapping = MAPPING if mode == "upsert" else CREATE_ONLY
    start = time.perf_counter()
    first = crm.imports.csv(csv_path, mapping=mapping)
    first_s = time.perf_counter() - start
    again, again_s = first, 0.0
    if mode == "upsert":
        start = time.perf_counter()
        again = crm.imports.csv(csv_path, mapping=mapping)
        again_s = time.perf_counter() - start
    crm.close()
    peak_kib = peak_memory_kib()
    print(
        json.dumps(
            {
                "first": [first.rows, first.created, first.rejected, first_s],
                "again": [again.rows, again.unchanged, again.rejected, again_s],
                "peak_mib": peak_kib / 1024,
            }
        )
    )


def add_many_baseline(crm: crmkit.CRM, csv_path: str) -> None:
    """The same rows as ready-made field dicts through ``add_many``, 1,000 per call: what
    the repository costs without any import machinery. Prints figures as JSON."""
    start = time.perf_counter()
    rows = 0
    with open(csv_path, newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        batch: list[dict[str, object]] = []
        for _, first, last, email, phone, city, tier in reader:
            batch.append(
                {
                    "first_name": first,
                    "last_name": last,
                    "emails": [email],
                    "phones": [phone],
                    "address": {"city": city} if city else None,
                    "custom": {"tier": tier} if tier else {},
                }
            )
            if len(batch) == 1000:
                rows += len(crm.contacts.add_many(batch))
                batch = []
        rows += len(crm.contacts.add_many(batch)) if batch else 0
    seconds = time.perf_counter() - start
    peak_kib = peak_memory_kib()
    print(json.dumps({"first": [rows, rows, 0, seconds], "again": [rows, 0, 0, 0.0],
                      "peak_mib": peak_kib / 1024}))  # fmt: skip


def peak_memory_kib() -> int:
    """This process's peak resident memory in KiB: Linux's ``VmHWM``, which starts afresh
    in a new program (``ru_maxrss`` is carried over from the parent through ``exec``),
    else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def raw_insert(db_path: pathlib.Path) -> tuple[int, float]:
    """Rows and seconds to insert what a ``create`` import stored in ``db_path`` again, into
    an empty copy of its schema, with ``sqlite3`` alone (same pragmas, 1,000 per commit)."""
    source = sqlite3.connect(db_path)
    tables = ["crm_contacts", "crm_contacts_emails", "crm_contacts_phones", "crm_audit_log"]
    data = {t: source.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    marks = ", ".join("?" * len(tables))
    schema = [
        sql
        for (sql,) in source.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
            f"AND tbl_name IN ({marks}) ORDER BY type DESC",
            tables,
        )
    ]
    source.close()
    target_path = db_path.with_suffix(".raw.db")
    target = sqlite3.connect(target_path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON",
                   "secure_delete = ON"):  # fmt: skip
        target.execute(f"PRAGMA {pragma}")
    for sql in schema:
        target.execute(sql)
    children: dict[str, dict[str, list[tuple[object, ...]]]] = {}
    for table in tables[1:3]:
        by_owner = children[table] = {}
        for row in data[table]:
            by_owner.setdefault(row[0], []).append(row)
    contacts, audit = data["crm_contacts"], data["crm_audit_log"]
    insert = {t: f"INSERT INTO {t} VALUES ({', '.join('?' * len(data[t][0]))})" for t in tables}
    start = time.perf_counter()
    for i in range(0, len(contacts), 1000):
        batch = contacts[i : i + 1000]
        target.execute("BEGIN")
        target.executemany(insert["crm_contacts"], batch)
        for table in tables[1:3]:
            rows = [r for c in batch for r in children[table].get(c[0], ())]
            target.executemany(insert[table], rows)
        target.executemany(insert["crm_audit_log"], audit[i : i + 1000])
        target.execute("COMMIT")
    seconds = time.perf_counter() - start
    target.close()
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{target_path}{suffix}").unlink(missing_ok=True)
    return len(contacts), seconds


def read_only(csv_path: pathlib.Path) -> float:
    """Seconds the ``csv`` module alone takes to read the file (the floor)."""
    start = time.perf_counter()
    with open(csv_path, newline="", encoding="utf-8") as file:
        for _ in csv.reader(file):
            pass
    return time.perf_counter() - start


def run(tmp: pathlib.Path, mode: str, n: int, *, raw: bool = False) -> None:
    """Generate ``n`` rows, import them in a child process, print one line (and, with
    ``raw``, one for :func:`raw_insert` of what the import stored)."""
    csv_path = tmp / f"contacts-{n}.csv"
    db_path = tmp / f"crm-{mode}-{n}.db"
    if not csv_path.exists():
        write_csv(csv_path, n)
    floor = read_only(csv_path)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(csv_path), str(db_path), mode],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    rows, created, rejected, first_s = result["first"]
    _, unchanged, rejected_again, again_s = result["again"]
    again = f"{rows / again_s:>11,.0f}" if again_s else f"{'-':>11}"
    detail = f"created {created}, rejected {rejected}"
    if again_s:
        detail += f"; again: unchanged {unchanged}, rejected {rejected_again}"
    print(
        f"{mode:<8} {n:>9}  {rows / first_s:>9,.0f}  {again}  {n / floor:>10,.0f}  "
        f"{result['peak_mib']:>8.1f}   ({detail})",
        flush=True,
    )
    if raw:
        rows, seconds = raw_insert(db_path)
        print(f"{'raw':<8} {rows:>9}  {rows / seconds:>9,.0f}  {'-':>11}  {n / floor:>10,.0f}  "
              f"{'-':>8}   (sqlite3 executemany of the stored rows)")  # fmt: skip
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{db_path}{suffix}").unlink(missing_ok=True)


def main() -> None:
    """Generate, import at two sizes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--upsert-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=3, metavar=("CSV", "DB", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"{'mode':<8} {'rows':>9}  {'import/s':>9}  {'re-import/s':>11}  "
          f"{'csv read/s':>10}  {'peak MiB':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for mode, total in (("create", args.rows), ("upsert", args.upsert_rows)):
            sizes = sorted({max(1, total // 10), total})
            for n in sizes:
                run(pathlib.Path(tmp), mode, n, raw=mode == "create" and n == sizes[0])
        run(pathlib.Path(tmp), "add_many", max(1, args.rows // 10))
    print("add_many: the baseline, the same rows as field dicts through crm.contacts.add_many")
    print("raw: the rows the create import stored, inserted again with sqlite3 alone (floor)")
    print("target: >= 20,000 rows/s into SQLite; peak memory flat in the row count")


if __name__ == "__main__":
    main()
