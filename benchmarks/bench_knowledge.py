"""Knowledge-base search: ``crm.articles.search`` against a raw FTS5 query, in one run.

Run with ``python benchmarks/bench_knowledge.py [--n 10000] [--queries 200]``. Builds ``n``
published articles (seeded random words) in a SQLite file and in the memory backend, then
times ``crm.articles.search(q, limit=10)`` over the same queries against the raw SQL crmkit
would send at best, through ``sqlite3``: ``raw_fts5`` is the ids of the ten best matches
(``SELECT article_id, rank FROM <fts> JOIN <docs> ... WHERE <fts> MATCH ? ORDER BY rank
LIMIT 10``: no article row read, no filter), ``raw_rows`` the same joined to the article rows
with the ``published`` filter (the statement crmkit sends, rows fetched as tuples). Also
reports indexing (``add_many`` through the triggers) and one update. Prints a table of
timings and ratios; asserts nothing. The gap between ``raw_rows`` and crmkit is building the
``Article`` records and SQLAlchemy's execution overhead.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sqlite3
import tempfile
from typing import Any

import attrs
from _timing import timed

import crmkit
from crmkit import Article
from crmkit.entities import ArticleStatus

VOCABULARY = [f"w{i}" for i in range(5000)] + [
    "password",
    "reset",
    "billing",
    "invoice",
    "export",
    "login",
    "webhook",
    "integration",
    "refund",
    "account",
]


def make_articles(n: int, seed: int = 11) -> list[Article]:
    """``n`` published articles: 6-word titles, 120-word bodies, two tags."""
    rng = random.Random(seed)
    return [
        Article(
            title=" ".join(rng.choices(VOCABULARY, k=6)),
            body=" ".join(rng.choices(VOCABULARY, k=120)),
            tags=tuple(rng.sample(VOCABULARY[-10:], 2)),
            status=ArticleStatus.PUBLISHED,
        )
        for _ in range(n)
    ]


def make_queries(count: int, seed: int = 5) -> list[str]:
    """Two-word queries mixing common and rare words."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(VOCABULARY, 2)) for _ in range(count)]


def run(n: int, queries: int) -> dict[str, Any]:
    """Time everything for ``n`` articles; returns the measurements."""
    articles = make_articles(n)
    qs = make_queries(queries)
    out: dict[str, Any] = {"articles": n, "queries": queries}
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "kb.db"
        crm = crmkit.connect(f"sqlite:///{path}")
        out["sqlite_add_many_s"] = timed(lambda: crm.articles.add_many(articles))
        stored = crm.articles.find(limit=100)
        out["sqlite_update_ms"] = (
            timed(lambda: [crm.articles.update(attrs.evolve(a, title="new title")) for a in stored])
            / len(stored)
            * 1000
        )
        out["sqlite_search_ms"] = (
            timed(lambda: [crm.articles.search(q, limit=10) for q in qs]) / queries * 1000
        )
        raw = sqlite3.connect(path)
        sql = (
            "SELECT d.article_id, f.rank FROM crm_articles_search AS f "
            "JOIN crm_articles_search_docs AS d ON d.doc_id = f.rowid "
            "WHERE crm_articles_search MATCH ? ORDER BY f.rank LIMIT 10"
        )

        def raw_search() -> None:
            for q in qs:
                match = " OR ".join(f'"{w}"' for w in q.split())
                raw.execute(sql, (match,)).fetchall()

        out["raw_fts5_ms"] = timed(raw_search) / queries * 1000
        full = (
            "SELECT a.*, -f.rank FROM crm_articles_search AS f "
            "JOIN crm_articles_search_docs AS d ON d.doc_id = f.rowid "
            "JOIN crm_articles AS a ON a.id = d.article_id "
            "WHERE crm_articles_search MATCH ? AND a.status = 'published' "
            "ORDER BY f.rank LIMIT 10"
        )

        def raw_rows() -> None:
            for q in qs:
                match = " OR ".join(f'"{w}"' for w in q.split())
                raw.execute(full, (match,)).fetchall()

        out["raw_rows_ms"] = timed(raw_rows) / queries * 1000
        raw.close()
        crm.close()
    memory = crmkit.connect("memory://")
    out["memory_add_many_s"] = timed(lambda: memory.articles.add_many(articles))
    out["memory_search_ms"] = (
        timed(lambda: [memory.articles.search(q, limit=10) for q in qs]) / queries * 1000
    )
    out["sqlite_vs_raw"] = out["sqlite_search_ms"] / out["raw_fts5_ms"]
    out["sqlite_vs_raw_rows"] = out["sqlite_search_ms"] / out["raw_rows_ms"]
    out["memory_vs_raw"] = out["memory_search_ms"] / out["raw_fts5_ms"]
    return out


def main() -> None:
    """Parse the arguments, run, print the table (and JSON)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    result = run(args.n, args.queries)
    for key, value in result.items():
        print(f"{key:>20}  {value:.3f}" if isinstance(value, float) else f"{key:>20}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
