"""the deletion window: when approved deletions were last made, and which deletions are approved

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Three columns; nothing already stored changes:
- job_state.deletions_approved_at (nullable): the deletion window starts again there. A job
  migrated from 0005 has no approval on record: its window is the last 24 h (or the configured
  window) of its provisioning log.
- staged_deletes.approved: released by an operator over the threshold, made without being
  counted again (and kept staged if it fails). Rows from 0005 were not released: false.
- provisioning_log.approved: a deprovisioning so released, which the window does not count.
  Rows from 0005: false, so every deletion already made counts, the safe reading.
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
    for table in ("staged_deletes", "provisioning_log"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("approved", sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in ("provisioning_log", "staged_deletes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("approved")
    with op.batch_alter_table("job_state", schema=None) as batch_op:
        batch_op.drop_column("deletions_approved_at")
