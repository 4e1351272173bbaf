"""source mail in links and the provisioning log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this revision have no mail: an empty one, as the models default to.
    for table in ("links", "provisioning_log"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("source_mail", sa.String(length=320), nullable=False, server_default="")
            )


def downgrade() -> None:
    for table in ("provisioning_log", "links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("source_mail")
