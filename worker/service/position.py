"""Where a running cycle is, and moving it: the progress saved in the cursor, the watermark.

A cycle starts from the job's cursor: it resumes the saved progress of an interrupted cycle of
the same configuration and mode (taking its counts from SQL, which may hold a page committed
just before the crash that the saved counts missed), or starts a new one, full or incremental.
The progress moves only after SQL has committed what it covers (`save`, `advance`), and only
while the cycle holds the job's lock (the lease); `complete` stores the new watermark.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from worker.domain.errors import StopSync
from worker.domain.job import JobSpec
from worker.domain.model import Mode, empty_counts
from worker.ports import (
    Cursor,
    CursorStore,
    Lease,
    Ledger,
    LiveProgress,
    Phase,
    Progress,
    Watermark,
)


class Position:
    def __init__(
        self,
        job: str,
        *,
        cursor: Cursor,
        progress: Progress,
        cursors: CursorStore,
        live: LiveProgress,
        lease: Lease | None,
    ) -> None:
        self.job = job
        self.cursor = cursor
        self.progress = progress
        self.cursors = cursors
        self.live = live
        self.lease = lease

    @property
    def watermark(self) -> Watermark | None:
        return self.cursor.watermark

    def save(self) -> None:
        self.cursor.progress = self.progress
        self.cursors.save(self.job, self.cursor, self.lease)

    def advance(self, phase: Phase) -> None:
        self.progress.phase = phase
        self.progress.next_link = None
        self.save()
        self.live.phase(self.job, phase)

    def restart_full(self) -> None:
        """The delta token was refused: the same run goes on as a full cycle."""
        p = self.progress
        self.progress = Progress(
            run_id=p.run_id,
            mode=Mode.FULL.value,
            fingerprint=p.fingerprint,
            phase=Phase.GROUPS,
            started_at=p.started_at,
            counts=p.counts,
            managers=p.managers,
        )
        self.save()

    def complete(self, now: datetime) -> None:
        """The cycle is done: its delta links become the job's watermark."""
        p = self.progress
        previous = self.cursor.watermark
        if p.users_delta_link is None:
            raise StopSync("the cycle ended without a users delta link")
        stamp = now.isoformat()
        self.cursor.watermark = Watermark(
            users_delta_link=p.users_delta_link,
            groups_delta_link=p.groups_delta_link
            or (previous.groups_delta_link if previous else None),
            fingerprint=p.fingerprint,
            completed_at=stamp,
            last_full_at=stamp
            if p.mode == Mode.FULL
            else (previous.last_full_at if previous else stamp),
        )
        self.cursor.progress = None
        self.cursors.save(self.job, self.cursor)


def starting_position(
    spec: JobSpec,
    *,
    requested: str,
    cursors: CursorStore,
    ledger: Ledger,
    live: LiveProgress,
    lease: Lease | None,
    clock: Callable[[], datetime],
) -> Position:
    """The interrupted cycle to resume, or a new one."""
    cursor = cursors.load(spec.name)
    fingerprint = spec.fingerprint
    previous = cursor.progress
    if (
        previous is not None
        and previous.fingerprint == fingerprint
        and requested in ("auto", previous.mode)
    ):
        # Resume where its last committed page ended, with the counts SQL holds for it.
        previous.counts = {**empty_counts(), **ledger.run_counts(spec.name, previous.run_id)}
        progress = previous
    else:
        progress = Progress(
            run_id=str(uuid.uuid4()),
            mode=_mode(spec, cursor, requested, clock()).value,
            fingerprint=fingerprint,
            phase=Phase.GROUPS,
            started_at=clock().isoformat(),
            counts=empty_counts(),
        )
    return Position(
        spec.name, cursor=cursor, progress=progress, cursors=cursors, live=live, lease=lease
    )


def _mode(spec: JobSpec, cursor: Cursor, requested: str, now: datetime) -> Mode:
    watermark = cursor.watermark
    if requested == Mode.FULL or watermark is None or watermark.fingerprint != spec.fingerprint:
        return Mode.FULL
    if (
        requested == "auto"
        and spec.full_every is not None
        and now - datetime.fromisoformat(watermark.last_full_at) >= spec.full_every
    ):
        return Mode.FULL
    return Mode.INCREMENTAL
