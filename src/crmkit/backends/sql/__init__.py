"""The SQL backend: SQLite (embedded default) and PostgreSQL, on SQLAlchemy 2.0 Core.

``crmkit.connect("sqlite:///crm.db")``, ``crmkit.connect("sqlite://")`` (in memory),
``crmkit.connect("postgresql+psycopg://user@host/db")``, or ``crmkit.connect(obj)`` with a
SQLAlchemy ``Engine``, ``Connection`` or ``Session`` of the host application (whose open
transaction crmkit's writes then join).

- :data:`metadata` / :func:`make_metadata` -- crmkit's tables, for a host's Alembic
  migrations (table prefix and PostgreSQL schema are options);
- :class:`SqlBackend` -- the backend; ``upgrade_schema()`` applies crmkit's own Alembic
  migrations (``crmkit/backends/sql/migrations``);
- :data:`open_backend` -- the ``crmkit.backends`` entry point.

Design notes (foreign keys, NULL handling, collations, embedding) are in the docstrings of
:mod:`~crmkit.backends.sql.schema`, :mod:`~crmkit.backends.sql.compile` and
:mod:`~crmkit.backends.sql.backend`.
"""

from __future__ import annotations

from crmkit.backends.sql.backend import SqlBackend, SqlStore, open_backend
from crmkit.backends.sql.schema import DEFAULT_PREFIX, make_metadata, metadata

__all__ = [
    "DEFAULT_PREFIX",
    "SqlBackend",
    "SqlStore",
    "make_metadata",
    "metadata",
    "open_backend",
]
