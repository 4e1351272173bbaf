"""one link per target user and job: a unique index on links (job, target_id)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Two workers exporting pages of one cycle at the same time could each link one target guest to a
different source user (two users sharing an address): each checked the links before the other
committed. The unique index makes the second commit fail (a Conflict, which the page pipeline
turns into an AmbiguousMatch failure for that user, as one worker alone would have).

Existing duplicates are merged before the index is made: of the links of a job to one target
user, the one kept is a live one (active or disabled) before a soft-deleted one, then the oldest
(the first to take the user: the later one is the race's loser), then the lowest source id.
Each link removed is named in the migration's log (job, source user, target user, state, the
source user kept). The target user is left as it is and stays linked; the source user whose
link went is met again by the next cycle, which refuses to give it the taken target user and
says so (AmbiguousMatch in the provisioning log), as it does for any two source users matching
one target user. The downgrade makes the plain index on target_id again.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from worker.adapters.state.compact import unpack_id

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

LIVE = ("active", "disabled")

_links = sa.table(
    "links",
    sa.column("job", sa.String()),
    sa.column("source_id", sa.LargeBinary()),
    sa.column("target_id", sa.LargeBinary()),
    sa.column("state", sa.String()),
    sa.column("source_label", sa.String()),
    sa.column("created_at", sa.DateTime()),
)


def _merge_duplicates(connection: sa.Connection) -> int:
    """Keep one link per (job, target_id); returns how many were removed."""
    groups = connection.execute(
        sa.select(_links.c.job, _links.c.target_id)
        .group_by(_links.c.job, _links.c.target_id)
        .having(sa.func.count() > 1)
    ).fetchall()
    removed = 0
    for job, target_id in groups:
        rows = connection.execute(
            sa.select(_links.c.source_id, _links.c.state, _links.c.source_label)
            .where(_links.c.job == job, _links.c.target_id == target_id)
            .order_by(
                sa.case((_links.c.state.in_(LIVE), 0), else_=1),
                _links.c.created_at,
                _links.c.source_id,
            )
        ).fetchall()
        kept, dropped = rows[0], rows[1:]
        for source_id, state, label in dropped:
            connection.execute(
                sa.delete(_links).where(_links.c.job == job, _links.c.source_id == source_id)
            )
            log.warning(
                "0010: job %s: the link of source user %s (%s, %s) to target user %s is "
                "removed: source user %s is linked to it and keeps it; the next cycle reports "
                "%s as an AmbiguousMatch",
                job,
                unpack_id(source_id),
                label or "no label",
                state,
                unpack_id(target_id),
                unpack_id(kept[0]),
                unpack_id(source_id),
            )
            removed += 1
    return removed


def upgrade() -> None:
    removed = _merge_duplicates(op.get_bind())
    if removed:
        log.warning("0010: %d duplicate links removed (one kept for each target user)", removed)
    op.drop_index("ix_links_target_id", table_name="links")
    op.create_index("uq_links_job_target_id", "links", ["job", "target_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_links_job_target_id", table_name="links")
    op.create_index("ix_links_target_id", "links", ["target_id"], unique=False)
