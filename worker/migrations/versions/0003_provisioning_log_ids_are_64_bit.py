"""provisioning log ids are 64-bit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

SQLite's INTEGER PRIMARY KEY is 64-bit already, so this changes nothing there; on PostgreSQL the
SERIAL column and its sequence were 32-bit and would run out after 2**31 log rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.alter_column("provisioning_log", "id", existing_type=sa.Integer(), type_=sa.BigInteger())
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS bigint', "
        "pg_get_serial_sequence('provisioning_log', 'id')); END $$"
    )


def downgrade() -> None:
    if not _postgresql():
        return
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER SEQUENCE %s AS integer', "
        "pg_get_serial_sequence('provisioning_log', 'id')); END $$"
    )
    op.alter_column("provisioning_log", "id", existing_type=sa.BigInteger(), type_=sa.Integer())
