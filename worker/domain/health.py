"""A job's health between cycles: escrow retries, quarantine, and the accidental-deletion guard.

Pure rules, with the clock passed in:
- an object whose export failed is escrowed and retried at the next cycle, then after 6 h, 12 h,
  24 h, then daily, until 28 days after its first failure, when it is dropped;
- a cycle that fails as a whole, or whose failures exceed 40 % of its exports, puts the job in
  quarantine; scheduled cycles then back off (the interval, 2 h, 6 h, then 24 h) and the first
  healthy cycle ends the quarantine;
- deletions (deletes and disables) are counted before any is sent; over the threshold they are
  staged until an operator allows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

ESCROW_DELAYS = (timedelta(0), timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))
ESCROW_DAILY = timedelta(days=1)
ESCROW_LIFETIME = timedelta(days=28)
QUARANTINE_DELAYS = (timedelta(hours=2), timedelta(hours=6), timedelta(hours=24))
FAILURE_PROPORTION = 0.40
# Below this many failures a cycle is not judged by proportion (two failures of three is noise).
FAILURE_PROPORTION_MIN = 5
# A cycle cut short by throttling or an outage is resumed, not quarantined, unless it keeps failing.
TRANSIENT_FAILURES_BEFORE_QUARANTINE = 3
EXPORT_KEYS = ("create", "update", "delete", "disable", "restore")


class QuarantineReason(StrEnum):
    """Graph's synchronizationQuarantine reasons that apply here."""

    TOO_MANY_DELETES = "TooManyDeletes"
    ESCROW_PROPORTION = "EncounteredEscrowProportionThreshold"
    EXCEPTION = "EncounteredQuarantineException"


@dataclass(frozen=True)
class Escrow:
    job: str
    source_id: str
    attempts: int
    first_failed_at: datetime
    next_attempt_at: datetime
    last_error: str = ""


def escrow_after_failure(
    previous: Escrow | None, job: str, source_id: str, error: str, now: datetime
) -> Escrow | None:
    """The escrow of an object that just failed (again), or None when it expires."""
    first = previous.first_failed_at if previous else now
    attempts = (previous.attempts if previous else 0) + 1
    delay = ESCROW_DELAYS[attempts - 1] if attempts <= len(ESCROW_DELAYS) else ESCROW_DAILY
    next_attempt = now + delay
    if next_attempt - first > ESCROW_LIFETIME:
        return None
    return Escrow(job, source_id, attempts, first, next_attempt, error[:2000])


@dataclass(frozen=True)
class StagedDeletion:
    """A deprovisioning decided by a cycle, carried out when the cycle's deletions are counted."""

    source_id: str
    reason: str
    deleted: bool  # the source user is gone, rather than out of scope


@dataclass(frozen=True)
class DeletionThreshold:
    count: int | None = 500
    percent: float | None = None

    def exceeded(self, deletions: int, linked: int) -> bool:
        """Whether this many deletions, out of `linked` live target users, is too many."""
        if self.count is not None and deletions > self.count:
            return True
        if self.percent is not None and linked > 0:
            return deletions * 100.0 / linked > self.percent
        return False

    def describe(self, deletions: int, linked: int) -> str:
        limits = []
        if self.count is not None:
            limits.append(f"count {self.count}")
        if self.percent is not None:
            limits.append(f"{self.percent:g}% of {linked} linked users")
        over = "over" if self.exceeded(deletions, linked) else "within"
        return f"{deletions} deletions, {over} the threshold ({' or '.join(limits) or 'none'})"


@dataclass(frozen=True)
class JobState:
    """What an operator or a failing job changed about how the job runs."""

    job: str
    paused: bool = False
    quarantine_reason: str | None = None
    quarantine_since: datetime | None = None
    quarantine_error: str = ""
    next_attempt_at: datetime | None = None
    failures: int = 0  # successive cycles that failed as a whole
    allow_deletes: bool = False  # the next cycle may exceed the deletion threshold, once

    @property
    def in_quarantine(self) -> bool:
        return self.quarantine_reason is not None


def cycle_verdict(
    counts: Mapping[str, int],
    failed_as_a_whole: bool,
    *,
    transient: bool = False,
    failures_before: int = 0,
) -> QuarantineReason | None:
    """Why a finished cycle should put (or keep) its job in quarantine, if it should."""
    if failed_as_a_whole:
        if transient and failures_before + 1 < TRANSIENT_FAILURES_BEFORE_QUARANTINE:
            return None
        return QuarantineReason.EXCEPTION
    failures = counts.get("failure", 0)
    exports = sum(counts.get(key, 0) for key in EXPORT_KEYS) + failures
    if failures >= FAILURE_PROPORTION_MIN and failures > FAILURE_PROPORTION * exports:
        return QuarantineReason.ESCROW_PROPORTION
    return None


def after_cycle(
    state: JobState,
    *,
    reason: QuarantineReason | None,
    error: str,
    staged_deletes: bool,
    released_deletions: bool = False,
    failed: bool = False,
    interval: timedelta,
    now: datetime,
) -> JobState:
    """The job's state once a cycle has finished (dry runs do not count).

    `state` is read after the cycle, so an operator's pause or release made meanwhile stands;
    a release is used up only by the cycle that carried the deletions out.
    """
    allow = state.allow_deletes and not released_deletions
    if reason is not None:
        failures = state.failures + 1
        delay = max(interval, QUARANTINE_DELAYS[min(failures, len(QUARANTINE_DELAYS)) - 1])
        return JobState(
            job=state.job,
            paused=state.paused,
            quarantine_reason=reason.value,
            quarantine_since=state.quarantine_since if state.in_quarantine else now,
            quarantine_error=error,
            next_attempt_at=now + delay,
            failures=failures,
            allow_deletes=allow,
        )
    if failed:
        # Failed, but not (yet) a reason for quarantine: count it, keep the schedule.
        return replace(state, failures=state.failures + 1, allow_deletes=allow)
    if staged_deletes:
        # Creates and updates still flow on the normal schedule; only the deletions wait.
        return JobState(
            job=state.job,
            paused=state.paused,
            quarantine_reason=QuarantineReason.TOO_MANY_DELETES.value,
            quarantine_since=(
                state.quarantine_since
                if state.quarantine_reason == QuarantineReason.TOO_MANY_DELETES
                else now
            ),
            quarantine_error=error,
            next_attempt_at=None,
            failures=0,
            allow_deletes=allow,
        )
    return JobState(job=state.job, paused=state.paused, allow_deletes=allow)
