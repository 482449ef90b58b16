"""Operations: stage history, deal forecast fields, ticket SLA breach fields.

Adds the ``stage_changes`` table (:class:`crmkit.entities.StageChange`), the deal columns
``expected_revenue`` (flattened Money) and ``cycle_time``, and the ticket columns
``first_response_breached_at`` and ``resolution_breached_at``.

Each step is skipped when its table or column already exists: ``create_schema`` builds a
fresh database from the current metadata, so a database it created may already have them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import TextType

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_DECIMAL = sa.Numeric().with_variant(sa.Text(), "sqlite")
_INDEXED = (
    "by",
    "from_stage",
    "owner_id",
    "pipeline_id",
    "record_collection",
    "record_id",
    "team_id",
    "to_stage",
)


def _new_columns() -> dict[str, list[sa.Column[object]]]:
    return {
        "deals": [
            sa.Column(
                "has_expected_revenue", sa.Boolean(), nullable=False, server_default=sa.false()
            ),
            sa.Column("expected_revenue_amount", _DECIMAL, nullable=True),
            sa.Column("expected_revenue_currency", TextType, nullable=True),
            sa.Column("cycle_time", sa.BigInteger(), nullable=True),
        ],
        "tickets": [
            sa.Column("first_response_breached_at", _DATETIME, nullable=True),
            sa.Column("resolution_breached_at", _DATETIME, nullable=True),
        ],
    }


def upgrade() -> None:
    """Create the stage history table and add the new deal and ticket columns."""
    p, schema = prefix_and_schema()
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(f"{p}stage_changes", schema=schema):
        op.create_table(
            f"{p}stage_changes",
            sa.Column("id", TextType, nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.Column("created_at", _DATETIME, nullable=False),
            sa.Column("updated_at", _DATETIME, nullable=False),
            sa.Column("record_collection", TextType, nullable=True),
            sa.Column("record_id", TextType, nullable=True),
            sa.Column("pipeline_id", TextType, nullable=True),
            sa.Column("from_stage", TextType, nullable=True),
            sa.Column("to_stage", TextType, nullable=True),
            sa.Column("at", _DATETIME, nullable=True),
            sa.Column("by", TextType, nullable=True),
            sa.Column("reason", TextType, nullable=True),
            sa.Column("time_in_previous", sa.BigInteger(), nullable=True),
            sa.Column("owner_id", TextType, nullable=True),
            sa.Column("team_id", TextType, nullable=True),
            sa.PrimaryKeyConstraint("id"),
            schema=schema,
        )
        for name in _INDEXED:
            op.create_index(
                f"ix_{p}stage_changes_{name}",
                f"{p}stage_changes",
                [name],
                unique=False,
                schema=schema,
            )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for collection, columns in _new_columns().items():
        table = f"{p}{collection}"
        present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        for column in columns:
            if column.name in present:
                continue
            # not batch mode: on SQLite that rebuilds the table, and dropping the old one
            # cascades into its child tables (deals' contact_ids...), deleting their rows
            op.add_column(table, column, schema=schema)
            if column.server_default is not None and not sqlite:
                # the default only filled existing rows; crmkit writes every column. (SQLite
                # cannot drop a default without rebuilding the table: there it stays.)
                op.alter_column(table, column.name, server_default=None, schema=schema)


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    p, schema = prefix_and_schema()
    for collection, columns in _new_columns().items():
        for column in columns:
            # not batch mode: on SQLite that rebuilds the table, and dropping the old one
            # cascades into the child tables (deals' contact_ids...), deleting their rows;
            # SQLite >= 3.35 drops an unindexed column in place
            op.drop_column(f"{p}{collection}", column.name, schema=schema)
    for name in _INDEXED:
        op.drop_index(f"ix_{p}stage_changes_{name}", table_name=f"{p}stage_changes", schema=schema)
    op.drop_table(f"{p}stage_changes", schema=schema)
