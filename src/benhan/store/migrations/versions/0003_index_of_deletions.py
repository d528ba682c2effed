"""an index of deleted resources, for counts that read indexes only

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:08:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_resource_deleted",
        "resource",
        ["rtype"],
        sqlite_where=sa.text("deleted"),
        postgresql_where=sa.text("deleted"),
    )


def downgrade() -> None:
    op.drop_index("ix_resource_deleted", table_name="resource")
