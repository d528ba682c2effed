"""resources, versions and search indexes

Revision ID: 0001
Revises:
Create Date: 2026-11-26 01:06:57.758521
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "export_job",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.BigInteger(), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ix_date",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("lo", sa.BigInteger(), nullable=False),
        sa.Column("hi", sa.BigInteger(), nullable=False),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_date_lookup", ["rtype", "param", "lo", "hi"], unique=False, postgresql_ops={}
        )
        batch_op.create_index("ix_date_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "ix_number",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_number", schema=None) as batch_op:
        batch_op.create_index(
            "ix_number_lookup", ["rtype", "param", "value"], unique=False, postgresql_ops={}
        )
        batch_op.create_index("ix_number_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "ix_quantity",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("system", sa.String(length=256), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_quantity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quantity_lookup", ["rtype", "param", "value"], unique=False, postgresql_ops={}
        )
        batch_op.create_index("ix_quantity_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "ix_reference",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_reference", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reference_lookup",
            ["rtype", "param", "target_id", "target_type"],
            unique=False,
            postgresql_ops={},
        )
        batch_op.create_index("ix_reference_owner", ["rtype", "id"], unique=False)
        batch_op.create_index("ix_reference_patient", ["patient_key"], unique=False)

    op.create_table(
        "ix_string",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("norm", sa.String(length=256), nullable=True),
        sa.Column("value", sa.String(length=256), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_string", schema=None) as batch_op:
        batch_op.create_index(
            "ix_string_lookup",
            ["rtype", "param", "norm"],
            unique=False,
            postgresql_ops={"norm": "text_pattern_ops"},
        )
        batch_op.create_index("ix_string_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "ix_token",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=256), nullable=True),
        sa.Column("code", sa.String(length=256), nullable=True),
        sa.Column("text", sa.String(length=256), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_token_lookup", ["rtype", "param", "code", "system"], unique=False, postgresql_ops={}
        )
        batch_op.create_index("ix_token_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "ix_uri",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=True),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
    )
    with op.batch_alter_table("ix_uri", schema=None) as batch_op:
        batch_op.create_index(
            "ix_uri_lookup", ["rtype", "param", "value"], unique=False, postgresql_ops={}
        )
        batch_op.create_index("ix_uri_owner", ["rtype", "id"], unique=False)

    op.create_table(
        "resource",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column(
            "content",
            sa.Text().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("rtype", "id"),
    )
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.create_index("ix_resource_patient", ["patient_key"], unique=False)
        batch_op.create_index("ix_resource_updated", ["rtype", "last_updated"], unique=False)

    op.create_table(
        "resource_version",
        sa.Column("rtype", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column(
            "content",
            sa.Text().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("facility", sa.String(length=32), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("rtype", "id", "version_id"),
    )
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.create_index("ix_version_type_updated", ["rtype", "last_updated"], unique=False)
        batch_op.create_index("ix_version_updated", ["last_updated"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.drop_index("ix_version_updated")
        batch_op.drop_index("ix_version_type_updated")

    op.drop_table("resource_version")
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.drop_index("ix_resource_updated")
        batch_op.drop_index("ix_resource_patient")

    op.drop_table("resource")
    with op.batch_alter_table("ix_uri", schema=None) as batch_op:
        batch_op.drop_index("ix_uri_owner")
        batch_op.drop_index("ix_uri_lookup", postgresql_ops={})

    op.drop_table("ix_uri")
    with op.batch_alter_table("ix_token", schema=None) as batch_op:
        batch_op.drop_index("ix_token_owner")
        batch_op.drop_index("ix_token_lookup", postgresql_ops={})

    op.drop_table("ix_token")
    with op.batch_alter_table("ix_string", schema=None) as batch_op:
        batch_op.drop_index("ix_string_owner")
        batch_op.drop_index("ix_string_lookup", postgresql_ops={"norm": "text_pattern_ops"})

    op.drop_table("ix_string")
    with op.batch_alter_table("ix_reference", schema=None) as batch_op:
        batch_op.drop_index("ix_reference_patient")
        batch_op.drop_index("ix_reference_owner")
        batch_op.drop_index("ix_reference_lookup", postgresql_ops={})

    op.drop_table("ix_reference")
    with op.batch_alter_table("ix_quantity", schema=None) as batch_op:
        batch_op.drop_index("ix_quantity_owner")
        batch_op.drop_index("ix_quantity_lookup", postgresql_ops={})

    op.drop_table("ix_quantity")
    with op.batch_alter_table("ix_number", schema=None) as batch_op:
        batch_op.drop_index("ix_number_owner")
        batch_op.drop_index("ix_number_lookup", postgresql_ops={})

    op.drop_table("ix_number")
    with op.batch_alter_table("ix_date", schema=None) as batch_op:
        batch_op.drop_index("ix_date_owner")
        batch_op.drop_index("ix_date_lookup", postgresql_ops={})

    op.drop_table("ix_date")
    op.drop_table("export_job")
