"""Alembic environment of crmkit's migrations: runs on the connection it is given."""

from __future__ import annotations

from alembic import context

from crmkit.backends.sql.schema import make_metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError(
        "crmkit's migrations run through SqlBackend.upgrade_schema() / CRM.upgrade_schema()"
    )
prefix = config.attributes.get("crmkit_prefix", "crm_")
schema = config.attributes.get("crmkit_schema")

context.configure(
    connection=connection,
    target_metadata=make_metadata(prefix, schema),
    version_table=f"{prefix}alembic_version",
    version_table_schema=schema,
    include_schemas=schema is not None,
)
with context.begin_transaction():
    context.run_migrations()
