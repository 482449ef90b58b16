"""The SQL backend: crmkit's stores on SQLAlchemy Core, for SQLite and PostgreSQL.

Connections and transactions
----------------------------

- Opened from a URL, the backend owns its engine. On SQLite it takes over transaction
  control from the ``sqlite3`` module (SQLAlchemy's documented recipe): reads run without a
  transaction, writes in ``BEGIN IMMEDIATE`` (so concurrent writers, threads or processes,
  queue on the busy timeout instead of failing on a stale snapshot), the database is in WAL
  mode (readers never block the writer), and ``SAVEPOINT`` works. ``sqlite://`` (in memory)
  is one connection shared by all threads, serialized by a lock.
- :meth:`SqlBackend.transaction` binds one connection to the calling thread for its
  duration; every store call in that thread joins it, and a nested ``transaction()`` is a
  ``SAVEPOINT``. A multi-statement write inside a transaction runs in its own savepoint,
  so a failed write leaves no partial rows even if the caller catches the error.
- Embedded (the host passes a ``Connection`` or ``Session``): when the host's connection is
  already in a transaction, crmkit's writes join it inside a savepoint and never commit or
  roll back the host's transaction: commit and rollback belong to the host. When it is not
  in a transaction, crmkit begins and commits one per call (or per ``transaction()``).
  A host ``Engine`` is used like a URL-opened one, except that crmkit does not change its
  connection setup. On SQLite, crmkit sends ``BEGIN`` itself when the driver has not yet
  (see :func:`_ensure_begun`), so savepoints nest correctly without SQLAlchemy's "pysqlite
  SAVEPOINT" recipe on the host's engine.

Optimistic locking is ``UPDATE ... WHERE id = :id AND version = :expected``: zero rows means
a concurrent writer won (``ConflictError``) or the record is gone (``NotFound``).

Errors: ``IntegrityError`` becomes ``ConflictError``; every other SQLAlchemy or driver error
(locked database, lost connection...) becomes ``BackendError`` with the original chained.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from itertools import chain
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from crmkit.backends.sql import related_aggregate, search
from crmkit.backends.sql.compile import FOLD_FUNCTION, FilterCompiler, fold
from crmkit.backends.sql.schema import DEFAULT_PREFIX, EntityLayout, make_metadata
from crmkit.entities import Entity
from crmkit.errors import BackendError, ConflictError, NotFound, ValidationError
from crmkit.query import And, Cursor, Expr, Query

__all__ = ["DRIVER_ERRORS", "SqlBackend", "SqlStore", "open_backend", "translate_errors"]

E = TypeVar("E", bound=Entity)


_errors: list[type[BaseException]] = [sqlite3.Error]
_integrity: list[type[BaseException]] = [sqlite3.IntegrityError]
try:  # pragma: no cover - psycopg is an optional extra
    import psycopg

    _errors.append(psycopg.Error)
    _integrity.append(psycopg.IntegrityError)
except ImportError:  # pragma: no cover
    pass
#: Raw driver exception types that must never escape (SQLAlchemy wraps most of them).
DRIVER_ERRORS: tuple[type[BaseException], ...] = tuple(_errors)
# what a driver raises for a constraint violation when crmkit talks to it directly (COPY)
_DRIVER_INTEGRITY: tuple[type[BaseException], ...] = tuple(_integrity)
_IGNORABLE: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError, *DRIVER_ERRORS)

_GET_MANY_CHUNK = 500


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Map SQLAlchemy/driver errors raised inside the block to crmkit errors.

    ``IntegrityError`` -> :class:`ConflictError`; anything else from SQLAlchemy or a driver
    -> :class:`BackendError`, the original chained as ``__cause__``.
    """
    try:
        yield
    except sa_exc.IntegrityError as exc:
        raise ConflictError(f"{action}: {exc.orig}") from exc
    except _DRIVER_INTEGRITY as exc:
        raise ConflictError(f"{action}: {exc}") from exc
    except _IGNORABLE as exc:
        detail = getattr(exc, "orig", None) or exc
        raise BackendError(f"{action} failed: {detail}") from exc


