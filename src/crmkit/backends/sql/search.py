"""Ranked text search on SQL databases (see :mod:`crmkit.textsearch` for the semantics).

SQLite: an FTS5 table ``<prefix>articles_search`` (``article_id UNINDEXED, title, tags,
body``, tokenizer ``porter unicode61 remove_diacritics 2``) kept in sync with the articles
table by three triggers (``..._ai``, ``..._ad``, ``..._au``), so every write, a rolled-back
one included, updates the index in the same transaction. Results are ranked by
``bm25()`` with the column weights of :data:`crmkit.textsearch.TEXT_FIELDS`.

The FTS5 table keeps its own copy of the text rather than being an *external-content*
table over the articles table: external content is addressed by ``rowid``, and the articles
table (whose key is a text ``id``) has no ``INTEGER PRIMARY KEY``, so ``VACUUM`` may renumber
its rowids and silently detach the index. The copy costs the text's size once more.

PostgreSQL: a GIN expression index ``ix_<prefix>articles_search`` on the weighted
``tsvector`` of title (weight ``A``), tags (``B``) and body (``D``) with the ``english``
configuration (stemming, English stopwords), queried with ``@@`` and ranked by
``ts_rank_cd``. The query is the OR of one ``plainto_tsquery('english', term)`` per term,
each term a bound parameter: no input is ever parsed as tsquery syntax. An expression index
adds no column to the table, so the row layout stays exactly the entity's.

Both are created by ``create_schema`` and by the Alembic revision ``0004``. They are not in
:func:`~crmkit.backends.sql.make_metadata`: a host running its own Alembic autogenerate
should skip them with :func:`is_search_object` in its ``include_name`` hook.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from crmkit.errors import ValidationError
from crmkit.query import Expr
from crmkit.textsearch import TEXT_FIELDS

if TYPE_CHECKING:
    from crmkit.backends.sql.backend import SqlStore

__all__ = ["PG_CONFIG", "install", "is_search_object", "search", "uninstall"]

#: The PostgreSQL text search configuration (stemming and stopwords of English).
PG_CONFIG = "english"

_SEARCH_OBJECT = re.compile(r"^(ix_)?\w*_search(_(docs|data|idx|content|docsize|config))?$")

_TRIGGERS = ("ai", "ad", "au")

#: ``ts_rank_cd`` weighs the letters 1.0 (A), 0.4 (B), 0.2 (C) and 0.1 (D): a title match
#: counts ten times a body match, as :data:`~crmkit.textsearch.TEXT_FIELDS` asks.
_PG_WEIGHTS = {"title": "A", "tags": "B", "body": "D"}


def is_search_object(name: str | None) -> bool:
    """True for the name of a table or index crmkit's text search creates (the FTS5 table
    and its shadow tables, the PostgreSQL index): for a host's Alembic ``include_name``."""
    return name is not None and bool(_SEARCH_OBJECT.match(name)) and "articles_search" in name


def _fields(collection: str) -> tuple[tuple[str, float], ...]:
    fields = TEXT_FIELDS.get(collection)
    if fields is None:
        raise ValidationError("collection", collection, "has no text index")
    return fields


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.cache
def pg_vector(collection: str = "articles") -> str:
    """The SQL of a record's weighted ``tsvector`` (its columns unqualified): the indexed
    expression, repeated verbatim in queries so that PostgreSQL uses the index."""
    parts = []
    for name, _ in _fields(collection):
        column = _q(name)
        if name == "tags":  # JSONB array of text: to_tsvector reads its string values
            source = f"to_tsvector('{PG_CONFIG}'::regconfig, {column})"
        else:
            source = f"to_tsvector('{PG_CONFIG}'::regconfig, coalesce({column}, ''))"
        parts.append(f"setweight({source}, '{_PG_WEIGHTS[name]}')")
    return "(" + " || ".join(parts) + ")"


# --- schema ---------------------------------------------------------------------------------


