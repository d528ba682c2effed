"""ledger hash chain and checkpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KEY = sa.String(64)
FACILITY = sa.String(32)
HASH = sa.LargeBinary(32)


def upgrade() -> None:
    op.create_table(
        "ledger_entry",
        sa.Column("facility", FACILITY, primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("rtype", KEY, nullable=False),
        sa.Column("id", KEY, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("digest", HASH, nullable=False),
        sa.Column("prev", HASH, nullable=False),
        sa.Column("hash", HASH, nullable=False),
    )
    op.create_table(
        "ledger_head",
        sa.Column("facility", FACILITY, primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", HASH, nullable=False),
    )
    op.create_table(
        "ledger_checkpoint",
        sa.Column("facility", FACILITY, primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for name in ("ledger_checkpoint", "ledger_head", "ledger_entry"):
        op.drop_table(name)
