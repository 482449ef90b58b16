"""Text mappings (``external_ids``, a deal's ``contact_roles``) get an indexed child table.

A lookup such as ``F.external_ids.shop.in_([...])`` (every batch of an import that upserts
by external id) read the value out of each record's JSON column: a scan of the whole table.
Each entry of a text mapping now also has a row ``(owner_id, "key<US>value")`` in
``<collection>_<field>``, indexed by value like the child tables of list fields, and the
lookup is an index probe. The tables are filled from the JSON columns; downgrading drops
them. A table that exists already (``create_schema`` of this version) is left alone.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import TextType

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: (collection, field) of every text mapping at this revision.
_KEYED = (
    ("accounts", "external_ids"),
    ("contacts", "external_ids"),
    ("deals", "contact_roles"),
    ("deals", "external_ids"),
    ("interactions", "external_ids"),
    ("tickets", "external_ids"),
)


def upgrade() -> None:
    """Create each child table with its value index and fill it from the JSON column."""
    p, schema = prefix_and_schema()
    s = f"{schema}." if schema else ""
    inspector = sa.inspect(op.get_bind())
    sqlite = op.get_bind().dialect.name == "sqlite"
    for collection, field in _KEYED:
        parent, child = f"{p}{collection}", f"{p}{collection}_{field}"
        if inspector.has_table(child, schema=schema):
            continue
        op.create_table(
            child,
            sa.Column("owner_id", TextType, nullable=False),
            sa.Column("value", TextType, nullable=False),
            sa.ForeignKeyConstraint(
                ["owner_id"], [f"{s}{parent}.id"], name=f"fk_{child}_owner", ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("owner_id", "value"),
            schema=schema,
        )
        op.create_index(
            f"ix_{child}_value", child, ["value", "owner_id"], unique=False, schema=schema
        )
        if sqlite:
            entries = (
                f"SELECT t.id, j.key || char(31) || j.value FROM {s}{parent} AS t, "
                f"json_each(t.{field}) AS j"
            )
        else:
            entries = (
                f"SELECT t.id, j.key || chr(31) || j.value FROM {s}{parent} AS t, "
                f"jsonb_each_text(t.{field}::jsonb) AS j"
            )
        op.execute(f"INSERT INTO {s}{child} (owner_id, value) {entries}")


def downgrade() -> None:
    """Drop the child tables (the JSON columns still hold every entry)."""
    p, schema = prefix_and_schema()
    for collection, field in _KEYED:
        child = f"{p}{collection}_{field}"
        op.drop_index(f"ix_{child}_value", child, schema=schema)
        op.drop_table(child, schema=schema)
