"""signing certificates keys revocations

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "pki_certificate",
        sa.Column("fingerprint", KEY, primary_key=True),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("facility", sa.String(32), nullable=False),
        sa.Column("common_name", sa.String(256), nullable=False),
        sa.Column("issuer", KEY),
        sa.Column("not_before", sa.BigInteger(), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text()),
        sa.Column("key_uri", sa.Text()),
        sa.Column("trust_anchor", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_pki_certificate_owner", "pki_certificate", ["owner", "not_before"])
    op.create_index("ix_pki_certificate_serial", "pki_certificate", ["serial"])
    op.create_table(
        "pki_revocation",
        sa.Column("fingerprint", KEY, primary_key=True),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("issuer", KEY, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("revoked", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_pki_revocation_issuer", "pki_revocation", ["issuer", "revoked"])


def downgrade() -> None:
    op.drop_table("pki_revocation")
    op.drop_table("pki_certificate")
