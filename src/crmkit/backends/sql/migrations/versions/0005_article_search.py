"""Article search: the text index of the knowledge base.

SQLite: the FTS5 table ``articles_search`` and the triggers keeping it in sync with the
articles table, filled from the articles already stored. PostgreSQL: the GIN expression
index ``ix_articles_search`` on the articles' weighted ``tsvector``. See
:mod:`crmkit.backends.sql.search`. Skipped when they exist already.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from crmkit.backends.sql import search
from crmkit.backends.sql.migrations import prefix_and_schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the article text index (and index the stored articles)."""
    prefix, schema = prefix_and_schema()
    search.install(op.get_bind(), prefix=prefix, schema=schema)


def downgrade() -> None:
    """Drop the article text index."""
    prefix, schema = prefix_and_schema()
    search.uninstall(op.get_bind(), prefix=prefix, schema=schema)
