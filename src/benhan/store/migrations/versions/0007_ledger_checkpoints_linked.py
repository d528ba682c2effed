"""ledger checkpoints linked: each one's digest, and the store's checkpoint it follows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

HASH = sa.LargeBinary(32)


def upgrade() -> None:
    with op.batch_alter_table("ledger_checkpoint") as batch:
        batch.add_column(sa.Column("digest", HASH, nullable=True))
        batch.add_column(sa.Column("follows", HASH, nullable=True))
    # The checkpoints made so far (version 1, without links) get their digest: the first linked
    # checkpoint of each facility follows its newest one. They stay as they were signed.
    checkpoint = sa.table(
        "ledger_checkpoint",
        sa.column("facility"),
        sa.column("seq"),
        sa.column("jws"),
        sa.column("digest", HASH),
    )
    conn = op.get_bind()
    made = conn.execute(sa.select(checkpoint.c.facility, checkpoint.c.seq, checkpoint.c.jws))
    for facility, seq, jws in made.all():
        conn.execute(
            checkpoint.update()
            .where(checkpoint.c.facility == facility, checkpoint.c.seq == seq)
            .values(digest=hashlib.sha256(jws.encode()).digest())
        )
    with op.batch_alter_table("ledger_checkpoint") as batch:
        batch.alter_column("digest", existing_type=HASH, nullable=False)
    op.create_index("ux_ledger_checkpoint_digest", "ledger_checkpoint", ["digest"], unique=True)
    op.create_index("ux_ledger_checkpoint_follows", "ledger_checkpoint", ["follows"], unique=True)
    op.create_index("ix_ledger_checkpoint_at", "ledger_checkpoint", ["at"])


def downgrade() -> None:
    for name in ("ix_ledger_checkpoint_at", "ux_ledger_checkpoint_follows",
                 "ux_ledger_checkpoint_digest"):  # fmt: skip
        op.drop_index(name, table_name="ledger_checkpoint")
    with op.batch_alter_table("ledger_checkpoint") as batch:
        batch.drop_column("follows")
        batch.drop_column("digest")
