"""the audit trail of operator actions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

A new table only: nothing already stored changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        # 64-bit ids on PostgreSQL (BIGSERIAL); SQLite's INTEGER PRIMARY KEY is its rowid.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("actor_kind", sa.String(length=10), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("job", sa.String(length=200), nullable=True),
        sa.Column("result", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_log_job_id", ["job", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_job_id")
        batch_op.drop_index("ix_audit_log_at")
    op.drop_table("audit_log")