def _ensure_begun(conn: Connection) -> None:
    """Make sure SQLite really is in the transaction SQLAlchemy thinks it began.

    Left to itself, ``sqlite3`` (pysqlite) sends no ``BEGIN`` until the first INSERT or
    UPDATE, so a ``SAVEPOINT`` sent first opens the transaction itself and its ``RELEASE``
    commits everything, behind the back of the transaction (crmkit's or a host's) around
    it. crmkit's own engines emit ``BEGIN`` themselves; a host's engine, connection or
    session usually does not (SQLAlchemy's "pysqlite SAVEPOINT" recipe is opt-in), so emit
    it here when the driver has not.
    """
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.dbapi_connection
    if not getattr(raw, "in_transaction", True):
        conn.exec_driver_sql("BEGIN")


def _begin_nested(conn: Connection) -> Any:
    """``conn.begin_nested()``, inside a transaction the database knows about."""
    _ensure_begun(conn)
    return conn.begin_nested()


# --- connection sources ---------------------------------------------------------------------


class _Source:
    """Where a backend gets connections, and how it begins/ends its own transactions."""

    dialect: str
    lock: AbstractContextManager[Any]

    def outer(self) -> AbstractContextManager[Connection]:
        """A connection in a transaction crmkit may commit (or a savepoint in the host's)."""
        raise NotImplementedError

    def read(self) -> AbstractContextManager[Connection]:
        """A connection to read with, outside any crmkit transaction."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what this source owns."""


@contextmanager
def _finish(tx: Any) -> Iterator[None]:
    """Commit ``tx`` on normal exit, roll it back (quietly) when the block raises."""
    try:
        yield
    except BaseException:
        if tx.is_active:
            with suppress(*_IGNORABLE):
                tx.rollback()
        raise
    with translate_errors("commit"):
        tx.commit()


class _EngineSource(_Source):
    def __init__(self, engine: Engine, *, owned: bool) -> None:
        self.engine = engine
        self.owned = owned
        self.dialect = engine.dialect.name
        # one shared in-memory SQLite connection: serialize its users
        shared = isinstance(engine.pool, StaticPool)
        self.lock = threading.RLock() if shared else nullcontext()
        self._controls_begin = owned and self.dialect == "sqlite"

    @contextmanager
    def outer(self) -> Iterator[Connection]:
        with self.lock:
            with translate_errors("begin transaction"):
                conn = self.engine.connect()
            try:
                with translate_errors("begin transaction"):
                    if self._controls_begin:
                        conn.execution_options(crmkit_begin="BEGIN IMMEDIATE")
                    tx = conn.begin()
                    if not self._controls_begin:
                        _ensure_begun(conn)
                with _finish(tx):
                    yield conn
            finally:
                with suppress(*_IGNORABLE):
                    conn.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.lock:
            with translate_errors("connect"):
                conn = self.engine.connect()
                if self._controls_begin:
                    conn.execution_options(crmkit_begin="")
            try:
                yield conn
            finally:
                with suppress(*_IGNORABLE):
                    conn.close()

    def close(self) -> None:
        if self.owned:
            self.engine.dispose()


class _ConnectionSource(_Source):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.lock = threading.RLock()

    @contextmanager
    def outer(self) -> Iterator[Connection]:
        conn = self.conn
        with self.lock:
            with translate_errors("begin transaction"):
                if conn.in_transaction():
                    tx = _begin_nested(conn)
                else:
                    tx = conn.begin()
                    _ensure_begun(conn)
            with _finish(tx):
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        conn = self.conn
        with self.lock:
            if conn.in_transaction():
                yield conn
                return
            with translate_errors("begin transaction"):
                tx = conn.begin()
            with _finish(tx):
                yield conn


class _SessionSource(_Source):
    def __init__(self, session: Session) -> None:
        self.session = session
        bind = session.get_bind()
        self.dialect = bind.dialect.name
        self.lock = threading.RLock()

    @contextmanager
    def outer(self) -> Iterator[Connection]:
        session = self.session
        with self.lock:
            if session.in_transaction():
                with translate_errors("begin transaction"):
                    conn = session.connection()
                    tx: Any = _begin_nested(conn)
            else:
                with translate_errors("begin transaction"):
                    tx = session.begin()
                    conn = session.connection()
                    _ensure_begun(conn)
            with _finish(tx):
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        session = self.session
        with self.lock:
            if session.in_transaction():
                with translate_errors("connect"):
                    conn = session.connection()
                yield conn
                return
            with translate_errors("begin transaction"):
                tx = session.begin()
                conn = session.connection()
            with _finish(tx):
                yield conn


