"""Privacy and relationships: contact-account links, suppressions, consent on contacts.

Adds the ``account_contacts`` table (:class:`crmkit.entities.AccountContact`), the
``suppressions`` table (:class:`crmkit.entities.Suppression`) and the contact columns
``consents``, ``lawful_basis`` and ``erased_at``. Each step is skipped when already done:
``create_schema`` builds a fresh database from the current metadata, so a database it
created has them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_DATE = sa.Date().with_variant(sa.Text(), "sqlite")


def _storage() -> list[sa.Column[object]]:
    return [
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
    ]


def _contact_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("consents", JsonType, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("lawful_basis", TextType, nullable=True),
        sa.Column("erased_at", _DATETIME, nullable=True),
    ]


def upgrade() -> None:
    """Create the links and suppressions tables and add the contact columns."""
    p, schema = prefix_and_schema()
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(f"{p}account_contacts", schema=schema):
        op.create_table(
            f"{p}account_contacts",
            *_storage(),
            sa.Column("contact_id", TextType, nullable=True),
            sa.Column("account_id", TextType, nullable=True),
            sa.Column("role", TextType, nullable=True),
            sa.Column("label", TextType, nullable=True),
            sa.Column("is_primary", sa.Boolean(), nullable=True),
            sa.Column("started", _DATE, nullable=True),
            sa.Column("ended", _DATE, nullable=True),
            sa.PrimaryKeyConstraint("id"),
            schema=schema,
        )
        for name in ("contact_id", "account_id"):
            op.create_index(
                f"ix_{p}account_contacts_{name}",
                f"{p}account_contacts",
                [name],
                unique=False,
                schema=schema,
            )
    if not inspector.has_table(f"{p}suppressions", schema=schema):
        op.create_table(
            f"{p}suppressions",
            *_storage(),
            sa.Column("kind", TextType, nullable=True),
            sa.Column("digest", TextType, nullable=True),
            sa.Column("reason", TextType, nullable=True),
            sa.Column("at", _DATETIME, nullable=True),
            sa.PrimaryKeyConstraint("id"),
            schema=schema,
        )
    sqlite = op.get_bind().dialect.name == "sqlite"
    table = f"{p}contacts"
    present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
    for column in _contact_columns():
        if column.name in present:
            continue
        # not batch mode: on SQLite that rebuilds the table, and dropping the old one
        # cascades into its child tables (emails, phones...), deleting their rows
        op.add_column(table, column, schema=schema)
        if column.server_default is not None and not sqlite:
            # the default only filled existing rows; crmkit writes every column
            op.alter_column(table, column.name, server_default=None, schema=schema)


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    p, schema = prefix_and_schema()
    for column in _contact_columns():
        op.drop_column(f"{p}contacts", column.name, schema=schema)
    op.drop_table(f"{p}suppressions", schema=schema)
    for name in ("contact_id", "account_id"):
        op.drop_index(
            f"ix_{p}account_contacts_{name}", table_name=f"{p}account_contacts", schema=schema
        )
    op.drop_table(f"{p}account_contacts", schema=schema)
