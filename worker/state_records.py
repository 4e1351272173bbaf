"""The records the state stores keep: a job's cursor (watermark and progress), the lease of its
lock, and its runs. worker/ports.py exports them with the ports that use them.

Apart from the ports so that `tenant-sync status`, which reads these through the Redis and SQL
adapters, does not define the cycle's two dozen other dataclasses of worker/ports.py: Python
compiles every method of a dataclass as it defines it (docs/performance.md, "CLI start-up").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from worker.domain.errors import Transient


@dataclass
class Watermark:
    """Where the last completed cycle left off."""

    users_delta_link: str
    groups_delta_link: str | None
    fingerprint: str
    completed_at: str
    last_full_at: str


class Phase(StrEnum):
    """Where a cycle is. The values are stored in the Redis cursor: never change one, so a
    cycle saved by an earlier release still resumes."""

    GROUPS = "groups"
    USERS = "users"
    PENDING = "pending"  # incremental: users whose group membership changed
    ESCROW = "escrow"  # incremental: failed objects whose next attempt is due
    SWEEP = "sweep"  # full: links the round did not see
    PROVISION_GROUPS = "provision_groups"  # groups created and filled (docs/groups.md)
    RECHECK = "recheck"  # the source's changes since the round, before deletions are judged
    MANAGERS = "managers"  # manager references the pages could not resolve (docs/manager.md)
    DELETIONS = "deletions"
    DONE = "done"


@dataclass
class Progress:
    """The resumable position of a cycle in progress."""

    run_id: str
    mode: str
    fingerprint: str
    phase: Phase
    next_link: str | None = None
    groups_delta_link: str | None = None
    users_delta_link: str | None = None
    started_at: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    seen_users: int = 0
    # Manager references the pages left for the managers phase: user's source id -> its
    # manager's source id (None: to be read). Absent from cursors of earlier releases.
    managers: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read back from the cursor's JSON as a plain string.
        self.phase = Phase(self.phase)


@dataclass
class Cursor:
    watermark: Watermark | None = None
    progress: Progress | None = None


@dataclass(frozen=True)
class Lease:
    """Proof of holding a job's lock: what the lock holds for this holder."""

    job: str
    token: str


class LockLost(Transient):
    """The job's lock expired under this cycle (and another may hold it): stop, save nothing."""


class AlreadyRunning(Exception):
    """Another cycle of this job holds the lock."""


@dataclass
class RunRecord:
    run_id: str
    job: str
    mode: str
    dry_run: bool
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
