"""What one cycle did, as the service returns it: status, counts, outcomes, the deletion check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.domain.model import ObjectOutcome, empty_counts
from worker.domain.records import planned_row
from worker.service.deletions import DeletionCheck


@dataclass
class CycleResult:
    job: str
    run_id: str
    mode: str
    dry_run: bool
    counts: dict[str, int]
    duration_s: float
    status: str = "success"
    error: str = ""
    transient: bool = False
    # The objects written or failed (in a dry run every object, skipped ones too), from every
    # page, wherever it ran.
    # A real cycle keeps a bounded sample (worker/service/feed.py); `reported` counts them all.
    outcomes: list[ObjectOutcome] = field(default_factory=list)
    reported: int | None = None
    # When the cycle had deletions to make: how they were judged, and whether they were held.
    deletion_check: DeletionCheck | None = None

    @property
    def reported_count(self) -> int:
        """How many objects the cycle reported, `outcomes` holding all or a sample of them."""
        kept = len(self.outcomes)
        return kept if self.reported is None else max(self.reported, kept)

    @property
    def deletions(self) -> dict[str, Any] | None:
        """The deletion check as `run --json` shows it."""
        return self.deletion_check.as_dict() if self.deletion_check else None

    def outcome_rows(self) -> list[dict[str, Any]]:
        """Every reported object's outcome as `run --dry-run --json` lists it (`planned`)."""
        return [planned_row(o) for o in self.outcomes]

    def summary(self) -> dict[str, Any]:
        """The `run --json` object (the README lists its fields)."""
        return {
            "job": self.job,
            "run_id": self.run_id,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "counts": {key: self.counts.get(key, 0) for key in empty_counts()},
            "duration_s": round(self.duration_s, 3),
        }
