"""when approved deletions were last made: where the deletion window starts again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

One nullable column on job_state: nothing already stored changes. A job migrated from 0005 has
no approval on record, so its deletion window is simply the last 24 h (or the configured window)
of its provisioning log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deletions_approved_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("job_state", schema=None) as batch_op:
        batch_op.drop_column("deletions_approved_at")
