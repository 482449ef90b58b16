"""The knowledge base's search logic (terms, the in-memory index) and what only the SQL
backends have (schema objects, migrations, the PostgreSQL index). Behaviour shared by every
backend is in :mod:`crmkit.testing.conformance_knowledge`."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from alembic import command as alembic_command

import crmkit
from crmkit import Article, ValidationError
from crmkit.backends.sql import SqlBackend
from crmkit.backends.sql.migrations import alembic_config
from crmkit.backends.sql.search import is_search_object
from crmkit.entities import ArticleStatus
from crmkit.knowledge import SearchHit
from crmkit.textsearch import MAX_TERMS, TextIndex, query_terms, rank, stem, words


@attrs.frozen
class Doc:
    title: str
    tags: tuple[str, ...] = ()
    body: str | None = None


FIELDS = (("title", 10.0), ("tags", 5.0), ("body", 1.0))


def test_query_terms_are_plain_lower_case_words_without_common_ones() -> None:
    assert query_terms('How do I "RESET" my password*?') == ("reset", "password")
    assert query_terms("NEAR(a b) AND c") == ("near", "b", "c")
    assert query_terms("reset reset Reset") == ("reset",)
    assert query_terms("the of and") == ()
    assert query_terms("über_résumé") == ("über", "résumé")
    assert len(query_terms(" ".join(f"w{i}" for i in range(200)))) == MAX_TERMS


@pytest.mark.parametrize("bad", ["", "  ", "\n\t", "*", '"()"', "-_-", None, 3, b"reset"])
def test_query_terms_without_any_word_are_invalid(bad: Any) -> None:
    with pytest.raises(ValidationError):
        query_terms(bad)


def test_words_and_stems() -> None:
    assert words("Sign-in: e-mail_2FA") == ["sign", "in", "e", "mail", "2fa"]
    assert stem("passwords") == stem("password") == "password"
    assert stem("resetting") == "reset"


def test_text_index_ranks_title_over_body_and_forgets_removed_records() -> None:
    index = TextIndex(FIELDS)
    index.add("a", Doc(title="Webhook guide", body="How to begin"))
    index.add("b", Doc(title="Getting started", body="Configure the webhook"))
    index.add("c", Doc(title="Other", tags=("webhooks",)))
    scores = index.scores(["webhook"])
    assert [id for id, _ in rank(scores, 10)] == ["a", "c", "b"]
    index.remove("a")
    index.remove("a")  # no-op
    assert set(index.scores(["webhook"])) == {"b", "c"}
    index.add("b", Doc(title="Replaced"))  # re-adding replaces
    assert set(index.scores(["webhook", "replaced"])) == {"b", "c"}
    assert len(index) == 2
    assert rank({"x": 1.0, "a": 1.0, "m": 2.0}, 2) == [("m", 2.0), ("a", 1.0)]


def test_empty_index_scores_nothing() -> None:
    assert TextIndex(FIELDS).scores(["anything"]) == {}


def test_search_hit_is_a_small_value() -> None:
    hit = SearchHit(Article(title="x"), 1.5)
    assert hit.score == 1.5
    assert hit == SearchHit(Article(title="x"), 1.5)


def test_is_search_object_names_only_the_search_objects() -> None:
    for name in ("crm_articles_search", "m_articles_search_docs", "ix_crm_articles_search"):
        assert is_search_object(name)
    for other in ("crm_articles", "crm_articles_tags", "ix_crm_articles_owner_id", None):
        assert not is_search_object(other)


# --- SQL: schema objects and migrations --------------------------------------------------------


def _backend(crm: crmkit.CRM) -> SqlBackend:
    backend = crm.backend
    assert isinstance(backend, SqlBackend)
    return backend


def test_sqlite_migration_indexes_the_articles_already_stored(tmp_path: pathlib.Path) -> None:
    """Downgrading below the search revision drops the index; upgrading rebuilds it from
    the stored articles; drop_schema removes it with the tables."""
    url = f"sqlite:///{tmp_path / 'kb.db'}"
    crm = crmkit.connect(url)
    backend = _backend(crm)
    stored = crm.articles.add(Article(title="Reset a password", status=ArticleStatus.PUBLISHED))
    with backend.transaction(), backend.writing() as conn:
        alembic_command.downgrade(alembic_config(conn, prefix="crm_", schema=None), "0004")
        assert not _has_table(conn, "crm_articles_search")
    crm.upgrade_schema()
    assert [h.article for h in crm.articles.search("password")] == [stored]
    backend.drop_schema()
    with backend.reading() as conn:
        assert not _has_table(conn, "crm_articles_search")
    crm.create_schema()
    assert crm.articles.search("password") == []
    crm.close()


def _has_table(conn: sa.Connection, name: str) -> bool:
    return bool(
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = ?", (name,)).scalar()
    )


@pytest.fixture
def postgres_kb(postgres_url: str) -> Iterator[crmkit.CRM]:
    """300 articles on the PostgreSQL server (prefix ``kb_``)."""
    crm = crmkit.connect(postgres_url, prefix="kb_")
    crm.articles.add_many(
        Article(title=f"Article {i}", body=f"word{i} text", status=ArticleStatus.PUBLISHED)
        for i in range(300)
    )
    yield crm
    _backend(crm).drop_schema()
    crm.close()


def test_postgres_search_uses_the_gin_index(postgres_kb: crmkit.CRM) -> None:
    engine = _backend(postgres_kb).engine
    assert engine is not None
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        hits = postgres_kb.articles.search("word42")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert [h.article.title for h in hits] == ["Article 42"]
    statement, parameters = next((s, p) for s, p in sent if "ts_rank_cd" in s)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
    assert any("ix_kb_articles_search" in row[0] for row in plan), plan
