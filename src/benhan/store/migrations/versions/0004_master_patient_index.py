"""the master patient index: inbox, keys, name-part counts, models, review pairs, decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KEY = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "mpi_inbox",
        sa.Column("patient_id", KEY, primary_key=True),
        sa.Column("version_id", sa.Integer(), primary_key=True),
    )
    op.create_table(
        "mpi_record",
        sa.Column("patient_id", KEY, primary_key=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("person_id", KEY),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
    )
    op.create_index("ix_mpi_record_person", "mpi_record", ["person_id"])
    op.create_table(
        "mpi_key",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("patient_id", KEY, primary_key=True),
    )
    op.create_table(
        "mpi_term",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("n", sa.Integer(), nullable=False),
    )
    op.create_table(
        "mpi_model",
        sa.Column("trained", sa.BigInteger(), primary_key=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
    )
    op.create_table(
        "mpi_pair",
        sa.Column("patient_a", KEY, primary_key=True),
        sa.Column("patient_b", KEY, primary_key=True),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_mpi_pair_state", "mpi_pair", ["state", "probability"])
    op.create_index("ix_mpi_pair_b", "mpi_pair", ["patient_b"])
    op.create_table(
        "mpi_decision",
        sa.Column("id", KEY, primary_key=True),
        sa.Column("patient_a", KEY, nullable=False),
        sa.Column("patient_b", KEY, nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("previous", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_mpi_decision_pair", "mpi_decision", ["patient_a", "patient_b", "at"])


def downgrade() -> None:
    for name in ("mpi_decision", "mpi_pair", "mpi_model", "mpi_term", "mpi_key", "mpi_record",
                 "mpi_inbox"):  # fmt: skip
        op.drop_table(name)
