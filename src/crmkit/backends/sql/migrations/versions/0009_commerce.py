"""Commerce: orders with their lines, and satisfaction survey responses.

Adds the ``orders`` table (:class:`crmkit.entities.Order`) with its ``orders_skus`` and
``orders_categories`` list tables, and the ``survey_responses`` table
(:class:`crmkit.entities.SurveyResponse`). Each table is skipped when it already exists:
``create_schema`` builds a fresh database from the current metadata, so a database it
created has them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DATETIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
_DECIMAL = sa.Numeric().with_variant(sa.Text(), "sqlite")
_ORDER_INDEXED = ("account_id", "contact_id", "external_id", "owner_id", "placed_at", "team_id")
_ORDER_LISTS = ("categories", "skus")
_SURVEY_INDEXED = (
    "account_id",
    "campaign_id",
    "contact_id",
    "owner_id",
    "responded_at",
    "team_id",
    "ticket_id",
)


def _storage_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _DATETIME, nullable=False),
        sa.Column("updated_at", _DATETIME, nullable=False),
    ]


def _orders(p: str, schema: str | None) -> None:
    s = f"{schema}." if schema else ""
    op.create_table(
        f"{p}orders",
        *_storage_columns(),
        sa.Column("external_id", TextType, nullable=True),
        sa.Column("placed_at", _DATETIME, nullable=True),
        sa.Column("contact_id", TextType, nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("status", TextType, nullable=True),
        sa.Column("has_total", sa.Boolean(), nullable=False),
        sa.Column("total_amount", _DECIMAL, nullable=True),
        sa.Column("total_currency", TextType, nullable=True),
        sa.Column("lines", JsonType, nullable=False),
        sa.Column("skus", JsonType, nullable=False),
        sa.Column("categories", JsonType, nullable=False),
        sa.Column("status_reason", TextType, nullable=True),
        sa.Column("cancelled_at", _DATETIME, nullable=True),
        sa.Column("refunded_at", _DATETIME, nullable=True),
        sa.Column("customer_name", TextType, nullable=True),
        sa.Column("customer_email", TextType, nullable=True),
        sa.Column("has_shipping_address", sa.Boolean(), nullable=False),
        sa.Column("shipping_address_street", TextType, nullable=True),
        sa.Column("shipping_address_city", TextType, nullable=True),
        sa.Column("shipping_address_region", TextType, nullable=True),
        sa.Column("shipping_address_postal_code", TextType, nullable=True),
        sa.Column("shipping_address_country", TextType, nullable=True),
        sa.Column("shipping_address_latitude", _DECIMAL, nullable=True),
        sa.Column("shipping_address_longitude", _DECIMAL, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("custom", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    for name in _ORDER_INDEXED:
        op.create_index(f"ix_{p}orders_{name}", f"{p}orders", [name], unique=False, schema=schema)
    for field in _ORDER_LISTS:
        child = f"{p}orders_{field}"
        op.create_table(
            child,
            sa.Column("owner_id", TextType, nullable=False),
            sa.Column("value", TextType, nullable=False),
            sa.ForeignKeyConstraint(
                ["owner_id"], [f"{s}{p}orders.id"], name=f"fk_{child}_owner", ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("owner_id", "value"),
            schema=schema,
        )
        op.create_index(
            f"ix_{child}_value", child, ["value", "owner_id"], unique=False, schema=schema
        )


def _survey_responses(p: str, schema: str | None) -> None:
    op.create_table(
        f"{p}survey_responses",
        *_storage_columns(),
        sa.Column("kind", TextType, nullable=True),
        sa.Column("score", sa.BigInteger(), nullable=True),
        sa.Column("responded_at", _DATETIME, nullable=True),
        sa.Column("survey", TextType, nullable=True),
        sa.Column("contact_id", TextType, nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("ticket_id", TextType, nullable=True),
        sa.Column("campaign_id", TextType, nullable=True),
        sa.Column("comment", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("custom", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    for name in _SURVEY_INDEXED:
        op.create_index(
            f"ix_{p}survey_responses_{name}",
            f"{p}survey_responses",
            [name],
            unique=False,
            schema=schema,
        )


def upgrade() -> None:
    """Create the orders (and their list tables) and survey responses tables."""
    p, schema = prefix_and_schema()
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(f"{p}orders", schema=schema):
        _orders(p, schema)
    if not inspector.has_table(f"{p}survey_responses", schema=schema):
        _survey_responses(p, schema)


def downgrade() -> None:
    """Drop what :func:`upgrade` created."""
    p, schema = prefix_and_schema()
    for name in _SURVEY_INDEXED:
        op.drop_index(
            f"ix_{p}survey_responses_{name}", table_name=f"{p}survey_responses", schema=schema
        )
    op.drop_table(f"{p}survey_responses", schema=schema)
    for field in _ORDER_LISTS:
        child = f"{p}orders_{field}"
        op.drop_index(f"ix_{child}_value", table_name=child, schema=schema)
        op.drop_table(child, schema=schema)
    for name in _ORDER_INDEXED:
        op.drop_index(f"ix_{p}orders_{name}", table_name=f"{p}orders", schema=schema)
    op.drop_table(f"{p}orders", schema=schema)
