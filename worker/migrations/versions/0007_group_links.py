"""group provisioning: the groups tenant-sync created, and the object type of log rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

- group_links (new, empty): one row per source group whose target group tenant-sync created
  (docs/groups.md); only a group linked here is ever changed or deleted in the target.
- provisioning_log.object_type: `User` or `Group`. Every row from 0006 is about a user: `User`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_links",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "source_id"),
    )
    with op.batch_alter_table("group_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_links_target_id"), ["target_id"], unique=False)
    with op.batch_alter_table("provisioning_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("object_type", sa.String(20), nullable=False, server_default="User")
        )


def downgrade() -> None:
    with op.batch_alter_table("provisioning_log", schema=None) as batch_op:
        batch_op.drop_column("object_type")
    with op.batch_alter_table("group_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_links_target_id"))
    op.drop_table("group_links")