def _configure_sqlite(engine: Engine, *, wal: bool, busy_timeout_ms: int) -> None:
    """SQLAlchemy's pysqlite recipe (we emit BEGIN), WAL, busy timeout, FKs, secure_delete,
    fold()."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # freed space is overwritten with zeros: erased personal data leaves no bytes behind
        # (crmkit.privacy); costs a little write time on deletes and updates
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()
        dbapi_conn.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)
        _install_trig(dbapi_conn)
        related_aggregate.install(dbapi_conn)

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        statement = conn.get_execution_options().get("crmkit_begin", "BEGIN")
        if statement:
            conn.exec_driver_sql(statement)


# --- the backend ------------------------------------------------------------------------------

# Building the tables and the entity layouts takes tens of milliseconds, and an embedding
# application may open crmkit on each request's Session: both are built once per process
# (they are never changed after construction).


@functools.lru_cache(maxsize=64)
def _shared_metadata(prefix: str, schema: str | None) -> sa.MetaData:
    return make_metadata(prefix, schema)


def _metadata(prefix: Any, schema: Any) -> sa.MetaData:
    if isinstance(prefix, str) and (schema is None or isinstance(schema, str)):
        return _shared_metadata(prefix, schema)
    return make_metadata(prefix, schema)  # raises the ValidationError


@functools.lru_cache(maxsize=1024)
def _layout(entity: type[Entity], metadata: sa.MetaData, dialect: str) -> EntityLayout:
    return EntityLayout(entity, metadata, dialect)


class SqlBackend:
    """crmkit's storage on a SQL database through SQLAlchemy Core (SQLite, PostgreSQL).

    Build one with :func:`open_backend` (``crmkit.connect`` does). ``prefix`` and ``schema``
    choose the table names (see :func:`crmkit.backends.sql.make_metadata`); the tables are in
    :attr:`metadata`, shared by every backend with the same prefix and schema (read it, do
    not add to it: a host's migrations use :func:`~crmkit.backends.sql.make_metadata`).
    """

    name = "sql"

    def __init__(
        self,
        source: _Source,
        *,
        prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
    ) -> None:
        self._source = source
        self.dialect: str = source.dialect
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValidationError(
                "url", self.dialect, "is not a supported SQL dialect (sqlite, postgresql)"
            )
        self.prefix = prefix
        self.schema = schema
        self.metadata = _metadata(prefix, schema)
        self._local = threading.local()
        self._stores: dict[type[Entity], SqlStore[Any]] = {}
        self._fold_collation: str | None = None
        self._closed = False
        if self.dialect == "postgresql":
            self._fold_collation = self._find_fold_collation()

    def __repr__(self) -> str:
        return f"<SqlBackend {self.dialect} prefix={self.prefix!r}>"

    @property
    def engine(self) -> Engine | None:
        """The engine when the backend was opened on a URL or an ``Engine``."""
        return self._source.engine if isinstance(self._source, _EngineSource) else None

    def _find_fold_collation(self) -> str | None:
        with translate_errors("inspect collations"), self.reading() as conn:
            found = conn.execute(
                sa.text("SELECT collname FROM pg_collation WHERE collname = 'und-x-icu'")
            ).first()
        return "und-x-icu" if found is not None else None

    def store(self, entity: type[E]) -> SqlStore[E]:
        """The store of ``entity``'s records."""
        store = self._stores.get(entity)
        if store is None:
            store = self._stores[entity] = SqlStore(self, entity)
        return store

    # --- connections ------------------------------------------------------------------------

    def current(self) -> Connection | None:
        """The connection of the calling thread's open transaction, if any."""
        conn: Connection | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: commit on normal exit, roll back on an exception.

        A nested call is a SAVEPOINT. Inside a host's transaction (embedding) the outermost
        call is a savepoint too, and the host commits. Raises ``BackendError`` when the
        database cannot begin or commit.
        """
        conn = self.current()
        if conn is not None:
            with _savepoint(conn):
                yield
            return
        with self._source.outer() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection for one atomic write: its own transaction, or a savepoint in the
        caller's so that a failed write leaves nothing behind."""
        conn = self.current()
        if conn is None:
            with self.transaction():
                conn = self.current()
                assert conn is not None
                yield conn
            return
        with _savepoint(conn):
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads: the thread's transaction's, or a fresh one."""
        conn = self.current()
        if conn is not None:
            yield conn
            return
        with self._source.read() as conn:
            yield conn

    # --- schema -----------------------------------------------------------------------------

    @property
    def version_table(self) -> str:
        """Name of the table holding crmkit's Alembic revision (``crm_alembic_version``)."""
        return f"{self.prefix}alembic_version"

    def create_schema(self) -> None:
        """Create crmkit's tables and indexes if missing (idempotent).

        A database created here is stamped with the current migration revision, so a later
        :meth:`upgrade_schema` applies only newer migrations; one stamped by an older crmkit
        is upgraded (:meth:`upgrade_schema`). Raises ``BackendError``.
        """
        from crmkit.backends.sql.migrations import head_revision, upgrade

        with translate_errors("create schema"), self.writing() as conn:
            inspector = sa.inspect(conn)
            fresh = not inspector.has_table(f"{self.prefix}contacts", schema=self.schema)
            versions = _version_table(self.version_table, self.schema)
            stamped = inspector.has_table(self.version_table, schema=self.schema)
            if not fresh and stamped:
                revision = conn.execute(sa.select(versions.c.version_num)).scalar()
                if revision != head_revision():
                    # made by an older crmkit: its tables need the migrations (new columns
                    # of existing tables), which create_all could not add
                    upgrade(conn, prefix=self.prefix, schema=self.schema)
            self.metadata.create_all(conn)
            search.install(conn, prefix=self.prefix, schema=self.schema)
            if fresh and not stamped:
                versions.create(conn)
                conn.execute(versions.insert(), {"version_num": head_revision()})

    def upgrade_schema(self) -> None:
        """Apply crmkit's Alembic migrations up to the newest (creates an empty schema).

        Uses the version table :attr:`version_table`, so it never touches the host
        application's own ``alembic_version``. Raises ``BackendError``.
        """
        from crmkit.backends.sql.migrations import upgrade

        with translate_errors("upgrade schema"), self.writing() as conn:
            upgrade(conn, prefix=self.prefix, schema=self.schema)

    def drop_schema(self) -> None:
        """Drop crmkit's tables (and its version table). Raises ``BackendError``."""
        with translate_errors("drop schema"), self.writing() as conn:
            search.uninstall(conn, prefix=self.prefix, schema=self.schema)
            self.metadata.drop_all(conn)
            _version_table(self.version_table, self.schema).drop(conn, checkfirst=True)

    def close(self) -> None:
        """Release connections (an engine crmkit created is disposed). Idempotent."""
        if not self._closed:
            self._closed = True
            with translate_errors("close"):
                self._source.close()


def _version_table(name: str, schema: str | None) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(schema=schema),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    with translate_errors("savepoint"):
        sp = _begin_nested(conn)
    with _finish(sp):
        yield


# --- stores --------------------------------------------------------------------------------


class SqlStore(Generic[E]):
    """Records of one entity type in its table (and its list fields' child tables)."""

    def __init__(self, backend: SqlBackend, entity: type[E]) -> None:
        self.backend = backend
        self.entity = entity
        entity_type: Any = entity  # a class is hashable (mypy cannot tell for type[E])
        self.layout = layout = _layout(entity_type, backend.metadata, backend.dialect)
        self.compiler = FilterCompiler(layout, backend.dialect, backend._fold_collation)
        self._sqlite = backend.dialect == "sqlite"
        table = self.table = layout.table
        c = table.c
        # JSON columns are selected as the driver returns them (text on SQLite): from_row
        # decodes them itself, and SQLAlchemy's JSON result processing would double the
        # cost of reading a row
        self._select = sa.select(*(_undecoded(col) for col in layout.columns))
        self._get = self._select.where(c.id == sa.bindparam("id"))
        self._get_many = self._select.where(c.id.in_(sa.bindparam("ids", expanding=True)))
        self._children = tuple(layout.children.items())
        self._child_clear = {
            f: t.delete().where(t.c.owner_id == sa.bindparam("_owner")) for f, t in self._children
        }
        self._lists = sa.select(c.version, *(c[f] for f, _ in self._children)).where(
            c.id == sa.bindparam("id")
        )
        if not self._sqlite:
            self._lists = self._lists.with_for_update()
        self._sql: _WriteSql | None = None
        self._version = sa.select(c.version).where(c.id == sa.bindparam("id"))
        self._delete = table.delete().where(c.id == sa.bindparam("_id"))
        self._delete_at = table.delete().where(
            c.id == sa.bindparam("_id"), c.version == sa.bindparam("_expected")
        )

    def __repr__(self) -> str:
        return f"<SqlStore {self.table.name}>"

    def _what(self, id: str) -> str:
        return f"{self.entity.__name__} {id!r}"

    # --- writes -----------------------------------------------------------------------------

    def _write_sql(self, conn: Connection) -> _WriteSql:
        if self._sql is None:
            self._sql = _WriteSql(self.layout, conn)
        return self._sql

    def insert(self, entities: Sequence[E]) -> None:
        """Store new records, all or none (see :class:`_Insert` for the statements).

        Raises ``ConflictError`` when an id exists already, ``BackendError``.
        """
        if not entities:
            return
        to_values = self.layout.to_values
        rows = [to_values(e) for e in entities]
        with translate_errors(f"insert into {self.table.name}"), self.backend.writing() as conn:
            sql = self._write_sql(conn)
            # driver-level statements built once from the metadata: values are already in
            # column form, so SQLAlchemy's per-row parameter processing would be pure overhead
            sql.insert.run(conn, rows)
            for field, _ in self._children:
                child_rows = self.layout.child_values(field, entities)
                if child_rows:
                    sql.child_insert[field].run(conn, child_rows)

    def replace(self, entity: E, expected_version: int) -> None:
        """Overwrite the record if still at ``expected_version`` (one conditional UPDATE).

        Raises ``NotFound``, ``ConflictError`` (stale version), ``BackendError``.
        """
        id = entity.id
        assert id is not None
        values = self.layout.to_values(entity)
        with translate_errors(f"update {self.table.name}"), self.backend.writing() as conn:
            sql = self._write_sql(conn)
            old = None
            if self._children:
                # the stored lists, to touch only the child rows that change; FOR UPDATE on
                # PostgreSQL (SQLite's writer already holds the database lock)
                old = conn.execute(self._lists, {"id": id}).first()
                if old is None:
                    raise NotFound(self.entity.collection, id)
                if old[0] != expected_version:
                    raise self._stale(id, old[0], expected_version)
            # UPDATE ... SET <every column but id> WHERE id = ? AND version = ?
            result = _execute(conn, sql.update, (*values[1:], id, expected_version))
            if result.rowcount != 1:
                self._missing_or_stale(conn, id, expected_version)
            if old is not None:
                elements = self.layout.elements
                for i, (field, _) in enumerate(self._children, start=1):
                    before = elements(field, old[i])
                    after = elements(field, getattr(entity, field))
                    if before == after:
                        continue
                    gone = set(before).difference(after)
                    new = [v for v in after if v not in before]
                    if gone:
                        _execute(conn, sql.child_remove[field], [(id, v) for v in gone])
                    if new:
                        sql.child_insert[field].run(conn, [(id, v) for v in new])

    def delete(self, id: str, expected_version: int | None = None) -> None:
        """Remove a record (only at ``expected_version`` when given) and its list rows.

        Raises ``NotFound``, ``ConflictError``, ``BackendError``.
        """
        if not _valid_id(id):
            raise NotFound(self.entity.collection, id)
        with translate_errors(f"delete from {self.table.name}"), self.backend.writing() as conn:
            if expected_version is None:
                result = conn.execute(self._delete, {"_id": id})
            else:
                result = conn.execute(self._delete_at, {"_id": id, "_expected": expected_version})
            if result.rowcount != 1:
                self._missing_or_stale(conn, id, expected_version)
            if self._sqlite:
                # ON DELETE CASCADE needs PRAGMA foreign_keys, which a host's engine may lack
                for field, _ in self._children:
                    conn.execute(self._child_clear[field], {"_owner": id})

    def _stale(self, id: str, current: int, expected: int | None) -> ConflictError:
        return ConflictError(f"{self._what(id)} is at version {current}, not {expected}")

    def _missing_or_stale(self, conn: Connection, id: str, expected: int | None) -> None:
        current = conn.execute(self._version, {"id": id}).scalar()
        if current is None:
            raise NotFound(self.entity.collection, id)
        raise self._stale(id, current, expected)

    # --- reads ------------------------------------------------------------------------------

    def get(self, id: str) -> E:
        """The record with ``id``; raises ``NotFound``, ``BackendError``."""
        if not _valid_id(id):
            raise NotFound(self.entity.collection, id)
        with translate_errors(f"read {self.table.name}"), self.backend.reading() as conn:
            row = conn.execute(self._get, {"id": id}).first()
        if row is None:
            raise NotFound(self.entity.collection, id)
        entity: E = self.layout.from_row(row)
        return entity

    def get_many(self, ids: Sequence[str]) -> list[E]:
        """The records among ``ids`` that exist (any order). Raises ``BackendError``."""
        wanted = [i for i in dict.fromkeys(ids) if _valid_id(i)]
        out: list[E] = []
        if not wanted:
            return out
        from_row = self.layout.from_row
        with translate_errors(f"read {self.table.name}"), self.backend.reading() as conn:
            for start in range(0, len(wanted), _GET_MANY_CHUNK):
                chunk = wanted[start : start + _GET_MANY_CHUNK]
                out.extend(from_row(r) for r in conn.execute(self._get_many, {"ids": chunk}))
        return out

    def _criteria(self, where: Expr | None) -> tuple[list[Any], bool]:
        """The ``WHERE`` criteria of ``where`` (one per item of a top-level ``And``) and
        whether SQLite needs the fold function.

        ``select.where(a, b)`` is the SQL of ``where(and_(a, b))`` but skips building the
        ``AND`` clause, a noticeable part of a lookup through a user view (its filter and
        the view's scope are two items)."""
        items = where.items if isinstance(where, And) and where.items else (where,)
        clauses: list[Any] = []
        needs_fold = False
        for item in items:
            compiled = self.compiler.compile(item)
            if compiled.clause is not None:
                clauses.append(compiled.clause)
            needs_fold = needs_fold or compiled.needs_fold
        return clauses, needs_fold

    def statement(self, query: Query) -> tuple[sa.Select[Any], bool]:
        """The ``SELECT`` of ``query`` and whether SQLite needs the fold function."""
        clauses, needs_fold = self._criteria(query.where)
        stmt = self._select
        if clauses:
            stmt = stmt.where(*clauses)
        stmt = stmt.order_by(*self.compiler.order_by(query.order))
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        if query.offset:
            stmt = stmt.offset(query.offset)
        return stmt, needs_fold

    def find(self, query: Query) -> list[E]:
        """Matching records, sorted and windowed in SQL. Raises ``BackendError``."""
        if query.limit == 0:
            return []
        stmt, needs_fold = self.statement(query)
        from_row = self.layout.from_row
        with translate_errors(f"query {self.table.name}"), self.backend.reading() as conn:
            if needs_fold:
                _install_fold(conn)
            rows = conn.execute(stmt).all()
        return [from_row(r) for r in rows]

    def iterate(self, query: Query, batch_size: int = 1000) -> Iterator[E]:
        """Matching records in batches of ``batch_size`` (keyset paging; bounded memory)."""
        remaining = query.limit
        where = query.where
        offset = query.offset
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            batch = self.find(Query(where=where, order=query.order, limit=size, offset=offset))
            yield from batch
            if len(batch) < size:
                return
            if remaining is not None:
                remaining -= len(batch)
            last = batch[-1]
            values = [_path_value(last, o.field) for o in query.order]
            after = Cursor.after(Cursor.encode(query.order, values), query.order)
            where = after if query.where is None else query.where & after
            offset = 0

    def count(self, where: Expr | None) -> int:
        """How many records match, counted in SQL. Raises ``BackendError``."""
        clauses, needs_fold = self._criteria(where)
        stmt = sa.select(sa.func.count()).select_from(self.table)
        if clauses:
            stmt = stmt.where(*clauses)
        with translate_errors(f"count {self.table.name}"), self.backend.reading() as conn:
            if needs_fold:
                _install_fold(conn)
            return int(conn.execute(stmt).scalar_one())

    def search(self, terms: Sequence[str], where: Expr | None, limit: int) -> list[tuple[E, float]]:
        """Ranked text search in the database (see :mod:`.search`). Raises ``BackendError``."""
        return search.search(self, terms, where, limit)

    def aggregate(self, where: Expr | None, group_by: Any, metrics: Any) -> list[dict[str, Any]]:
        """Groups and metrics computed in SQL (see :mod:`.aggregate`). Raises ``BackendError``."""
        from crmkit.backends.sql import aggregate

        # the fold function is installed on every SQLite connection below anyway
        stmt, _needs_fold = aggregate.aggregate_statement(self, where, group_by, metrics)
        with translate_errors(f"aggregate {self.table.name}"), self.backend.reading() as conn:
            if self._sqlite:
                _install_fold(conn)
                aggregate.install_decimal_aggregates(conn)
            rows = conn.execute(stmt).all()
        return aggregate.read_rows(self, rows, group_by, metrics)


class _WriteSql:
    """INSERT/UPDATE/DELETE text of one entity's tables for one dialect, built once."""

    def __init__(self, layout: EntityLayout, conn: Connection) -> None:
        dialect = conn.dialect
        quote = dialect.identifier_preparer
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        table = quote.format_table(layout.table)
        names = [quote.quote(c.name) for c in layout.columns]
        self.insert = _Insert(table, names, conn)
        assert names[0] == quote.quote("id")
        sets = ", ".join(f"{n} = {mark}" for n in names[1:])
        self.update = f"UPDATE {table} SET {sets} WHERE id = {mark} AND version = {mark}"
        self.child_insert: dict[str, _Insert] = {}
        self.child_remove: dict[str, str] = {}
        for field, child in layout.children.items():
            name = quote.format_table(child)
            self.child_insert[field] = _Insert(name, ["owner_id", "value"], conn)
            self.child_remove[field] = (
                f"DELETE FROM {name} WHERE owner_id = {mark} AND value = {mark}"
            )


#: Fewer rows than this are inserted with executemany even where COPY is available.
_COPY_FROM = 50

#: Rows per multi-row ``INSERT ... VALUES (...), (...)`` on SQLite, largest first. A batch is
#: cut into statements of these sizes (the rest, fewer than the smallest, by executemany), so
#: each table has at most this many statement texts and ``sqlite3``'s statement cache keeps
#: them compiled: compiling a statement costs ~5 µs per row in it, more than it saves.
_MULTI_ROWS = (256, 64, 16, 4)


class _Insert:
    """One table's INSERT for one connection's dialect.

    Many rows go in with COPY on PostgreSQL through psycopg 3 (several times faster than
    its executemany, which still sends one INSERT per row, pipelined) and as multi-row
    ``VALUES`` statements on SQLite (one statement steps once for 256 rows where
    executemany steps once per row: ~25% less time in SQLite for an import's rows,
    measured); otherwise, and for a few rows, executemany.
    """

    def __init__(self, table: str, names: Sequence[str], conn: Connection) -> None:
        dialect = conn.dialect
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(names)
        head = f"INSERT INTO {table} ({columns}) VALUES "
        row = f"({', '.join([mark] * len(names))})"
        #: The one-row statement (executemany's).
        self.one = head + row
        copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self._copy = f"COPY {table} ({columns}) FROM STDIN" if copy else None
        self._sizes: tuple[int, ...] = ()
        if dialect.name == "sqlite":
            raw: Any = conn.connection.dbapi_connection
            getlimit = getattr(raw, "getlimit", None)
            # 999 is the smallest limit SQLite was ever built with (before 3.32)
            limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 999
            self._sizes = tuple(n for n in _MULTI_ROWS if n * len(names) <= limit)
        self._texts = {n: head + ", ".join([row] * n) for n in self._sizes}

    def run(self, conn: Connection, rows: Sequence[Any]) -> None:
        """Insert ``rows`` (tuples in column order). Raises driver or SQLAlchemy errors
        (mapped by :func:`translate_errors`)."""
        if self._copy is not None and len(rows) >= _COPY_FROM:
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cursor, cursor.copy(self._copy) as loader:
                write = loader.write_row
                for row in rows:
                    write(row)
            return
        start, end = 0, len(rows)
        for size in self._sizes:
            text = self._texts[size]
            while end - start >= size:
                _execute(conn, text, tuple(chain.from_iterable(rows[start : start + size])))
                start += size
        if start < end:
            _execute(conn, self.one, rows[start:] if start else rows)


def _execute(conn: Connection, sql: str, params: Any) -> sa.CursorResult[Any]:
    """Run driver-level SQL (one tuple, or a list of tuples for executemany)."""
    return conn.exec_driver_sql(sql, params)


def _undecoded(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if isinstance(column.type, sa.JSON):
        return sa.type_coerce(column, sa.Text()).label(column.name)
    return column


def _valid_id(id: object) -> bool:
    return isinstance(id, str) and "\x00" not in id


def _install_fold(conn: Connection) -> None:
    """Register ``crmkit_lower``, the trigonometry ``within_km`` needs and the exact decimal
    functions of related aggregates on the DBAPI connection (host connections lack them)."""
    if conn.dialect.name == "sqlite":
        raw: Any = conn.connection.dbapi_connection
        raw.create_function(FOLD_FUNCTION, 1, fold, deterministic=True)
        _install_trig(raw)
        related_aggregate.install(raw)


def _install_trig(dbapi_conn: Any) -> None:
    """``sin``/``cos`` for ``within_km`` on a SQLite built without its math functions (the
    same C library functions Python's :mod:`math` calls)."""
    try:
        dbapi_conn.execute("SELECT sin(0), cos(0)").fetchall()
    except sqlite3.OperationalError:  # no such function
        dbapi_conn.create_function("sin", 1, _math_or_none(math.sin), deterministic=True)
        dbapi_conn.create_function("cos", 1, _math_or_none(math.cos), deterministic=True)


def _math_or_none(func: Callable[[float], float]) -> Callable[[Any], float | None]:
    def call(x: Any) -> float | None:
        return None if x is None else func(float(x))

    return call


def _path_value(entity: Any, path: str) -> Any:
    value = entity
    for part in path.split("."):
        if value is None:
            return None
        value = value.get(part) if hasattr(value, "get") else getattr(value, part)
    return value


# --- opening --------------------------------------------------------------------------------


class _Opener:
    """The ``crmkit.backends`` entry point for ``sqlite`` and ``postgresql`` URLs."""

    def __call__(
        self,
        target: Any,
        /,
        *,
        prefix: str = DEFAULT_PREFIX,
        schema: str | None = None,
        create_schema: bool = True,
        busy_timeout: float = 30.0,
        **engine_options: Any,
    ) -> SqlBackend:
        """Open a SQL backend on a URL, an ``Engine``, a ``Connection`` or a ``Session``.

        ``sqlite:///path.db`` (WAL, busy timeout ``busy_timeout`` seconds), ``sqlite://``
        (in memory), ``postgresql+psycopg://user@host/db`` or any SQLAlchemy URL of those
        dialects; other keyword options go to :func:`sqlalchemy.create_engine`. The schema
        is created when missing unless ``create_schema=False`` (hosts that run their own
        migrations). Raises ``ValidationError`` for a bad URL or option, ``BackendError``
        when the database cannot be reached.
        """
        if isinstance(target, str):
            source: _Source = _EngineSource(
                _create_engine(target, busy_timeout, engine_options), owned=True
            )
        else:
            if engine_options:
                raise ValidationError(
                    "options", sorted(engine_options), "apply only when crmkit opens a URL"
                )
            if isinstance(target, Engine):
                source = _EngineSource(target, owned=False)
            elif isinstance(target, Connection):
                source = _ConnectionSource(target)
            elif isinstance(target, Session):
                source = _SessionSource(target)
            else:
                raise ValidationError(
                    "target", target, "is not a URL, Engine, Connection or Session"
                )
        backend = SqlBackend(source, prefix=prefix, schema=schema)
        if create_schema:
            try:
                backend.create_schema()
            except BaseException:
                backend.close()
                raise
        return backend

    def accepts(self, obj: object) -> bool:
        """True for the objects this backend can use: SQLAlchemy ``Engine``, ``Connection``,
        ``Session``."""
        return isinstance(obj, Engine | Connection | Session)


def _create_engine(url: str, busy_timeout: float, options: dict[str, Any]) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ValidationError("url", url, f"is not a valid database URL ({exc})") from None
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise ValidationError("url", url, "is not a sqlite:// or postgresql:// URL")
    if backend == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        connect_args = dict(options.pop("connect_args", {}))
        connect_args.setdefault("check_same_thread", False)
        if memory:
            options.setdefault("poolclass", StaticPool)
        try:
            engine = sa.create_engine(parsed, connect_args=connect_args, **options)
        except (TypeError, sa_exc.ArgumentError) as exc:
            raise ValidationError("options", options, f"are not valid ({exc})") from None
        except ImportError as exc:  # pragma: no cover
            raise BackendError(f"the SQLite driver is not installed ({exc})") from exc
        _configure_sqlite(engine, wal=not memory, busy_timeout_ms=int(busy_timeout * 1000))
        return engine
    try:
        return sa.create_engine(parsed, **options)
    except (TypeError, sa_exc.ArgumentError) as exc:
        raise ValidationError("options", options, f"are not valid ({exc})") from None
    except ImportError as exc:
        raise BackendError(
            f"the PostgreSQL driver is not installed ({exc}); install 'crmkit[postgres]'"
        ) from exc


#: Entry point of the ``sqlite`` and ``postgresql`` URL schemes (see :class:`_Opener`).
open_backend = _Opener()