def install(conn: Connection, *, prefix: str, schema: str | None) -> None:
    """Create the text search objects of the articles table if missing (and, for a new FTS5
    table, index the rows already there). Idempotent; runs in ``conn``'s transaction."""
    table = f"{prefix}articles"
    if conn.dialect.name == "sqlite":
        fts = f"{prefix}articles_search"
        found = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE name = ?", (fts,)
        ).scalar()
        if found:
            return
        _sqlite_install(conn, table, fts)
    elif conn.dialect.name == "postgresql":
        index = f"ix_{prefix}articles_search"
        qualified = f"{_q(schema)}.{_q(index)}" if schema else _q(index)
        found = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": qualified}).scalar()
        if found is not None:
            return
        target = f"{_q(schema)}.{_q(table)}" if schema else _q(table)
        conn.exec_driver_sql(
            f"CREATE INDEX {_q(index)} ON {target} USING gin ({pg_vector('articles')})"
        )


def _sqlite_install(conn: Connection, table: str, fts: str) -> None:
    names = [name for name, _ in _fields("articles")]
    columns = ", ".join(_q(n) for n in names)
    docs = f"{fts}_docs"

    def value_list(row: str) -> list[str]:
        out = []
        for name in names:
            if name == "tags":  # a JSON array on the row: index its items, not its syntax
                out.append(f"(SELECT group_concat(value, ' ') FROM json_each({row}.tags))")
            else:
                out.append(f"{row}.{_q(name)}")
        return out

    def values(row: str) -> str:
        return ", ".join(value_list(row))

    def fts_row(row: str) -> str:
        return ", ".join(f"{row}.{_q(n)}" for n in names)

    sql = [
        # the external content: an INTEGER PRIMARY KEY, so rowids survive VACUUM
        f"CREATE TABLE {_q(docs)} (doc_id INTEGER PRIMARY KEY, "
        f"article_id TEXT NOT NULL UNIQUE, {columns})",
        f"CREATE VIRTUAL TABLE {_q(fts)} USING fts5({columns}, content={_q(docs)}, "
        "content_rowid='doc_id', tokenize = 'porter unicode61 remove_diacritics 2')",
        # ORDER BY rank is then the weighted bm25, and FTS5 returns rows already in that order
        f"INSERT INTO {_q(fts)} ({_q(fts)}, rank) VALUES ('rank', '{_bm25_call(names)}')",
        # articles -> docs
        f"CREATE TRIGGER {_q(fts + '_ai')} AFTER INSERT ON {_q(table)} BEGIN "
        f"INSERT INTO {_q(docs)} (article_id, {columns}) VALUES (new.id, {values('new')}); END",
        f"CREATE TRIGGER {_q(fts + '_ad')} AFTER DELETE ON {_q(table)} BEGIN "
        f"DELETE FROM {_q(docs)} WHERE article_id = old.id; END",
        f"CREATE TRIGGER {_q(fts + '_au')} AFTER UPDATE OF id, {columns} ON {_q(table)} BEGIN "
        f"UPDATE {_q(docs)} SET article_id = new.id, "
        + ", ".join(f"{_q(n)} = {v}" for n, v in zip(names, value_list("new"), strict=True))
        + " WHERE article_id = old.id; END",
        # docs -> the FTS5 index (the documented external-content triggers)
        f"CREATE TRIGGER {_q(docs + '_ai')} AFTER INSERT ON {_q(docs)} BEGIN "
        f"INSERT INTO {_q(fts)} (rowid, {columns}) VALUES (new.doc_id, {fts_row('new')}); END",
        f"CREATE TRIGGER {_q(docs + '_ad')} AFTER DELETE ON {_q(docs)} BEGIN "
        f"INSERT INTO {_q(fts)} ({_q(fts)}, rowid, {columns}) "
        f"VALUES ('delete', old.doc_id, {fts_row('old')}); END",
        f"CREATE TRIGGER {_q(docs + '_au')} AFTER UPDATE ON {_q(docs)} BEGIN "
        f"INSERT INTO {_q(fts)} ({_q(fts)}, rowid, {columns}) "
        f"VALUES ('delete', old.doc_id, {fts_row('old')}); "
        f"INSERT INTO {_q(fts)} (rowid, {columns}) VALUES (new.doc_id, {fts_row('new')}); END",
        # the articles stored already
        f"INSERT INTO {_q(docs)} (article_id, {columns}) "
        f"SELECT new.id, {values('new')} FROM {_q(table)} AS new",
    ]
    for statement in sql:
        conn.exec_driver_sql(statement)


