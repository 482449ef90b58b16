"""The SQL backend: the conformance suite on SQLite (file and memory) and PostgreSQL, plus
what only SQL has (schema, migrations, query plans, embedding, multi-process writers)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import pathlib
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import crmkit
from crmkit.aggregation import Metric
from crmkit.backends.sql import SqlBackend, make_metadata
from crmkit.backends.sql.migrations import alembic_config, head_revision
from crmkit.backends.sql.search import is_search_object
from crmkit.entities import Address, FieldDefinition, Money
from crmkit.privacy import CheckpointIncomplete
from crmkit.query import F
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


# --- opening on an existing Engine ------------------------------------------------------------


def _add_then_fail(crm: crmkit.CRM, name: str) -> None:
    with crm.transaction():
        crm.contacts.add(crmkit.Contact(first_name=name))
        raise RuntimeError("boom")


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def test_connect_with_an_existing_engine(tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    crm = crmkit.connect(engine)
    assert _backend(crm).engine is engine
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada", emails=["ada@example.com"]))
    assert crm.contacts.find(F.emails.contains("ada@example.com")) == [ada]
    crm.close()
    # the host's engine is not disposed: it still sees crmkit's rows
    assert _count(engine, "crm_contacts") == 1
    engine.dispose()


def test_exact_related_sums_on_a_host_engine(tmp_path: pathlib.Path) -> None:
    """A host's engine lacks crmkit's connect hook: the decimal functions of a related
    aggregate are registered on its connection before the query."""
    from decimal import Decimal

    from crmkit.entities import Money

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    crm = crmkit.connect(engine)
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
    crm.contacts.add(crmkit.Contact(first_name="Bea"))
    pipeline = crm.pipelines.add(
        crmkit.Pipeline(name="Sales", stages=[{"key": "new", "name": "New"}])
    )
    for cents in ("0.10", "0.20"):
        crm.deals.add(
            crmkit.Deal(
                name=cents,
                pipeline_id=pipeline.id or "",
                stage="new",
                amount=Money(amount=Decimal(cents), currency="EUR"),
                contact_ids=(ada.id or "",),
            )
        )
    total = F.related("deals").sum("amount.amount")
    assert crm.contacts.find(total == Decimal("0.30")) == [ada]  # not 0.30000000000000004
    assert [c.first_name for c in crm.contacts.find(total < 1, order_by="first_name")] == [
        "Ada",
        "Bea",
    ]
    crm.close()
    engine.dispose()


def test_host_engine_without_the_savepoint_recipe_keeps_transactions_atomic(
    tmp_path: pathlib.Path,
) -> None:
    """pysqlite emits no BEGIN before a SAVEPOINT, so SQLite's RELEASE would commit it."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    crm = crmkit.connect(engine)

    def nested_then_fail() -> None:
        with crm.transaction():
            with crm.transaction():
                crm.contacts.add(crmkit.Contact(first_name="Inner"))
            crm.contacts.add(crmkit.Contact(first_name="Outer"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        nested_then_fail()
    assert crm.contacts.count() == 0
    with crm.transaction():
        with pytest.raises(RuntimeError):
            _add_then_fail(crm, "Undone")
        crm.contacts.add(crmkit.Contact(first_name="Kept"))
    assert [c.first_name for c in crm.contacts.find()] == ["Kept"]
    crm.close()
    engine.dispose()


# --- embedding: crmkit joins the host's transaction ------------------------------------------


class _Base(DeclarativeBase):
    pass


class _Order(_Base):
    __tablename__ = "shop_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str]


@pytest.fixture(params=["sqlite", "postgresql"])
def host_engine(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[sa.Engine]:
    """A host application's engine (its own settings, no crmkit setup), with the host's
    table and crmkit's tables created (prefix ``emb_``)."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    else:
        engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    _Base.metadata.create_all(engine)
    crm = crmkit.connect(engine, prefix="emb_")
    crm.close()
    yield engine
    _Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        make_metadata("emb_").drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS emb_alembic_version")
    engine.dispose()


def _place_order(crm: crmkit.CRM, email: str) -> None:
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada", emails=[email]))
    crm.interactions.add(
        crmkit.Interaction(
            kind="note", subject="order", contact_ids=[ada.id], occurred_at=dt.datetime.now(dt.UTC)
        )
    )


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_crm_writes_join_a_host_connection_transaction(
    host_engine: sa.Engine, outcome: str
) -> None:
    with host_engine.connect() as conn:
        tx = conn.begin()
        conn.execute(sa.insert(_Order), {"email": "ada@example.com"})
        crm = crmkit.connect(conn, prefix="emb_", create_schema=False)
        _place_order(crm, "ada@example.com")
        # visible inside the host's transaction, through crmkit and through the host
        assert crm.contacts.count(F.emails.contains("ada@example.com")) == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM emb_interactions").scalar() == 1
        assert conn.in_transaction()  # crmkit neither committed nor ended it
        getattr(tx, outcome)()
        crm.close()
    expected = 1 if outcome == "commit" else 0
    assert _count(host_engine, "shop_orders") == expected
    assert _count(host_engine, "emb_contacts") == expected
    assert _count(host_engine, "emb_contacts_emails") == expected
    assert _count(host_engine, "emb_interactions") == expected


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_crm_writes_join_an_orm_session_transaction(host_engine: sa.Engine, outcome: str) -> None:
    with Session(host_engine) as session:
        session.begin()
        session.add(_Order(email="ada@example.com"))  # pending: not flushed before crmkit
        crm = crmkit.connect(session, prefix="emb_", create_schema=False)
        _place_order(crm, "ada@example.com")
        assert session.scalar(sa.select(sa.func.count()).select_from(_Order)) == 1
        assert session.in_transaction()
        getattr(session, outcome)()
        crm.close()
    expected = 1 if outcome == "commit" else 0
    assert _count(host_engine, "shop_orders") == expected
    assert _count(host_engine, "emb_contacts") == expected
    assert _count(host_engine, "emb_interactions") == expected


def test_a_failed_crm_write_leaves_the_host_transaction_usable(host_engine: sa.Engine) -> None:
    with Session(host_engine) as session, session.begin():
        session.add(_Order(email="ada@example.com"))
        crm = crmkit.connect(session, prefix="emb_", create_schema=False)
        ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
        crm.contacts.update(attrs.evolve(ada, title="CTO"))
        with pytest.raises(crmkit.ConflictError):
            crm.contacts.update(attrs.evolve(ada, title="CEO"))  # stale
        with pytest.raises(RuntimeError):
            _add_then_fail(crm, "Undone")
        session.add(_Order(email="bob@example.com"))
    # the host committed: its orders and crmkit's surviving writes, nothing else
    assert _count(host_engine, "shop_orders") == 2
    crm = crmkit.connect(host_engine, prefix="emb_", create_schema=False)
    assert [(c.first_name, c.title) for c in crm.contacts.find()] == [("Ada", "CTO")]
    crm.close()


def test_crm_on_a_host_connection_outside_a_transaction_commits_its_own(
    tmp_path: pathlib.Path,
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.connect() as conn:
        crm = crmkit.connect(conn)
        crm.contacts.add(crmkit.Contact(first_name="Ada"))
        assert not conn.in_transaction()
    assert _count(engine, "crm_contacts") == 1
    engine.dispose()


# --- the schema as metadata -------------------------------------------------------------------


def test_metadata_is_exposed_with_the_default_prefix() -> None:
    from crmkit.backends import sql

    names = set(sql.metadata.tables)
    assert {"crm_contacts", "crm_accounts", "crm_contacts_emails", "crm_contacts_phones"} <= names
    assert all(name.startswith("crm_") for name in names)
    emails = sql.metadata.tables["crm_contacts_emails"]
    assert {fk.target_fullname for fk in emails.foreign_keys} == {"crm_contacts.id"}
    indexed = {tuple(c.name for c in ix.columns) for ix in emails.indexes}
    assert ("value", "owner_id") in indexed
    accounts = sql.metadata.tables["crm_accounts"]
    assert any([c.name for c in ix.columns] == ["domain"] for ix in accounts.indexes)


def test_metadata_with_a_prefix_and_a_schema() -> None:
    md = make_metadata("shop_crm_", schema="crm")
    assert "crm.shop_crm_contacts" in md.tables
    child = md.tables["crm.shop_crm_contacts_emails"]
    assert {fk.target_fullname for fk in child.foreign_keys} == {"crm.shop_crm_contacts.id"}
    assert all(t.schema == "crm" for t in md.tables.values())
    with pytest.raises(crmkit.ValidationError):
        make_metadata("bad-prefix")


def test_postgres_schema_and_prefix(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS crmtest CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA crmtest")
    try:
        crm = crmkit.connect(postgres_url, prefix="p_", schema="crmtest")
        ada = crm.contacts.add(crmkit.Contact(first_name="Ada", emails=["ada@example.com"]))
        assert crm.contacts.find(F.emails.contains("ada@example.com")) == [ada]
        crm.close()
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names(schema="crmtest"))
        assert {"p_contacts", "p_contacts_emails", "p_alembic_version"} <= tables
        assert not any(t.startswith("p_") for t in inspector.get_table_names(schema="public"))
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA crmtest CASCADE")
        engine.dispose()


def test_host_alembic_autogenerate_sees_crmkit_tables(tmp_path: pathlib.Path) -> None:
    """A host's ``target_metadata`` includes crmkit's tables: autogenerate proposes them on
    an empty database and nothing once crmkit created them."""
    host = sa.MetaData()
    sa.Table("orders", host, sa.Column("id", sa.Integer, primary_key=True))
    target = [host, make_metadata("crm_")]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        added = {d[1].name for d in _diff(conn, target) if d[0] == "add_table"}
    assert {"orders", "crm_contacts", "crm_contacts_emails"} <= added
    host.create_all(engine)
    crmkit.connect(engine, prefix="crm_").close()
    with engine.begin() as conn:
        assert _diff(conn, target, ignore=frozenset({"crm_alembic_version"})) == []
    engine.dispose()


# --- migrations -------------------------------------------------------------------------------


def _diff(
    conn: sa.Connection,
    target: Any,
    *,
    schema: str | None = None,
    ignore: frozenset[str] = frozenset(),
) -> list[Any]:
    """Alembic's autogenerate comparison of the database with ``target`` metadata."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name == schema
        if is_search_object(name):  # the text index is kept outside the metadata
            return False
        return type_ != "table" or name not in ignore

    context = MigrationContext.configure(
        conn,
        opts={
            "compare_type": True,
            # SQLite cannot drop a column default without rebuilding the table, so NOT NULL
            # columns added by later migrations keep theirs there (see 0002)
            "compare_server_default": conn.dialect.name != "sqlite",
            "include_schemas": schema is not None,
            "include_name": include_name,
        },
    )
    return list(compare_metadata(context, target))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS crmmig CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA crmmig")
    yield url
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA crmmig CASCADE")
    engine.dispose()


def _schema_of(url: str) -> str | None:
    return None if url.startswith("sqlite") else "crmmig"


def test_upgrade_schema_on_an_empty_database_yields_exactly_the_metadata(empty_url: str) -> None:
    schema = _schema_of(empty_url)
    crm = crmkit.connect(empty_url, prefix="m_", schema=schema, create_schema=False)
    backend = _backend(crm)
    crm.upgrade_schema()
    with backend.transaction(), backend.reading() as conn:
        diff = _diff(conn, backend.metadata, schema=schema, ignore=frozenset({"m_alembic_version"}))
        version = conn.execute(
            sa.select(sa.column("version_num")).select_from(
                sa.table("m_alembic_version", schema=schema)
            )
        ).scalar_one()
    assert diff == []
    assert version == head_revision()
    crm.upgrade_schema()  # idempotent
    crm.close()


def test_create_schema_then_upgrade_schema_is_a_no_op(empty_url: str) -> None:
    schema = _schema_of(empty_url)
    crm = crmkit.connect(empty_url, prefix="m_", schema=schema)  # create_schema()
    backend = _backend(crm)
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
    engine = backend.engine
    assert engine is not None
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    crm.upgrade_schema()
    sa.event.remove(engine, "before_cursor_execute", record)
    ddl = [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))]
    assert ddl == []
    assert not any("INSERT" in s.upper() or "UPDATE" in s.upper() for s in statements)
    with backend.transaction(), backend.reading() as conn:
        assert (
            _diff(conn, backend.metadata, schema=schema, ignore=frozenset({"m_alembic_version"}))
            == []
        )
    assert crm.contacts.get(ada.id) == ada
    crm.close()


def test_migrations_keep_the_data_of_an_older_schema(empty_url: str) -> None:
    """A database at revision 0001 holding records: upgrading (by ``upgrade_schema`` or by
    ``connect``'s ``create_schema``) adds the new columns and tables and keeps every row."""
    schema = _schema_of(empty_url)
    crm = crmkit.connect(empty_url, prefix="m_", schema=schema)
    backend = _backend(crm)
    ada = crm.contacts.add(
        crmkit.Contact(first_name="Ada", emails=["ada@example.com"], external_ids={"shop": "C-1"})
    )
    deal = crm.deals.add(crmkit.Deal(name="Big one", contact_ids=[ada.id or ""]))
    for upgrade_by_connecting in (False, True):
        with backend.transaction(), backend.writing() as conn:
            alembic_command.downgrade(alembic_config(conn, prefix="m_", schema=schema), "0001")
        if upgrade_by_connecting:
            crm.close()
            crm = crmkit.connect(empty_url, prefix="m_", schema=schema)
            backend = _backend(crm)
        else:
            crm.upgrade_schema()
        with backend.transaction(), backend.reading() as conn:
            diff = _diff(
                conn, backend.metadata, schema=schema, ignore=frozenset({"m_alembic_version"})
            )
        assert diff == []
        assert crm.contacts.find(F.emails.contains("ada@example.com")) == [ada]
        assert crm.deals.get(deal.id or "") == deal
        # child-table rows survive too (a table rebuild on SQLite would cascade-delete them)
        assert crm.deals.find(F.contact_ids.contains(ada.id or "")) == [deal]
        # the child table of a text mapping is filled from its JSON column (0011)
        assert crm.contacts.find(F.external_ids.shop == "C-1") == [ada]
    crm.close()


def test_migration_scripts_end_at_the_head_revision() -> None:
    from alembic.script import ScriptDirectory

    from crmkit.backends.sql.migrations import DIRECTORY

    config = AlembicConfig()
    config.set_main_option("script_location", str(DIRECTORY))
    assert ScriptDirectory.from_config(config).get_heads() == [head_revision()]


# --- query plans: lookups by email, phone and domain use an index ------------------------------


LOOKUPS = [
    ("contacts", F.emails.contains("person500@example.com"), "ix_crm_contacts_emails_value"),
    ("contacts", F.phones.contains("+14155550500"), "ix_crm_contacts_phones_value"),
    ("accounts", F.domain == "example500.com", "ix_crm_accounts_domain"),
    (
        "contacts",
        F.external_ids.shop.in_(["C-500", "C-5000"]),
        "ix_crm_contacts_external_ids_value",
    ),
]


def _lookup_statements(crm: crmkit.CRM, collection: str, where: Any) -> list[tuple[str, Any]]:
    """The SQL (and parameters) crmkit sends for ``find(where)``."""
    engine = _backend(crm).engine
    assert engine is not None
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert len(crm.repository(collection).find(where)) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT")]


def _fill_for_lookups(crm: crmkit.CRM, n: int) -> None:
    crm.contacts.add_many(
        crmkit.Contact(
            first_name=f"P{i}",
            emails=[f"person{i}@example.com"],
            phones=[f"+1415555{i:04d}"],
            external_ids={"shop": f"C-{i}"},
        )
        for i in range(n)
    )
    crm.accounts.add_many(crmkit.Account(name=f"A{i}", domain=f"example{i}.com") for i in range(n))


@pytest.mark.parametrize(
    ("collection", "where", "index"), LOOKUPS, ids=["email", "phone", "domain", "external_id"]
)
def test_sqlite_lookups_use_an_index(
    sqlite_lookup_crm: crmkit.CRM, collection: str, where: Any, index: str
) -> None:
    engine = _backend(sqlite_lookup_crm).engine
    assert engine is not None
    (statement, parameters), *_ = _lookup_statements(sqlite_lookup_crm, collection, where)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    details = [row[-1] for row in plan]
    assert any(index in d for d in details), details
    assert not any(d.startswith("SCAN") and index not in d for d in details), details


@pytest.fixture(scope="module")
def sqlite_lookup_crm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[crmkit.CRM]:
    """A SQLite file with 1,000 contacts and accounts, analyzed like a real database."""
    crm = crmkit.connect(f"sqlite:///{tmp_path_factory.mktemp('plans') / 'crm.db'}")
    _fill_for_lookups(crm, 1000)
    engine = _backend(crm).engine
    assert engine is not None
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    yield crm
    crm.close()


@pytest.mark.parametrize(
    ("collection", "where", "index"), LOOKUPS, ids=["email", "phone", "domain", "external_id"]
)
def test_postgres_lookups_use_an_index(
    postgres_lookup_crm: crmkit.CRM, collection: str, where: Any, index: str
) -> None:
    engine = _backend(postgres_lookup_crm).engine
    assert engine is not None
    (statement, parameters), *_ = _lookup_statements(postgres_lookup_crm, collection, where)
    with engine.connect() as conn:
        # a small table: without this the planner rightly prefers reading it all
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
    assert index.replace("crm_", "plan_", 1) in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.fixture(scope="module")
def postgres_lookup_crm(postgres_url: str) -> Iterator[crmkit.CRM]:
    """1,000 contacts and accounts on the PostgreSQL server (prefix ``plan_``)."""
    crm = crmkit.connect(postgres_url, prefix="plan_")
    _fill_for_lookups(crm, 1000)
    yield crm
    _backend(crm).drop_schema()
    crm.close()


# --- concurrent writers lose no update --------------------------------------------------------


def increment(url: str, id: str, times: int) -> int:
    """Add 1 to contact ``id``'s ``custom["n"]`` ``times`` times (read, modify, write; retry
    on ConflictError). Returns the number of conflicts met. Module level for multiprocessing."""
    crm = crmkit.connect(url, create_schema=False)
    conflicts = 0
    try:
        for _ in range(times):
            while True:
                contact = crm.contacts.get(id)
                custom = {"n": contact.custom["n"] + 1}
                try:
                    crm.contacts.update(attrs.evolve(contact, custom=custom))
                    break
                except crmkit.ConflictError:
                    conflicts += 1
    finally:
        crm.close()
    return conflicts


def _counter(url: str) -> str:
    crm = crmkit.connect(url)
    id = crm.contacts.add(crmkit.Contact(first_name="Counter", custom={"n": 0})).id
    crm.close()
    assert id is not None
    return id


def _final(url: str, id: str) -> tuple[int, int]:
    crm = crmkit.connect(url, create_schema=False)
    contact = crm.contacts.get(id)
    crm.close()
    return contact.custom["n"], contact.version


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_threads_lose_no_update(
    database: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    workers, times = 4, 25
    if database == "postgresql":
        crm = crmkit.connect(url, prefix="conc_")
        id = crm.contacts.add(crmkit.Contact(first_name="Counter", custom={"n": 0})).id
        assert id is not None

        def run() -> int:
            conflicts = 0
            for _ in range(times):
                while True:
                    contact = crm.contacts.get(id)
                    try:
                        crm.contacts.update(
                            attrs.evolve(contact, custom={"n": contact.custom["n"] + 1})
                        )
                        break
                    except crmkit.ConflictError:
                        conflicts += 1
            return conflicts

        try:
            with ThreadPoolExecutor(workers) as pool:
                conflicts = sum(pool.map(lambda _: run(), range(workers)))
            final = crm.contacts.get(id)
            assert (final.custom["n"], final.version) == (workers * times, workers * times + 1)
        finally:
            _backend(crm).drop_schema()
            crm.close()
        return
    id = _counter(url)
    with ThreadPoolExecutor(workers) as pool:
        conflicts = sum(pool.map(increment, [url] * workers, [id] * workers, [times] * workers))
    assert _final(url, id) == (workers * times, workers * times + 1)
    assert conflicts >= 0


def test_concurrent_processes_on_one_sqlite_file_lose_no_update(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    id = _counter(url)
    workers, times = 3, 20
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        pool.starmap(increment, [(url, id, times)] * workers)
    assert _final(url, id) == (workers * times, workers * times + 1)


# --- driver errors become crmkit errors -------------------------------------------------------


def test_a_locked_sqlite_database_raises_backend_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "crm.db"
    crm = crmkit.connect(f"sqlite:///{path}", busy_timeout=0.2)
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        with pytest.raises(crmkit.BackendError, match="locked") as info:
            crm.contacts.add(crmkit.Contact(first_name="Bob"))
        assert isinstance(info.value.__cause__, sa_exc.OperationalError)
        with pytest.raises(crmkit.BackendError, match="locked"):
            crm.contacts.update(attrs.evolve(ada, title="CTO"))
        assert crm.contacts.get(ada.id) == ada  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert crm.contacts.update(attrs.evolve(ada, title="CTO")).version == 2
    crm.close()


def _file_bytes(path: pathlib.Path) -> bytes:
    """The bytes of a SQLite database file and its write-ahead log, read as they are."""
    files = [path, path.with_name(f"{path.name}-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_an_erasure_in_a_callers_transaction_leaves_no_bytes_once_it_commits(
    tmp_path: pathlib.Path,
) -> None:
    """The write-ahead log is checkpointed when the caller's transaction commits (not
    inside it, where the erasure is not committed yet), so the files hold no trace."""
    path = tmp_path / "crm.db"
    crm = crmkit.connect(f"sqlite:///{path}")
    grace = crm.contacts.add(crmkit.Contact(first_name="Qorvath", emails=["zq@example.com"]))
    crm.contacts.update(attrs.evolve(grace, title="Chief Qorvath officer"))
    with crm.transaction():
        crm.privacy.erase(grace.id or "")
        crm.accounts.add(crmkit.Account(name="Acme"))
    data = _file_bytes(path)
    assert b"Qorvath" not in data
    assert b"zq@example.com" not in data
    crm.close()


def test_an_erasure_warns_when_a_reader_keeps_the_old_pages(tmp_path: pathlib.Path) -> None:
    """Another connection reading an older snapshot stops the checkpoint from copying the
    log into the file: the erasure is committed, and CheckpointIncomplete says what is left."""
    path = tmp_path / "crm.db"
    crm = crmkit.connect(f"sqlite:///{path}", busy_timeout=0.2)
    grace = crm.contacts.add(crmkit.Contact(first_name="Qorvath"))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM crm_contacts").fetchall()  # holds its snapshot
    try:
        with pytest.warns(CheckpointIncomplete):
            crm.privacy.erase(grace.id or "")
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert crm.contacts.get(grace.id or "").erased_at is not None
    crm.close()


def test_a_closed_host_connection_raises_backend_error(tmp_path: pathlib.Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    conn = engine.connect()
    crm = crmkit.connect(conn)
    conn.close()
    with pytest.raises(crmkit.BackendError):
        crm.contacts.add(crmkit.Contact(first_name="Ada"))
    with pytest.raises(crmkit.BackendError):
        crm.contacts.find()
    engine.dispose()


def test_unreachable_databases_raise_backend_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(crmkit.BackendError):
        crmkit.connect(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'crm.db'}")
    with pytest.raises(crmkit.BackendError):
        crmkit.connect("postgresql+psycopg://nobody@127.0.0.1:1/nothing")


def test_a_lost_postgres_connection_raises_backend_error_then_recovers(pg_schema: str) -> None:
    crm = crmkit.connect(pg_schema, prefix="t_", create_schema=False)
    _truncate(_backend(crm))
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
    engine = _backend(crm).engine
    assert engine is not None
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    # the pooled connection crmkit will use next is killed by the server
    killer = sa.create_engine(pg_schema, poolclass=sa.pool.NullPool)
    with killer.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    killer.dispose()
    with pytest.raises(crmkit.BackendError) as info:
        crm.contacts.get(ada.id)
    assert isinstance(info.value.__cause__, sa_exc.OperationalError)
    assert crm.contacts.get(ada.id) == ada  # the pool reconnects
    crm.close()


def test_a_postgres_error_inside_a_transaction_is_a_crmkit_error(pg_schema: str) -> None:
    crm = crmkit.connect(pg_schema, prefix="t_", create_schema=False)
    _truncate(_backend(crm))
    ada = crm.contacts.add(crmkit.Contact(first_name="Ada"))
    store = _backend(crm).store(crmkit.Contact)
    with pytest.raises(crmkit.ConflictError), crm.transaction():
        store.insert([ada])  # the same id again: a unique violation
    assert crm.contacts.count() == 1
    crm.close()


@pytest.fixture(params=["sqlite", "sqlite-999-variables", "postgresql"])
def bulk_crm(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[crmkit.CRM]:
    """An empty CRM on each SQL path of bulk inserts: SQLite's multi-row ``VALUES``
    statements (also on a connection allowing only 999 variables per statement, the limit
    of SQLite before 3.32) and PostgreSQL's COPY."""
    if request.param == "postgresql":
        crm = crmkit.connect(request.getfixturevalue("pg_schema"), prefix="t_", create_schema=False)
        _truncate(_backend(crm))
        yield crm
        crm.close()
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    if request.param == "sqlite-999-variables":

        @event.listens_for(engine, "connect")
        def low_limit(dbapi_conn: sqlite3.Connection, _: object) -> None:
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    crm = crmkit.connect(engine)
    crm.create_schema()
    yield crm
    crm.close()
    engine.dispose()


def test_bulk_insert_round_trips_every_kind_of_value(bulk_crm: crmkit.CRM) -> None:
    """Batches cut into statements of every size (343 contacts: 256 + 64 + 16 + 4 rows in
    multi-row statements and 3 by executemany on SQLite; COPY on PostgreSQL) store every
    kind of value and every child row, and a duplicate id in a batch is a ConflictError
    that writes nothing."""
    crm = bulk_crm
    when = dt.datetime(2024, 5, 1, 9, 30, 0, 123000, tzinfo=dt.UTC)
    contacts = crm.contacts.add_many(
        crmkit.Contact(
            first_name=f"Zoë\t{i}",
            last_name='O\'Brien \\ "quoted"\nnewline',
            emails=[f"p{i}@example.com", f"q{i}@example.org"][: 1 + i % 2],
            phones=[f"+1415555{i:04d}"],
            address=Address(
                city="Zürich", latitude=Decimal("47.376900"), longitude=Decimal("8.5417")
            ),
            tags=["a", "b\tc"],
            lifecycle_stage="lead",
            do_not_contact=i % 2 == 0,
            custom={"n": i, "big": 3.5e16, "list": [1.5, "x\\y"], "none": None},
            external_ids={"erp": f"E{i}"},
        )
        for i in range(343)
    )
    deals = crm.deals.add_many(
        crmkit.Deal(
            name=f"Deal {i}",
            amount=Money(amount=Decimal("1200.50"), currency="EUR"),
            probability=Decimal("0.25"),
            close_date=dt.date(2024, 12, 31),
            stage_entered_at=when,
            cycle_time=dt.timedelta(days=3, milliseconds=5),
            contact_ids=[contacts[i].id or ""],
        )
        for i in range(60)
    )
    by_id = {c.id: c for c in crm.contacts.get_many([c.id or "" for c in contacts])}
    assert [by_id[c.id] for c in contacts] == list(contacts)
    assert sorted(crm.deals.find(), key=lambda d: d.name) == sorted(deals, key=lambda d: d.name)
    for i in (0, 255, 256, 341, 342):  # the first and last rows of statements
        assert crm.contacts.find(F.phones.contains(f"+1415555{i:04d}")) == [contacts[i]]
    assert crm.contacts.find(F.emails.contains("q341@example.org")) == [contacts[341]]
    assert crm.contacts.count(F.emails.contains("q342@example.org")) == 0
    assert crm.deals.count(F.contact_ids.contains(contacts[3].id or "")) == 1
    assert len(crm.audit_log.find(F.record_collection == "contacts")) == 343
    store = _backend(crm).store(crmkit.Contact)
    fresh = [attrs.evolve(c, id=f"new{i}") for i, c in enumerate(contacts[:299])]
    with pytest.raises(crmkit.ConflictError):
        store.insert([*fresh, contacts[0]])  # one id exists already, in the last statement
    with pytest.raises(crmkit.ConflictError):
        store.insert([*fresh[:100], contacts[0], *fresh[100:]])  # ... in the first one
    assert crm.contacts.count() == 343
    assert crm.contacts.count(F.emails.contains("p0@example.com")) == 1


# --- custom fields: expression indexes ---------------------------------------------------------

CUSTOM_LOOKUPS = [
    (F.custom.tier == "t500", "custom_tier"),
    (F.custom.score == 500, "custom_score"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def custom_index_crm(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[crmkit.CRM]:
    """1,000 contacts with indexed custom fields ``tier`` (text) and ``score`` (integer)."""
    if request.param == "sqlite":
        crm = crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}")
    else:
        crm = crmkit.connect(request.getfixturevalue("postgres_url"), prefix="cfx_")
    crm.schema.define_field("contacts", "tier", "text", indexed=True)
    crm.schema.define_field("contacts", "score", "integer", indexed=True)
    crm.contacts.add_many(
        crmkit.Contact(first_name=f"P{i}", custom={"tier": f"t{i}", "score": i})
        for i in range(1000)
    )
    engine = _backend(crm).engine
    assert engine is not None
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    yield crm
    if request.param == "postgresql":
        _backend(crm).drop_schema()
    crm.close()


@pytest.mark.parametrize(("where", "index"), CUSTOM_LOOKUPS, ids=["text", "integer"])
def test_custom_field_expression_index_is_used(
    custom_index_crm: crmkit.CRM, where: Any, index: str
) -> None:
    crm = custom_index_crm
    engine = _backend(crm).engine
    assert engine is not None
    (statement, parameters), *_ = _lookup_statements(crm, "contacts", where)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plan = "\n".join(str(row[-1]) for row in rows)
            assert "SCAN" not in plan.replace("SCAN CONSTANT", ""), plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
            plan = "\n".join(row[0] for row in rows)
            assert "Seq Scan" not in plan, plan
    assert index in plan, plan


@pytest.mark.parametrize("schema", [None, "cfschema"])
def test_postgres_custom_field_index_follows_a_new_type(
    postgres_url: str, schema: str | None
) -> None:
    # PostgreSQL indexes a number's expression (a cast) unlike a text's: a field removed and
    # defined again with another type gets an index its filters can use (in any schema)
    engine = sa.create_engine(postgres_url)
    if schema is not None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    crm = crmkit.connect(postgres_url, prefix="cfr_", schema=schema)
    try:
        crm.schema.define_field("contacts", "score", "text", indexed=True)
        crm.schema.remove_field("contacts", "score")
        crm.schema.define_field("contacts", "score", "integer", indexed=True)
        with engine.connect() as conn:
            (definition,) = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cfr_contacts_custom_score'"
            ).scalars()
        assert "numeric" in definition.lower()
    finally:
        _backend(crm).drop_schema()
        crm.close()
        if schema is not None:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_database_without_custom_field_definitions_can_be_read(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, dialect: str
) -> None:
    # a database from before custom fields (upgrade_schema not run): reads go on as if
    # nothing were defined, also inside a transaction (where PostgreSQL would abort it on
    # the failed lookup), and writes are not let through unchecked
    if dialect == "sqlite":
        crm = crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}")
    else:
        crm = crmkit.connect(request.getfixturevalue("postgres_url"), prefix="cfd_")
    try:
        crm.contacts.add(crmkit.Contact(first_name="Ada"))
        table = crm.backend.store(FieldDefinition).table  # type: ignore[attr-defined]
        engine = _backend(crm).engine
        assert engine is not None
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table.name}")
        crm.schema.refresh()
        with crm.transaction():
            assert [c.first_name for c in crm.contacts.find(order_by="first_name")] == ["Ada"]
            assert crm.contacts.aggregate(metrics=[Metric.count()]) == [{"count": 1}]
        assert crm.contacts.count() == 1
        with pytest.raises(crmkit.BackendError, match="field_definitions"):
            crm.contacts.add(crmkit.Contact(first_name="Bob"))
        assert crm.contacts.count() == 1
    finally:
        if dialect == "postgresql":
            _backend(crm).drop_schema()
        crm.close()


def test_a_failed_read_of_custom_field_definitions_is_not_remembered(
    tmp_path: pathlib.Path,
) -> None:
    # a read goes on without the definitions when they cannot be read, but the next one
    # asks again: a passing storage error does not switch the field rules off
    crm = crmkit.connect(f"sqlite:///{tmp_path / 'crm.db'}")
    crm.schema.define_field("contacts", "score", "integer")
    crm.schema.refresh()
    store = crm.backend.store(FieldDefinition)
    real = store.find
    calls = []

    def flaky(query: Any) -> Any:
        calls.append(query)
        if len(calls) == 1:
            raise crmkit.BackendError("find crm_field_definitions failed: database is locked")
        return real(query)

    store.find = flaky  # type: ignore[method-assign]
    assert crm.contacts.find(F.custom.score == "lots") == []  # read without the definitions
    with pytest.raises(crmkit.ValidationError, match=r"contact\.custom\.score"):
        crm.contacts.find(F.custom.score == "lots")
    assert [d.name for d in crm.schema.fields("contacts")] == ["score"]
    crm.close()
