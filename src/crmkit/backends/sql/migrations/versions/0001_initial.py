"""Initial schema: one table per entity, child tables for list fields, indexes.

Generated from :func:`crmkit.backends.sql.make_metadata` (with the prefix and schema
templated) and frozen: later schema changes are new revisions, never edits of this one.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
from crmkit.backends.sql.schema import JsonType, TextType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create crmkit's tables and indexes."""
    p, schema = prefix_and_schema()
    s = f"{schema}." if schema else ""
    op.create_table(
        f"{p}accounts",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("domain", TextType, nullable=True),
        sa.Column("website", TextType, nullable=True),
        sa.Column("industry", TextType, nullable=True),
        sa.Column("parent_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("phones", JsonType, nullable=False),
        sa.Column("has_address", sa.Boolean(), nullable=False),
        sa.Column("address_street", TextType, nullable=True),
        sa.Column("address_city", TextType, nullable=True),
        sa.Column("address_region", TextType, nullable=True),
        sa.Column("address_postal_code", TextType, nullable=True),
        sa.Column("address_country", TextType, nullable=True),
        sa.Column(
            "address_latitude", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column(
            "address_longitude", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("tags", JsonType, nullable=False),
        sa.Column("custom", JsonType, nullable=False),
        sa.Column("external_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}accounts_domain", f"{p}accounts", ["domain"], unique=False, schema=schema
    )
    op.create_index(f"ix_{p}accounts_name", f"{p}accounts", ["name"], unique=False, schema=schema)
    op.create_index(
        f"ix_{p}accounts_owner_id", f"{p}accounts", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}accounts_parent_id", f"{p}accounts", ["parent_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}accounts_team_id", f"{p}accounts", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}articles",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("title", TextType, nullable=True),
        sa.Column("body", TextType, nullable=True),
        sa.Column("tags", JsonType, nullable=False),
        sa.Column("status", TextType, nullable=True),
        sa.Column("ticket_ids", JsonType, nullable=False),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}articles_owner_id", f"{p}articles", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}articles_team_id", f"{p}articles", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}audit_log",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("record_collection", TextType, nullable=True),
        sa.Column("record_id", TextType, nullable=True),
        sa.Column("action", TextType, nullable=True),
        sa.Column("changed", JsonType, nullable=False),
        sa.Column("actor_id", TextType, nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("reason", TextType, nullable=True),
        sa.Column("changes", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}audit_log_actor_id", f"{p}audit_log", ["actor_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}audit_log_record_collection",
        f"{p}audit_log",
        ["record_collection"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}audit_log_record_id", f"{p}audit_log", ["record_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}campaign_members",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("campaign_id", TextType, nullable=True),
        sa.Column("contact_id", TextType, nullable=True),
        sa.Column("status", TextType, nullable=True),
        sa.Column(
            "status_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}campaign_members_campaign_id",
        f"{p}campaign_members",
        ["campaign_id"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}campaign_members_contact_id",
        f"{p}campaign_members",
        ["contact_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}campaigns",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("channel", TextType, nullable=True),
        sa.Column("status", TextType, nullable=True),
        sa.Column(
            "starts_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column(
            "ends_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("has_budget", sa.Boolean(), nullable=False),
        sa.Column("budget_amount", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("budget_currency", TextType, nullable=True),
        sa.Column("has_cost", sa.Boolean(), nullable=False),
        sa.Column("cost_amount", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("cost_currency", TextType, nullable=True),
        sa.Column("segment_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}campaigns_owner_id", f"{p}campaigns", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}campaigns_segment_id", f"{p}campaigns", ["segment_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}campaigns_team_id", f"{p}campaigns", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}contacts",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("first_name", TextType, nullable=True),
        sa.Column("last_name", TextType, nullable=True),
        sa.Column("emails", JsonType, nullable=False),
        sa.Column("phones", JsonType, nullable=False),
        sa.Column("title", TextType, nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("lifecycle_stage", TextType, nullable=True),
        sa.Column("lead_source", TextType, nullable=True),
        sa.Column("has_address", sa.Boolean(), nullable=False),
        sa.Column("address_street", TextType, nullable=True),
        sa.Column("address_city", TextType, nullable=True),
        sa.Column("address_region", TextType, nullable=True),
        sa.Column("address_postal_code", TextType, nullable=True),
        sa.Column("address_country", TextType, nullable=True),
        sa.Column(
            "address_latitude", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column(
            "address_longitude", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("do_not_contact", sa.Boolean(), nullable=True),
        sa.Column("tags", JsonType, nullable=False),
        sa.Column("custom", JsonType, nullable=False),
        sa.Column("external_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}contacts_account_id", f"{p}contacts", ["account_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}contacts_last_name", f"{p}contacts", ["last_name"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}contacts_owner_id", f"{p}contacts", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}contacts_team_id", f"{p}contacts", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}deals",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("pipeline_id", TextType, nullable=True),
        sa.Column("stage", TextType, nullable=True),
        sa.Column("has_amount", sa.Boolean(), nullable=False),
        sa.Column("amount_amount", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("amount_currency", TextType, nullable=True),
        sa.Column("probability", sa.Numeric().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("close_date", sa.Date().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("contact_ids", JsonType, nullable=False),
        sa.Column("contact_roles", JsonType, nullable=False),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column(
            "stage_entered_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "closed_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("lost_reason", TextType, nullable=True),
        sa.Column("tags", JsonType, nullable=False),
        sa.Column("custom", JsonType, nullable=False),
        sa.Column("external_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}deals_account_id", f"{p}deals", ["account_id"], unique=False, schema=schema
    )
    op.create_index(f"ix_{p}deals_owner_id", f"{p}deals", ["owner_id"], unique=False, schema=schema)
    op.create_index(
        f"ix_{p}deals_pipeline_id", f"{p}deals", ["pipeline_id"], unique=False, schema=schema
    )
    op.create_index(f"ix_{p}deals_stage", f"{p}deals", ["stage"], unique=False, schema=schema)
    op.create_index(f"ix_{p}deals_team_id", f"{p}deals", ["team_id"], unique=False, schema=schema)
    op.create_table(
        f"{p}interactions",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("kind", TextType, nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column("direction", TextType, nullable=True),
        sa.Column("subject", TextType, nullable=True),
        sa.Column("body", TextType, nullable=True),
        sa.Column("contact_ids", JsonType, nullable=False),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("deal_id", TextType, nullable=True),
        sa.Column("ticket_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("duration", sa.BigInteger(), nullable=True),
        sa.Column("outcome", TextType, nullable=True),
        sa.Column("custom", JsonType, nullable=False),
        sa.Column("external_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}interactions_account_id",
        f"{p}interactions",
        ["account_id"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}interactions_deal_id", f"{p}interactions", ["deal_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}interactions_owner_id",
        f"{p}interactions",
        ["owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}interactions_team_id", f"{p}interactions", ["team_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}interactions_ticket_id",
        f"{p}interactions",
        ["ticket_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}pipelines",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("kind", TextType, nullable=True),
        sa.Column("stages", JsonType, nullable=False),
        sa.Column("policy", TextType, nullable=True),
        sa.Column("lost_reasons", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_table(
        f"{p}roles",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("permissions", JsonType, nullable=False),
        sa.Column("hidden_fields", JsonType, nullable=False),
        sa.Column("readonly_fields", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_table(
        f"{p}segments",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("entity", TextType, nullable=True),
        sa.Column("rule", JsonType, nullable=False),
        sa.Column("kind", TextType, nullable=True),
        sa.Column("member_ids", JsonType, nullable=False),
        sa.Column(
            "snapshot_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}segments_entity", f"{p}segments", ["entity"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}segments_owner_id", f"{p}segments", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}segments_team_id", f"{p}segments", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}shares",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("record_collection", TextType, nullable=True),
        sa.Column("record_id", TextType, nullable=True),
        sa.Column("user_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("access", TextType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}shares_record_collection",
        f"{p}shares",
        ["record_collection"],
        unique=False,
        schema=schema,
    )
    op.create_index(
        f"ix_{p}shares_record_id", f"{p}shares", ["record_id"], unique=False, schema=schema
    )
    op.create_index(f"ix_{p}shares_team_id", f"{p}shares", ["team_id"], unique=False, schema=schema)
    op.create_index(f"ix_{p}shares_user_id", f"{p}shares", ["user_id"], unique=False, schema=schema)
    op.create_table(
        f"{p}tasks",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("title", TextType, nullable=True),
        sa.Column("description", TextType, nullable=True),
        sa.Column(
            "due_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("status", TextType, nullable=True),
        sa.Column("priority", TextType, nullable=True),
        sa.Column("assignee_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("contact_id", TextType, nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("deal_id", TextType, nullable=True),
        sa.Column("ticket_id", TextType, nullable=True),
        sa.Column(
            "completed_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column("completed_by", TextType, nullable=True),
        sa.Column("custom", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}tasks_account_id", f"{p}tasks", ["account_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tasks_assignee_id", f"{p}tasks", ["assignee_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tasks_completed_by", f"{p}tasks", ["completed_by"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tasks_contact_id", f"{p}tasks", ["contact_id"], unique=False, schema=schema
    )
    op.create_index(f"ix_{p}tasks_deal_id", f"{p}tasks", ["deal_id"], unique=False, schema=schema)
    op.create_index(f"ix_{p}tasks_owner_id", f"{p}tasks", ["owner_id"], unique=False, schema=schema)
    op.create_index(f"ix_{p}tasks_team_id", f"{p}tasks", ["team_id"], unique=False, schema=schema)
    op.create_index(
        f"ix_{p}tasks_ticket_id", f"{p}tasks", ["ticket_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}teams",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("parent_id", TextType, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}teams_parent_id", f"{p}teams", ["parent_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}tickets",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("subject", TextType, nullable=True),
        sa.Column("description", TextType, nullable=True),
        sa.Column("status", TextType, nullable=True),
        sa.Column("priority", TextType, nullable=True),
        sa.Column("channel", TextType, nullable=True),
        sa.Column("pipeline_id", TextType, nullable=True),
        sa.Column("contact_id", TextType, nullable=True),
        sa.Column("account_id", TextType, nullable=True),
        sa.Column("assignee_id", TextType, nullable=True),
        sa.Column("owner_id", TextType, nullable=True),
        sa.Column("team_id", TextType, nullable=True),
        sa.Column("sla_policy_id", TextType, nullable=True),
        sa.Column(
            "first_response_due_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "resolution_due_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "first_response_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "resolved_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "closed_at", sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"), nullable=True
        ),
        sa.Column("tags", JsonType, nullable=False),
        sa.Column("custom", JsonType, nullable=False),
        sa.Column("external_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}tickets_account_id", f"{p}tickets", ["account_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tickets_assignee_id", f"{p}tickets", ["assignee_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tickets_contact_id", f"{p}tickets", ["contact_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tickets_owner_id", f"{p}tickets", ["owner_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tickets_pipeline_id", f"{p}tickets", ["pipeline_id"], unique=False, schema=schema
    )
    op.create_index(
        f"ix_{p}tickets_sla_policy_id",
        f"{p}tickets",
        ["sla_policy_id"],
        unique=False,
        schema=schema,
    )
    op.create_index(f"ix_{p}tickets_status", f"{p}tickets", ["status"], unique=False, schema=schema)
    op.create_index(
        f"ix_{p}tickets_team_id", f"{p}tickets", ["team_id"], unique=False, schema=schema
    )
    op.create_table(
        f"{p}users",
        sa.Column("id", TextType, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", TextType, nullable=True),
        sa.Column("email", TextType, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=True),
        sa.Column("admin", sa.Boolean(), nullable=True),
        sa.Column("team_ids", JsonType, nullable=False),
        sa.Column("role_ids", JsonType, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema=schema,
    )
    op.create_index(f"ix_{p}users_email", f"{p}users", ["email"], unique=False, schema=schema)
    op.create_table(
        f"{p}accounts_phones",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}accounts.id"],
            name=f"fk_{p}accounts_phones_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}accounts_phones_value",
        f"{p}accounts_phones",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}accounts_tags",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}accounts.id"],
            name=f"fk_{p}accounts_tags_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}accounts_tags_value",
        f"{p}accounts_tags",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}articles_tags",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}articles.id"],
            name=f"fk_{p}articles_tags_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}articles_tags_value",
        f"{p}articles_tags",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}articles_ticket_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}articles.id"],
            name=f"fk_{p}articles_ticket_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}articles_ticket_ids_value",
        f"{p}articles_ticket_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
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
    op.create_table(
        f"{p}contacts_emails",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}contacts.id"],
            name=f"fk_{p}contacts_emails_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}contacts_emails_value",
        f"{p}contacts_emails",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}contacts_phones",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}contacts.id"],
            name=f"fk_{p}contacts_phones_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}contacts_phones_value",
        f"{p}contacts_phones",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}contacts_tags",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}contacts.id"],
            name=f"fk_{p}contacts_tags_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}contacts_tags_value",
        f"{p}contacts_tags",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}deals_contact_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}deals.id"],
            name=f"fk_{p}deals_contact_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}deals_contact_ids_value",
        f"{p}deals_contact_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}deals_tags",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], [f"{s}{p}deals.id"], name=f"fk_{p}deals_tags_owner", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}deals_tags_value",
        f"{p}deals_tags",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}interactions_contact_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}interactions.id"],
            name=f"fk_{p}interactions_contact_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}interactions_contact_ids_value",
        f"{p}interactions_contact_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}pipelines_lost_reasons",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}pipelines.id"],
            name=f"fk_{p}pipelines_lost_reasons_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}pipelines_lost_reasons_value",
        f"{p}pipelines_lost_reasons",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}segments_member_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}segments.id"],
            name=f"fk_{p}segments_member_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}segments_member_ids_value",
        f"{p}segments_member_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}tickets_tags",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}tickets.id"],
            name=f"fk_{p}tickets_tags_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}tickets_tags_value",
        f"{p}tickets_tags",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}users_role_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}users.id"],
            name=f"fk_{p}users_role_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}users_role_ids_value",
        f"{p}users_role_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )
    op.create_table(
        f"{p}users_team_ids",
        sa.Column("owner_id", TextType, nullable=False),
        sa.Column("value", TextType, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            [f"{s}{p}users.id"],
            name=f"fk_{p}users_team_ids_owner",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "value"),
        schema=schema,
    )
    op.create_index(
        f"ix_{p}users_team_ids_value",
        f"{p}users_team_ids",
        ["value", "owner_id"],
        unique=False,
        schema=schema,
    )


def downgrade() -> None:
    """Drop crmkit's tables."""
    p, schema = prefix_and_schema()
    op.drop_index(f"ix_{p}users_team_ids_value", table_name=f"{p}users_team_ids", schema=schema)
    op.drop_table(f"{p}users_team_ids", schema=schema)
    op.drop_index(f"ix_{p}users_role_ids_value", table_name=f"{p}users_role_ids", schema=schema)
    op.drop_table(f"{p}users_role_ids", schema=schema)
    op.drop_index(f"ix_{p}tickets_tags_value", table_name=f"{p}tickets_tags", schema=schema)
    op.drop_table(f"{p}tickets_tags", schema=schema)
    op.drop_index(
        f"ix_{p}segments_member_ids_value", table_name=f"{p}segments_member_ids", schema=schema
    )
    op.drop_table(f"{p}segments_member_ids", schema=schema)
    op.drop_index(
        f"ix_{p}pipelines_lost_reasons_value",
        table_name=f"{p}pipelines_lost_reasons",
        schema=schema,
    )
    op.drop_table(f"{p}pipelines_lost_reasons", schema=schema)
    op.drop_index(
        f"ix_{p}interactions_contact_ids_value",
        table_name=f"{p}interactions_contact_ids",
        schema=schema,
    )
    op.drop_table(f"{p}interactions_contact_ids", schema=schema)
    op.drop_index(f"ix_{p}deals_tags_value", table_name=f"{p}deals_tags", schema=schema)
    op.drop_table(f"{p}deals_tags", schema=schema)
    op.drop_index(
        f"ix_{p}deals_contact_ids_value", table_name=f"{p}deals_contact_ids", schema=schema
    )
    op.drop_table(f"{p}deals_contact_ids", schema=schema)
    op.drop_index(f"ix_{p}contacts_tags_value", table_name=f"{p}contacts_tags", schema=schema)
    op.drop_table(f"{p}contacts_tags", schema=schema)
    op.drop_index(f"ix_{p}contacts_phones_value", table_name=f"{p}contacts_phones", schema=schema)
    op.drop_table(f"{p}contacts_phones", schema=schema)
    op.drop_index(f"ix_{p}contacts_emails_value", table_name=f"{p}contacts_emails", schema=schema)
    op.drop_table(f"{p}contacts_emails", schema=schema)
    op.drop_index(
        f"ix_{p}audit_log_changed_value", table_name=f"{p}audit_log_changed", schema=schema
    )
    op.drop_table(f"{p}audit_log_changed", schema=schema)
    op.drop_index(
        f"ix_{p}articles_ticket_ids_value", table_name=f"{p}articles_ticket_ids", schema=schema
    )
    op.drop_table(f"{p}articles_ticket_ids", schema=schema)
    op.drop_index(f"ix_{p}articles_tags_value", table_name=f"{p}articles_tags", schema=schema)
    op.drop_table(f"{p}articles_tags", schema=schema)
    op.drop_index(f"ix_{p}accounts_tags_value", table_name=f"{p}accounts_tags", schema=schema)
    op.drop_table(f"{p}accounts_tags", schema=schema)
    op.drop_index(f"ix_{p}accounts_phones_value", table_name=f"{p}accounts_phones", schema=schema)
    op.drop_table(f"{p}accounts_phones", schema=schema)
    op.drop_index(f"ix_{p}users_email", table_name=f"{p}users", schema=schema)
    op.drop_table(f"{p}users", schema=schema)
    op.drop_index(f"ix_{p}tickets_team_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_status", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_sla_policy_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_pipeline_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_owner_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_contact_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_assignee_id", table_name=f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}tickets_account_id", table_name=f"{p}tickets", schema=schema)
    op.drop_table(f"{p}tickets", schema=schema)
    op.drop_index(f"ix_{p}teams_parent_id", table_name=f"{p}teams", schema=schema)
    op.drop_table(f"{p}teams", schema=schema)
    op.drop_index(f"ix_{p}tasks_ticket_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_team_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_owner_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_deal_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_contact_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_completed_by", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_assignee_id", table_name=f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}tasks_account_id", table_name=f"{p}tasks", schema=schema)
    op.drop_table(f"{p}tasks", schema=schema)
    op.drop_index(f"ix_{p}shares_user_id", table_name=f"{p}shares", schema=schema)
    op.drop_index(f"ix_{p}shares_team_id", table_name=f"{p}shares", schema=schema)
    op.drop_index(f"ix_{p}shares_record_id", table_name=f"{p}shares", schema=schema)
    op.drop_index(f"ix_{p}shares_record_collection", table_name=f"{p}shares", schema=schema)
    op.drop_table(f"{p}shares", schema=schema)
    op.drop_index(f"ix_{p}segments_team_id", table_name=f"{p}segments", schema=schema)
    op.drop_index(f"ix_{p}segments_owner_id", table_name=f"{p}segments", schema=schema)
    op.drop_index(f"ix_{p}segments_entity", table_name=f"{p}segments", schema=schema)
    op.drop_table(f"{p}segments", schema=schema)
    op.drop_table(f"{p}roles", schema=schema)
    op.drop_table(f"{p}pipelines", schema=schema)
    op.drop_index(f"ix_{p}interactions_ticket_id", table_name=f"{p}interactions", schema=schema)
    op.drop_index(f"ix_{p}interactions_team_id", table_name=f"{p}interactions", schema=schema)
    op.drop_index(f"ix_{p}interactions_owner_id", table_name=f"{p}interactions", schema=schema)
    op.drop_index(f"ix_{p}interactions_deal_id", table_name=f"{p}interactions", schema=schema)
    op.drop_index(f"ix_{p}interactions_account_id", table_name=f"{p}interactions", schema=schema)
    op.drop_table(f"{p}interactions", schema=schema)
    op.drop_index(f"ix_{p}deals_team_id", table_name=f"{p}deals", schema=schema)
    op.drop_index(f"ix_{p}deals_stage", table_name=f"{p}deals", schema=schema)
    op.drop_index(f"ix_{p}deals_pipeline_id", table_name=f"{p}deals", schema=schema)
    op.drop_index(f"ix_{p}deals_owner_id", table_name=f"{p}deals", schema=schema)
    op.drop_index(f"ix_{p}deals_account_id", table_name=f"{p}deals", schema=schema)
    op.drop_table(f"{p}deals", schema=schema)
    op.drop_index(f"ix_{p}contacts_team_id", table_name=f"{p}contacts", schema=schema)
    op.drop_index(f"ix_{p}contacts_owner_id", table_name=f"{p}contacts", schema=schema)
    op.drop_index(f"ix_{p}contacts_last_name", table_name=f"{p}contacts", schema=schema)
    op.drop_index(f"ix_{p}contacts_account_id", table_name=f"{p}contacts", schema=schema)
    op.drop_table(f"{p}contacts", schema=schema)
    op.drop_index(f"ix_{p}campaigns_team_id", table_name=f"{p}campaigns", schema=schema)
    op.drop_index(f"ix_{p}campaigns_segment_id", table_name=f"{p}campaigns", schema=schema)
    op.drop_index(f"ix_{p}campaigns_owner_id", table_name=f"{p}campaigns", schema=schema)
    op.drop_table(f"{p}campaigns", schema=schema)
    op.drop_index(
        f"ix_{p}campaign_members_contact_id", table_name=f"{p}campaign_members", schema=schema
    )
    op.drop_index(
        f"ix_{p}campaign_members_campaign_id", table_name=f"{p}campaign_members", schema=schema
    )
    op.drop_table(f"{p}campaign_members", schema=schema)
    op.drop_index(f"ix_{p}audit_log_record_id", table_name=f"{p}audit_log", schema=schema)
    op.drop_index(f"ix_{p}audit_log_record_collection", table_name=f"{p}audit_log", schema=schema)
    op.drop_index(f"ix_{p}audit_log_actor_id", table_name=f"{p}audit_log", schema=schema)
    op.drop_table(f"{p}audit_log", schema=schema)
    op.drop_index(f"ix_{p}articles_team_id", table_name=f"{p}articles", schema=schema)
    op.drop_index(f"ix_{p}articles_owner_id", table_name=f"{p}articles", schema=schema)
    op.drop_table(f"{p}articles", schema=schema)
    op.drop_index(f"ix_{p}accounts_team_id", table_name=f"{p}accounts", schema=schema)
    op.drop_index(f"ix_{p}accounts_parent_id", table_name=f"{p}accounts", schema=schema)
    op.drop_index(f"ix_{p}accounts_owner_id", table_name=f"{p}accounts", schema=schema)
    op.drop_index(f"ix_{p}accounts_name", table_name=f"{p}accounts", schema=schema)
    op.drop_index(f"ix_{p}accounts_domain", table_name=f"{p}accounts", schema=schema)
    op.drop_table(f"{p}accounts", schema=schema)
