"""Audit entries keep their changed field names in their own row only.

Drops the ``audit_log_changed`` child table: an audit entry's ``changed`` list is read with
the entry (from its JSON column) and never filtered on, so indexing each name cost a row
and an index entry per changed field of every write. Downgrading recreates the table and
fills it from the JSON column.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import TextType

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the child table of ``audit_log.changed`` (and its index) if it exists."""
    p, schema = prefix_and_schema()
    if not sa.inspect(op.get_bind()).has_table(f"{p}audit_log_changed", schema=schema):
        return
    op.drop_index(f"ix_{p}audit_log_changed_value", f"{p}audit_log_changed", schema=schema)
    op.drop_table(f"{p}audit_log_changed", schema=schema)


def downgrade() -> None:
    """Recreate the child table and fill it from each entry's ``changed`` JSON list."""
    p, schema = prefix_and_schema()
    s = f"{schema}." if schema else ""
    op.create_table(
        f"{p}audit_log_changed",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}audit_log.id"],
            name=f"fk_{p}audit_log_changed_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}audit_log_changed_value",
        f"{p}audit_log_changed",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    log, child = f"{s}{p}audit_log", f"{s}{p}audit_log_changed"
    if op.get_bind().dialect.name == "sqlite":
        elements = f"SELECT a.id, j.value FROM {log} AS a, json_each(a.changed) AS j"
    else:
        elements = (
            f"SELECT a.id, j.value FROM {log} AS a, "
            "jsonb_array_elements_text(a.changed::jsonb) AS j(value)"
        )
    op.execute(f"INSERT INTO {child} (owner_id, value) SELECT DISTINCT * FROM ({elements}) AS e")
