"""Which notifications a finished cycle raises, and when an undelivered one is tried again.

Pure rules on the job's state before and after a cycle (`JobState`, see health.py):
- `quarantine` when the job enters quarantine because it fails (as a whole, or too many of its
  exports): not for each cycle while the quarantine lasts;
- `staged_deletions` when a cycle holds deletions over the threshold and the job was not already
  holding them (`Quarantine / TooManyDeletes`);
- `cycle_failed` on the first cycle that fails as a whole after a cycle that did not;
- `recovered` on the first healthy cycle after failures or a quarantine.

Each occurrence has a stable id (its kind, job and the run that caused it), so seeing the same
transition twice (a resumed cycle, an observer called again) still sends one message. Delivery
retries back off from 10 s, doubling, to at most an hour between attempts, and stop 24 h after
the first. Events carry job-level facts only (ids, counts, reasons, times), never a user's values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from worker.domain.event_kinds import EventKind
from worker.domain.health import JobState, QuarantineReason

RETRY_FIRST = timedelta(seconds=10)
RETRY_MAX = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)
ERROR_MAX_CHARS = 500
MASK = "[REDACTED]"
_BEARER_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9\-_.~+/=]+", re.IGNORECASE)
# The quarantines that mean "the job fails"; TooManyDeletes is a hold, told as staged_deletions.
FAILING_REASONS = frozenset(
    {QuarantineReason.EXCEPTION.value, QuarantineReason.ESCROW_PROPORTION.value}
)


@dataclass(frozen=True)
class DeletionHold:
    """Deletions a cycle counted over the job's threshold and did not make."""

    count: int
    linked: int
    threshold_count: int | None
    threshold_percent: float | None
    # What the threshold was judged on (docs/safety.md): this cycle's deletions, those made
    # within the window, and the window's length; 0 where the check did not say.
    counted: int = 0
    made_in_window: int = 0
    window_s: int = 0

    @classmethod
    def from_check(cls, check: Mapping[str, Any] | None) -> DeletionHold | None:
        """From a cycle's deletion check (`CycleResult.deletions`), when it held them."""
        if not check or not check.get("held"):
            return None
        threshold = check.get("threshold") or {}
        return cls(
            count=int(check.get("deletions", 0)),
            linked=int(check.get("linked", 0)),
            threshold_count=threshold.get("count"),
            threshold_percent=threshold.get("percent"),
            counted=int(check.get("counted") or 0),
            made_in_window=int(check.get("carried_out_in_window") or 0),
            window_s=int(threshold.get("window_s") or 0),
        )

    def window_text(self) -> str:
        """`23 counted: 3 made in the last 24h and 20 waiting`, or "" when not known."""
        if not self.window_s:
            return ""
        hours = self.window_s / 3600
        length = f"{hours:g}h" if hours >= 1 else f"{self.window_s // 60}m"
        return (
            f"{self.counted} counted: {self.made_in_window} made in the last {length} and "
            f"{self.counted - self.made_in_window} waiting"
        )

    def threshold_text(self) -> str:
        limits = []
        if self.threshold_count is not None:
            limits.append(f"{self.threshold_count} deletions")
        if self.threshold_percent is not None:
            limits.append(f"{self.threshold_percent:g}% of {self.linked} linked users")
        return " or ".join(limits) or "none"


@dataclass(frozen=True)
class CycleEnd:
    """What a finished (not dry) cycle tells the rules."""

    job: str
    run_id: str
    status: str  # success | failed
    at: datetime
    error: str = ""
    held: DeletionHold | None = None


