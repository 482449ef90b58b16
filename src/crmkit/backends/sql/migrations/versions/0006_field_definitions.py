"""Custom field definitions: the declared keys of ``custom`` and their rules.

Adds the ``field_definitions`` table (:class:`crmkit.entities.FieldDefinition`). Skipped
when the table already exists: ``create_schema`` builds a fresh database from the current
metadata, so a database it created has it.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Create the field definitions table and its indexes (``record_collection``, ``name``)."""
    p, schema = prefix_and_schema()
    if sa.inspect(op.get_bind()).has_table(f"{p}field_definitions", schema=schema):
        return
    op.create_table(
        f"{p}field_definitions",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.Column("record_collection", TextType, nullable=True),
        sa.Column("name", TextType, nullable=True),
        sa.Column("type", TextType, nullable=True),
        sa.Column("required", sa.Boolean(), nullable=True),
        sa.Column("indexed", sa.Boolean(), nullable=True),
        sa.Column("label", TextType, nullable=True),
        sa.Column("sensitivity", TextType, nullable=True),
        sa.Column("options", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}field_definitions_record_collection",
        f"{p}field_definitions",
        ["record_collection"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}field_definitions_name",
        f"{p}field_definitions",
        ["name"],
        unique=False,
        schema=schema,
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    p, schema = prefix_and_schema()
    op.drop_index(
        f"ix_{p}field_definitions_name", table_name=f"{p}field_definitions", schema=schema
    )
    op.drop_index(
        f"ix_{p}field_definitions_record_collection",
        table_name=f"{p}field_definitions",
        schema=schema,
    )
    op.drop_table(f"{p}field_definitions", schema=schema)
