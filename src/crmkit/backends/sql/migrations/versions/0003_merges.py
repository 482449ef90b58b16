"""Merges: the record of each merge of duplicates, kept so that it can be undone.

Adds the ``merges`` table (:class:`crmkit.entities.MergeRecord`) and its
``merges_merged_ids`` list table. Skipped when the table already exists: ``create_schema``
builds a fresh database from the current metadata, so a database it created has it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_INDEXED = ("actor_id", "owner_id", "record_collection", "survivor_id", "team_id")


def upgrade() -> None:
    """Create the merges table, its merged ids table and their indexes."""
    p, schema = prefix_and_schema()
    s = f"{schema}." if schema else ""
    if sa.inspect(op.get_bind()).has_table(f"{p}merges", schema=schema):
        return
    op.create_table(
        f"{p}merges",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.Column("record_collection", TextType, nullable=True),
        sa.Column("survivor_id", TextType, nullable=True),
        sa.Column("merged_ids", JsonType, nullable=False),
        sa.Column("snapshot", JsonType, nullable=False),
        sa.Column("rules", JsonType, nullable=False),
        sa.Column("actor_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("merged_at", _DATETIME, nullable=True),
        sa.Column("unmerged_at", _DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    for name in _INDEXED:
        op.create_index(f"ix_{p}merges_{name}", f"{p}merges", [name], unique=False, schema=schema)
    op.create_table(
        f"{p}merges_merged_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}merges.id"],
            name=f"fk_{p}merges_merged_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}merges_merged_ids_value",
        f"{p}merges_merged_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    p, schema = prefix_and_schema()
    op.drop_index(
        f"ix_{p}merges_merged_ids_value", table_name=f"{p}merges_merged_ids", schema=schema
    )
    op.drop_table(f"{p}merges_merged_ids", schema=schema)
    for name in _INDEXED:
        op.drop_index(f"ix_{p}merges_{name}", table_name=f"{p}merges", schema=schema)
    op.drop_table(f"{p}merges", schema=schema)
