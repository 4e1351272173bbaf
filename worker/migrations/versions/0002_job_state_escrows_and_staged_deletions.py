"""job state, escrows and staged deletions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escrows",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job", "source_id"),
    )
    with op.batch_alter_table("escrows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escrows_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "job_state",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("quarantine_reason", sa.String(length=60), nullable=True),
        sa.Column("quarantine_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quarantine_error", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("allow_deletes", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job"),
    )
    op.create_table(
        "staged_deletes",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "source_id"),
    )


def downgrade() -> None:
    op.drop_table("staged_deletes")
    op.drop_table("job_state")
    with op.batch_alter_table("escrows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escrows_next_attempt_at"))

    op.drop_table("escrows")
