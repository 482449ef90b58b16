"""Scoring models: the stored state of predictive lead scores.

Adds the ``scoring_models`` table (:class:`crmkit.entities.ScoringModel`). Skipped when
the table already exists: ``create_schema`` builds a fresh database from the current
metadata, so a database it created has it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    """Create the scoring models table and its index on ``name``."""
    p, schema = prefix_and_schema()
    if sa.inspect(op.get_bind()).has_table(f"{p}scoring_models", schema=schema):
        return
    op.create_table(
        f"{p}scoring_models",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
        sa.Column("name", TextType, nullable=True),
        sa.Column("features", JsonType, nullable=False),
        sa.Column("counts", JsonType, nullable=False),
        sa.Column("trained_at", _DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}scoring_models_name", f"{p}scoring_models", ["name"], unique=False, schema=schema
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    p, schema = prefix_and_schema()
    op.drop_index(f"ix_{p}scoring_models_name", table_name=f"{p}scoring_models", schema=schema)
    op.drop_table(f"{p}scoring_models", schema=schema)
