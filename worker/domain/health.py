"""A job's health between cycles: escrow retries, quarantine, and the accidental-deletion guard.

Pure rules, with the clock passed in:
- an object whose export failed is escrowed and retried at the next cycle, then after 6 h, 12 h,
  24 h, then daily, until 28 days after its first failure, when it is dropped;
- a cycle that fails as a whole, or whose failures exceed 40 % of its exports, puts the job in
  quarantine; scheduled cycles then back off (the interval, 2 h, 6 h, then 24 h) and the first
  healthy cycle ends the quarantine;
- deletions (deletes and disables) are counted before any is sent, together with those the job
  made within the deletion window (24 h by default); over the threshold they are staged until an
  operator allows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

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
    # Released by an operator over the threshold: carried out (again, if it failed) without
    # being counted again, until it is made or its user comes back.
    approved: bool = False


DEFAULT_DELETION_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class WindowDeletions:
    """What the job deprovisioned itself since a moment, as its provisioning log tells it."""

    deleted: int = 0  # soft deletes: those links are no longer live
    disabled: int = 0  # disables: the links stay live

    @property
    def total(self) -> int:
        return self.deleted + self.disabled


@dataclass(frozen=True)
class DeletionVerdict:
    """The threshold's judgement of a cycle's deletions, as plain numbers for people and tools."""

    pending: int  # this cycle's deletions, and those still staged by earlier ones
    carried_out: int  # deletions and disables the job made since the window started
    linked: int  # live links now, before this cycle's deletions
    base: int  # linked users when the window started: what `percent` is of
    window_start: datetime
    window: timedelta
    count: int | None
    percent: float | None
    exceeded: bool

    @property
    def counted(self) -> int:
        """What the threshold is compared with."""
        return self.pending + self.carried_out

    def describe(self) -> str:
        limits = []
        if self.count is not None:
            limits.append(f"count {self.count}")
        if self.percent is not None:
            limits.append(f"{self.percent:g}% of {self.base} linked users")
        over = "over" if self.exceeded else "within"
        counted = f"{self.pending} deletions"
        if self.carried_out:
            since = self.window_start.strftime("%Y-%m-%d %H:%M UTC")
            counted += (
                f" + {self.carried_out} made in the deletion window (since {since})"
                f" = {self.counted}"
            )
        return f"{counted}, {over} the threshold ({' or '.join(limits) or 'none'})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "deletions": self.pending,
            "carried_out_in_window": self.carried_out,
            "counted": self.counted,
            "linked": self.linked,
            "linked_at_window_start": self.base,
            "window": {
                "start": self.window_start.isoformat(),
                "length_s": int(self.window.total_seconds()),
            },
            "threshold": {
                "count": self.count,
                "percent": self.percent,
                "window_s": int(self.window.total_seconds()),
            },
            "exceeded": self.exceeded,
        }


@dataclass(frozen=True)
class DeletionThreshold:
    """How many deprovisionings the job may make without an operator, over a rolling window.

    The deletions (soft deletes and disables) a cycle wants to make, those still staged by
    earlier cycles, and those the job made within the window are counted together: a mass
    deletion that reaches the job in parts, over several cycles, is judged as a whole. The
    window is rolling (`window` long) and starts again when an operator's approval is used, so
    approved deletions do not hold back the next small one.
    """

    count: int | None = 500
    percent: float | None = None
    window: timedelta = DEFAULT_DELETION_WINDOW

    def window_start(self, now: datetime, approved_at: datetime | None = None) -> datetime:
        """Where the window that ends now starts: `window` ago, or the last approval if later."""
        start = now - self.window
        return max(start, approved_at) if approved_at is not None else start

    def exceeded(self, deletions: int, linked: int) -> bool:
        """Whether this many deletions, out of `linked` live target users, is too many."""
        if self.count is not None and deletions > self.count:
            return True
        if self.percent is not None and linked > 0:
            return deletions * 100.0 / linked > self.percent
        return False

    def judge(
        self,
        *,
        pending: int,
        linked: int,
        done: WindowDeletions,
        window_start: datetime,
    ) -> DeletionVerdict:
        """The verdict on `pending` deletions, given what the window already holds.

        `percent` is of the users linked when the window started: those linked now plus those
        the window's soft deletes unlinked (its disables are still linked).
        """
        base = linked + done.deleted
        return DeletionVerdict(
            pending=pending,
            carried_out=done.total,
            linked=linked,
            base=base,
            window_start=window_start,
            window=self.window,
            count=self.count,
            percent=self.percent,
            exceeded=self.exceeded(pending + done.total, base),
        )


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
    # When deletions an operator allowed were last made: the deletion window starts there.
    deletions_approved_at: datetime | None = None

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
    approval_spent: bool = False,
    failed: bool = False,
    interval: timedelta,
    now: datetime,
) -> JobState:
    """The job's state once a cycle has finished (dry runs do not count).

    `state` is read after the cycle, so an operator's pause or release made meanwhile stands;
    a release is used up by the cycle that carried the deletions out, and the deletion window
    starts again then: what the operator approved does not count against what follows. An
    approval that cycle did not need (`approval_spent`: it began with the approval and ran its
    deletion phase, within the threshold or with nothing left to delete) lapses all the same:
    it was given for the deletions held then, not for a later one.
    """
    allow = state.allow_deletes and not released_deletions and not approval_spent
    approved_at = now if released_deletions else state.deletions_approved_at
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
            deletions_approved_at=approved_at,
        )
    if failed:
        # Failed, but not (yet) a reason for quarantine: count it, keep the schedule.
        return replace(
            state,
            failures=state.failures + 1,
            allow_deletes=allow,
            deletions_approved_at=approved_at,
        )
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
            deletions_approved_at=approved_at,
        )
    return JobState(
        job=state.job, paused=state.paused, allow_deletes=allow, deletions_approved_at=approved_at
    )