@dataclass(frozen=True)
class Event:
    """One occurrence of something worth telling people, as plain data."""

    id: str
    kind: EventKind
    job: str
    run_id: str
    occurred_at: datetime
    reason: str | None = None  # Graph's quarantine reason
    error: str = ""  # the job-level error, secrets masked
    since: datetime | None = None  # when the quarantine (or the hold) began
    next_attempt_at: datetime | None = None
    failures: int = 0  # successive cycles that failed
    deletions: DeletionHold | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "job": self.job,
            "run_id": self.run_id,
            "occurred_at": self.occurred_at.isoformat(),
            "reason": self.reason,
            "error": self.error,
            "since": _iso(self.since),
            "next_attempt_at": _iso(self.next_attempt_at),
            "failures": self.failures,
            "deletions": None
            if self.deletions is None
            else {
                "count": self.deletions.count,
                "linked": self.deletions.linked,
                "threshold_count": self.deletions.threshold_count,
                "threshold_percent": self.deletions.threshold_percent,
                "counted": self.deletions.counted,
                "made_in_window": self.deletions.made_in_window,
                "window_s": self.deletions.window_s,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        held = data.get("deletions")
        return cls(
            id=str(data["id"]),
            kind=EventKind(data["kind"]),
            job=str(data["job"]),
            run_id=str(data["run_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            reason=data.get("reason"),
            error=str(data.get("error") or ""),
            since=_from_iso(data.get("since")),
            next_attempt_at=_from_iso(data.get("next_attempt_at")),
            failures=int(data.get("failures") or 0),
            deletions=None if held is None else DeletionHold(**held),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: Any) -> datetime | None:
    return None if not value else datetime.fromisoformat(str(value))


def failing(state: JobState) -> bool:
    """Whether the job's last cycles failed (or it is quarantined for failing)."""
    return state.failures > 0 or state.quarantine_reason in FAILING_REASONS


def holding(state: JobState) -> bool:
    return state.quarantine_reason == QuarantineReason.TOO_MANY_DELETES.value


def occurrence_id(kind: EventKind, job: str, run_id: str) -> str:
    """Stable for one transition: the run that caused it, whoever sees it and how often."""
    return f"{kind.value}:{job}:{run_id}"


def events_after_cycle(before: JobState, after: JobState | None, end: CycleEnd) -> list[Event]:
    """The events a cycle raised, from the job's state when it started and once it ended.

    `after` is None when the job's state could not be read after the cycle: then only the
    cycle's own failure can be told.
    """

    def event(kind: EventKind, **fields: Any) -> Event:
        return Event(
            id=occurrence_id(kind, end.job, end.run_id),
            kind=kind,
            job=end.job,
            run_id=end.run_id,
            occurred_at=end.at,
            **fields,
        )

    events: list[Event] = []
    failed = end.status != "success"
    if failed and not failing(before):
        events.append(
            event(
                EventKind.CYCLE_FAILED,
                error=end.error,
                failures=after.failures if after else before.failures + 1,
            )
        )
    if after is None:
        return events
    if after.quarantine_reason in FAILING_REASONS and before.quarantine_reason not in (
        FAILING_REASONS
    ):
        events.append(
            event(
                EventKind.QUARANTINE,
                reason=after.quarantine_reason,
                error=after.quarantine_error or end.error,
                since=after.quarantine_since,
                next_attempt_at=after.next_attempt_at,
                failures=after.failures,
            )
        )
    if end.held is not None and not holding(before):
        events.append(
            event(
                EventKind.STAGED_DELETIONS,
                reason=QuarantineReason.TOO_MANY_DELETES.value,
                since=after.quarantine_since if holding(after) else end.at,
                deletions=end.held,
            )
        )
    healthy = not failed and not after.in_quarantine and after.failures == 0
    if healthy and (failing(before) or before.in_quarantine):
        events.append(
            event(
                EventKind.RECOVERED,
                reason=before.quarantine_reason,
                since=before.quarantine_since,
                failures=before.failures,
            )
        )
    return events


def scrub(text: str, secrets: Iterable[str], limit: int = ERROR_MAX_CHARS) -> str:
    """A job-level error fit for a message: known secret values and bearer tokens masked, cut
    to `limit` characters."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _BEARER_RE.sub(r"\1" + MASK, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrubbed(event: Event, secrets: Iterable[str]) -> Event:
    return replace(event, error=scrub(event.error, secrets)) if event.error else event


# delivery ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """One event on its way to one notifier (each notifier retries on its own)."""

    event: Event
    notifier: str  # the notifier's key
    first_at: datetime
    attempts: int = 0
    last_error: str = ""

    @property
    def id(self) -> str:
        return delivery_id(self.event.id, self.notifier)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event.to_json(),
            "notifier": self.notifier,
            "first_at": self.first_at.isoformat(),
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Delivery:
        return cls(
            event=Event.from_json(data["event"]),
            notifier=str(data["notifier"]),
            first_at=datetime.fromisoformat(data["first_at"]),
            attempts=int(data.get("attempts") or 0),
            last_error=str(data.get("last_error") or ""),
        )


def delivery_id(event_id: str, notifier: str) -> str:
    return f"{event_id}@{notifier}"


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 10 s, 20 s, 40 s, ... at most 1 h."""
    exponent = min(max(attempts, 1) - 1, 20)
    return min(RETRY_FIRST * (1 << exponent), RETRY_MAX)


def next_attempt(delivery: Delivery, now: datetime) -> datetime | None:
    """When to try a delivery that just failed (its `attempts` counts this one), or None when
    it has been tried long enough."""
    if now - delivery.first_at >= GIVE_UP_AFTER:
        return None
    return min(now + retry_delay(delivery.attempts), delivery.first_at + GIVE_UP_AFTER)
