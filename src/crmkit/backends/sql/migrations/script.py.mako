"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmkit.backends.sql.migrations import prefix_and_schema
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    p, schema = prefix_and_schema()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    p, schema = prefix_and_schema()
    ${downgrades if downgrades else "pass"}
