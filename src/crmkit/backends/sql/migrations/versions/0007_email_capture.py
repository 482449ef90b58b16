"""Email capture: the message key, thread, participants, attachments, quoted text and
signature of interactions (see :mod:`crmkit.email`), with indexes on the message key and
thread. Columns that exist already are skipped.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_INDEXED = ("message_id", "thread_id")


def _new_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("message_id", TextType, nullable=True),
        sa.Column("thread_id", TextType, nullable=True),
        sa.Column("participants", JsonType, nullable=False, server_default="[]"),
        sa.Column("attachments", JsonType, nullable=False, server_default="[]"),
        sa.Column("quoted_text", TextType, nullable=True),
        sa.Column("signature", TextType, nullable=True),
    ]


def upgrade() -> None:
    """Add the email columns and indexes to the interactions table."""
    p, schema = prefix_and_schema()
    table = f"{p}interactions"
    inspector = sa.inspect(op.get_bind())
    sqlite = op.get_bind().dialect.name == "sqlite"
    present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
    for column in _new_columns():
        if column.name in present:
            continue
        # not batch mode: on SQLite that rebuilds the table, and dropping the old one
        # cascades into its child tables (contact_ids), deleting their rows
        op.add_column(table, column, schema=schema)
        if column.server_default is not None and not sqlite:
            op.alter_column(table, column.name, server_default=None, schema=schema)
    indexes = {i["name"] for i in inspector.get_indexes(table, schema=schema)}
    for name in _INDEXED:
        if f"ix_{table}_{name}" not in indexes:
            op.create_index(f"ix_{table}_{name}", table, [name], unique=False, schema=schema)


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    p, schema = prefix_and_schema()
    table = f"{p}interactions"
    for name in _INDEXED:
        op.drop_index(f"ix_{table}_{name}", table_name=table, schema=schema)
    for column in _new_columns():
        op.drop_column(table, column.name, schema=schema)
