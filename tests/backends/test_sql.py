"""The SQL backend: the conformance suite on SQLite (file and memory) and PostgreSQL, plus
what only SQL has (schema, migrations, query plans, embedding, multi-process writers)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import crmkit
from crmkit.backends.sql import SqlBackend
from crmkit.testing.conformance import ConformanceSuite

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _backend(crm: crmkit.CRM) -> SqlBackend:
    backend = crm.backend
    assert isinstance(backend, SqlBackend)
    return backend


# --- the conformance suite --------------------------------------------------------------------


class TestSqliteFile(ConformanceSuite):
    """Every conformance test on a SQLite file (WAL, pooled connections)."""

    @pytest.fixture
    def crm(self, tmp_path: pathlib.Path) -> Iterator[crmkit.CRM]:
        """A fresh SQLite file per test."""
        crm = crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}")
        yield crm
        crm.close()


class TestSqliteMemory(ConformanceSuite):
    """Every conformance test on an in-memory SQLite database (``sqlite://``)."""

    @pytest.fixture
    def crm(self) -> Iterator[crmkit.CRM]:
        """A fresh in-memory database per test."""
        crm = crmkit.connect("sqlite://")
        yield crm
        crm.close()


@pytest.fixture(scope="session")
def pg_schema(postgres_url: str) -> Iterator[str]:
    """crmkit's tables, created once per session on the test server (prefix ``t_``)."""
    crm = crmkit.connect(postgres_url, prefix="t_")
    yield postgres_url
    _backend(crm).drop_schema()
    crm.close()


def _truncate(backend: SqlBackend) -> None:
    names = ", ".join(
        sa.Table(t.name, sa.MetaData(), schema=t.schema).fullname
        for t in backend.metadata.sorted_tables
    )
    with backend.transaction(), backend.writing() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names}")


class TestPostgres(ConformanceSuite):
    """Every conformance test on a real PostgreSQL server (tables emptied per test)."""

    @pytest.fixture
    def crm(self, pg_schema: str) -> Iterator[crmkit.CRM]:
        """The session's tables, truncated: an empty CRM without re-creating anything."""
        crm = crmkit.connect(pg_schema, prefix="t_", create_schema=False)
        _truncate(_backend(crm))
        yield crm
        crm.close()