def _bm25_call(names: Sequence[str]) -> str:
    weights = dict(_fields("articles"))
    return "bm25(" + ", ".join(repr(float(weights[n])) for n in names) + ")"


def uninstall(conn: Connection, *, prefix: str, schema: str | None) -> None:
    """Drop what :func:`install` created (idempotent)."""
    if conn.dialect.name == "sqlite":
        fts = f"{prefix}articles_search"
        for suffix in _TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {_q(fts + '_' + suffix)}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_q(fts)}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_q(fts + '_docs')}")  # and its triggers
    elif conn.dialect.name == "postgresql":
        index = _q(f"ix_{prefix}articles_search")
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_q(schema) + '.' if schema else ''}{index}")


# --- queries --------------------------------------------------------------------------------


def search(
    store: SqlStore[Any], terms: Sequence[str], where: Expr | None, limit: int
) -> list[tuple[Any, float]]:
    """The ``(record, score)`` pairs of a ranked search (see the module docs)."""
    from crmkit.backends.sql.backend import _install_fold, translate_errors

    _fields(store.entity.collection)  # raises for a collection without a text index
    if not terms:
        return []
    table = store.table
    compiled = store.compiler.compile(where)
    params: dict[str, Any]
    if store.backend.dialect == "sqlite":
        # every term a quoted FTS5 string: operators and syntax in the input are literal
        params = {"_match": " OR ".join(_q(t) for t in terms)}
    else:
        params = {f"_term{i}": term for i, term in enumerate(terms)}
    stmt = _statement(store, len(terms))
    if compiled.clause is not None:
        stmt = stmt.where(compiled.clause)
    stmt = stmt.limit(limit)
    from_row = store.layout.from_row
    with translate_errors(f"search {table.name}"), store.backend.reading() as conn:
        if compiled.needs_fold:
            _install_fold(conn)
        rows = conn.execute(stmt, params).all()
    return [(from_row(r), float(r[-1])) for r in rows]


_STATEMENTS: weakref.WeakKeyDictionary[Any, dict[int, sa.Select[Any]]] = weakref.WeakKeyDictionary()


def _statement(store: SqlStore[Any], count: int) -> sa.Select[Any]:
    """The search ``SELECT`` of ``count`` terms, without filter and limit (built once)."""
    cached = _STATEMENTS.setdefault(store, {})
    stmt = cached.get(1 if store.backend.dialect == "sqlite" else count)
    if stmt is not None:
        return stmt
    table = store.table
    if store.backend.dialect == "sqlite":
        fts_name = f"{store.backend.prefix}articles_search"
        fts = sa.table(fts_name, sa.column("rowid"), sa.column("rank"))
        docs = sa.table(f"{fts_name}_docs", sa.column("doc_id"), sa.column("article_id"))
        # ORDER BY the FTS5 rank alone (the weighted bm25 configured at install): FTS5 hands
        # rows over best first, so the join and the filter stop at the limit
        stmt = (
            store._select.add_columns((-fts.c.rank).label("score"))
            .select_from(
                fts.join(docs, docs.c.doc_id == fts.c.rowid).join(
                    table, table.c.id == docs.c.article_id
                )
            )
            .where(sa.text(f"{_q(fts_name)} MATCH :_match"))
            .order_by(fts.c.rank)
        )
        cached[1] = stmt
        return stmt
    vector: Any = sa.literal_column(pg_vector(store.entity.collection))
    config: Any = sa.literal_column(f"'{PG_CONFIG}'::regconfig")
    query: Any = None
    for i in range(count):
        part = sa.func.plainto_tsquery(config, sa.bindparam(f"_term{i}", type_=sa.Text))
        query = part if query is None else query.op("||")(part)
    rank = sa.func.ts_rank_cd(vector, query, type_=sa.Float)
    stmt = (
        store._select.add_columns(rank.label("score"))
        .where(vector.op("@@")(query))
        .order_by(rank.desc(), table.c.id)
    )
    cached[count] = stmt
    return stmt
