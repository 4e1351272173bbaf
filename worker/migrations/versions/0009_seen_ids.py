"""seen ids: a full cycle's pages record the users they read in rows of their own

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

- seen_ids (new, empty): one row per page of a full cycle, the ids it read packed in one value
  (worker/adapters/state/compact.py, `pack_ids`). The sweep finds the unseen links against
  them, instead of a page rewriting every link it read to mark it (on PostgreSQL each such
  UPDATE is a new row version and new index entries: docs/performance.md).
- links.last_seen_run stays and is still honoured: a full cycle under way when 0008 was
  upgraded has marked its links there, and finishes right (those marks and the new rows both
  count as seen).

The downgrade writes every seen row's ids back into links.last_seen_run (the mark 0008 reads),
so a cycle under way keeps what it saw, then drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from worker.adapters.state.compact import pack_id, unpack_ids

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHUNK = 500  # ids per UPDATE in the downgrade


def upgrade() -> None:
    op.create_table(
        "seen_ids",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.LargeBinary(), nullable=False),
        sa.Column("ids", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("seen_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seen_ids_job"), ["job"], unique=False)


def downgrade() -> None:
    connection = op.get_bind()
    seen = sa.table(
        "seen_ids",
        sa.column("id", sa.BigInteger()),
        sa.column("job", sa.String()),
        sa.column("run_id", sa.LargeBinary()),
        sa.column("ids", sa.LargeBinary()),
    )
    links = sa.table(
        "links",
        sa.column("job", sa.String()),
        sa.column("source_id", sa.LargeBinary()),
        sa.column("last_seen_run", sa.LargeBinary()),
    )
    # Oldest first: were two runs of a job recorded, the newest's mark is the one left.
    rows = connection.execute(sa.select(seen.c.job, seen.c.run_id, seen.c.ids).order_by(seen.c.id))
    for job, run_id, packed in rows.fetchall():
        keys = [pack_id(source_id) for source_id in unpack_ids(packed)]
        for start in range(0, len(keys), CHUNK):
            connection.execute(
                sa.update(links)
                .where(links.c.job == job, links.c.source_id.in_(keys[start : start + CHUNK]))
                .values(last_seen_run=run_id)
            )
    with op.batch_alter_table("seen_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_ids_job"))
    op.drop_table("seen_ids")
