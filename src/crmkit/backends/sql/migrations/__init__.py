"""crmkit's own Alembic migrations for the SQL backend.

:meth:`crmkit.backends.sql.SqlBackend.upgrade_schema` (and ``CRM.upgrade_schema()``) runs
them on the backend's connection. The table prefix and PostgreSQL schema are passed to the
revision scripts, and the revision is kept in ``<prefix>alembic_version`` so it never meets
the host application's own ``alembic_version``.

Hosts that manage crmkit's tables with their *own* Alembic environment do not use these:
they add :func:`crmkit.backends.sql.make_metadata` to their ``target_metadata`` and open
crmkit with ``create_schema=False``.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

from sqlalchemy.engine import Connection

__all__ = ["DIRECTORY", "alembic_config", "head_revision", "prefix_and_schema", "upgrade"]

#: The Alembic script directory (``env.py``, ``versions/``).
DIRECTORY = pathlib.Path(__file__).resolve().parent


def alembic_config(conn: Connection, *, prefix: str, schema: str | None) -> Any:
    """An :class:`alembic.config.Config` running crmkit's scripts on ``conn``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(DIRECTORY))
    config.attributes["connection"] = conn
    config.attributes["crmkit_prefix"] = prefix
    config.attributes["crmkit_schema"] = schema
    return config


def upgrade(conn: Connection, *, prefix: str, schema: str | None, revision: str = "head") -> None:
    """Apply crmkit's migrations up to ``revision`` on ``conn`` (in its transaction).

    Raises whatever Alembic or the driver raises; the backend maps it to ``BackendError``.
    """
    from alembic import command

    command.upgrade(alembic_config(conn, prefix=prefix, schema=schema), revision)


@functools.cache
def head_revision() -> str:
    """The newest revision of crmkit's migrations (read from the scripts, once).

    :meth:`~crmkit.backends.sql.SqlBackend.create_schema` stamps a database it creates with
    it, so a new revision script is all a schema change needs.
    """
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(DIRECTORY)).get_current_head()
    assert head is not None, "crmkit's migrations have no head revision"
    return head


def prefix_and_schema() -> tuple[str, str | None]:
    """The table prefix and schema of the running migration (for revision scripts)."""
    from alembic import context

    attributes = context.config.attributes
    return attributes.get("crmkit_prefix", "crm_"), attributes.get("crmkit_schema")
