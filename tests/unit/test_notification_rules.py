"""Which events a cycle raises (once per occurrence), and when a failed delivery is retried."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from worker.domain.health import JobState, QuarantineReason, after_cycle, cycle_verdict
from worker.domain.notifications import (
    CycleEnd,
    DeletionHold,
    Delivery,
    Event,
    EventKind,
    events_after_cycle,
    next_attempt,
    retry_delay,
    scrub,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOLD = DeletionHold(count=16, linked=26, threshold_count=10, threshold_percent=None)


class Job:
    """A job's state through cycles, moved by the real health rules (health.after_cycle)."""

    def __init__(self) -> None:
        self.state = JobState("sync")
        self.now = T0
        self.runs = 0

    def cycle(
        self,
        *,
        failed: bool = False,
        transient: bool = False,
        failures: int = 0,
        held: DeletionHold | None = None,
        released: bool = False,
    ) -> list[Event]:
        self.runs += 1
        self.now += timedelta(minutes=40)
        counts = {"create": 10, "failure": failures}
        reason = cycle_verdict(
            counts, failed, transient=transient, failures_before=self.state.failures
        )
        before = self.state
        self.state = after_cycle(
            before,
            reason=reason,
            error="invalid_client: the secret is wrong" if failed else "",
            staged_deletes=held is not None,
            released_deletions=released,
            failed=failed,
            interval=timedelta(minutes=40),
            now=self.now,
        )
        end = CycleEnd(
            job="sync",
            run_id=f"run-{self.runs}",
            status="failed" if failed else "success",
            at=self.now,
            error="invalid_client: the secret is wrong" if failed else "",
            held=held,
        )
        return events_after_cycle(before, self.state, end)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind.value for e in events]


def test_a_healthy_job_raises_nothing() -> None:
    job = Job()
    for _ in range(3):
        assert job.cycle() == []


def test_quarantine_is_told_once_when_it_starts_and_recovery_once_when_it_ends() -> None:
    job = Job()
    job.cycle()

    first = job.cycle(failed=True)  # bad credentials: quarantined at once
    assert kinds(first) == ["cycle_failed", "quarantine"]
    quarantine = first[1]
    assert quarantine.reason == QuarantineReason.EXCEPTION.value
    assert quarantine.error == "invalid_client: the secret is wrong"
    assert quarantine.since == job.now
    assert quarantine.next_attempt_at == job.now + timedelta(hours=2)
    assert quarantine.failures == 1

    assert job.cycle(failed=True) == []  # still failing, still in quarantine: nothing new
    assert job.cycle(failed=True) == []

    recovered = job.cycle()
    assert kinds(recovered) == ["recovered"]
    assert recovered[0].reason == QuarantineReason.EXCEPTION.value
    assert recovered[0].failures == 3
    assert job.cycle() == []


def test_transient_failures_tell_the_first_failure_then_the_quarantine() -> None:
    job = Job()
    assert kinds(job.cycle(failed=True, transient=True)) == ["cycle_failed"]
    assert job.cycle(failed=True, transient=True) == []  # the second failure in a row
    assert kinds(job.cycle(failed=True, transient=True)) == ["quarantine"]  # the third
    assert kinds(job.cycle()) == ["recovered"]


def test_a_single_failed_cycle_then_a_healthy_one_is_failed_then_recovered() -> None:
    job = Job()
    assert kinds(job.cycle(failed=True, transient=True)) == ["cycle_failed"]
    events = job.cycle()
    assert kinds(events) == ["recovered"]
    assert events[0].reason is None
    assert events[0].failures == 1


def test_too_many_failed_exports_is_a_quarantine_without_a_failed_cycle() -> None:
    job = Job()
    events = job.cycle(failures=30)
    assert kinds(events) == ["quarantine"]
    assert events[0].reason == QuarantineReason.ESCROW_PROPORTION.value


def test_held_deletions_are_told_once_per_hold() -> None:
    job = Job()
    job.cycle()

    events = job.cycle(held=HOLD)
    assert kinds(events) == ["staged_deletions"]
    assert events[0].deletions == HOLD
    assert events[0].since == job.now

    assert job.cycle(held=HOLD) == []  # the same hold, next cycle
    assert job.cycle(held=HOLD) == []

    released = job.cycle(released=True)  # allow-deletes: the deletions are made
    assert kinds(released) == ["recovered"]
    assert released[0].reason == QuarantineReason.TOO_MANY_DELETES.value

    assert kinds(job.cycle(held=HOLD)) == ["staged_deletions"]  # a new hold, later


def test_a_failure_while_deletions_are_held_is_told() -> None:
    job = Job()
    job.cycle(held=HOLD)
    assert kinds(job.cycle(failed=True)) == ["cycle_failed", "quarantine"]


def test_the_same_transition_seen_twice_has_the_same_id() -> None:
    before = JobState("sync")
    after = after_cycle(
        before,
        reason=QuarantineReason.EXCEPTION,
        error="boom",
        staged_deletes=False,
        failed=True,
        interval=timedelta(minutes=40),
        now=T0,
    )
    end = CycleEnd("sync", "run-7", "failed", T0, error="boom")
    first = events_after_cycle(before, after, end)
    # A resumed cycle keeps its run id; observed later, it is the same occurrence.
    again = events_after_cycle(
        before, after, CycleEnd("sync", "run-7", "failed", T0 + timedelta(1))
    )
    assert [e.id for e in first] == [e.id for e in again]
    assert [e.id for e in first] == ["cycle_failed:sync:run-7", "quarantine:sync:run-7"]
    other = events_after_cycle(before, after, CycleEnd("sync", "run-8", "failed", T0))
    assert not {e.id for e in first} & {e.id for e in other}


def test_without_the_state_after_only_the_failure_is_told() -> None:
    end = CycleEnd("sync", "run-1", "failed", T0, error="the database is away")
    assert kinds(events_after_cycle(JobState("sync"), None, end)) == ["cycle_failed"]
    assert events_after_cycle(JobState("sync", failures=2), None, end) == []


def test_events_survive_the_outbox_as_json() -> None:
    job = Job()
    job.cycle()
    event = job.cycle(held=HOLD)[0]
    assert Event.from_json(event.to_json()) == event
    delivery = Delivery(event, "webhook#0-abc", first_at=T0, attempts=2, last_error="HTTP 500")
    assert Delivery.from_json(delivery.to_json()) == delivery


def test_retries_back_off_from_10s_doubling_to_one_hour_and_stop_after_24h() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 11)] == [
        10,
        20,
        40,
        80,
        160,
        320,
        640,
        1280,
        2560,
        3600,
    ]
    assert retry_delay(500) == timedelta(hours=1)
    event = Job().cycle(failed=True)[0]
    delivery = Delivery(event, "n", first_at=T0)
    now, attempts = T0, []
    while True:
        delivery = Delivery(event, "n", first_at=T0, attempts=delivery.attempts + 1)
        at = next_attempt(delivery, now)
        if at is None:
            break
        attempts.append(at)
        now = at
    assert attempts[0] == T0 + timedelta(seconds=10)
    assert attempts[-1] == T0 + timedelta(hours=24)  # the last try is at 24 h, then no more
    assert all(b - a <= timedelta(hours=1) for a, b in itertools.pairwise(attempts))
    assert len(attempts) < 40


def test_scrub_masks_known_secrets_and_bearer_tokens_and_cuts_long_errors() -> None:
    text = "AADSTS7000215: Invalid client secret s3cr3t-value for https://h/x/TOKEN123"
    cleaned = scrub(text + " Authorization: Bearer eyJabc.def", ["s3cr3t-value", "/x/TOKEN123"])
    assert "s3cr3t-value" not in cleaned
    assert "TOKEN123" not in cleaned
    assert "eyJabc" not in cleaned
    assert "[REDACTED]" in cleaned
    assert len(scrub("x" * 2000, [])) == 500
    assert scrub("no secret", ["", "ab"]) == "no secret"  # too short to be one: left alone


def test_every_event_kind_has_a_config_name() -> None:
    assert [k.value for k in EventKind] == [
        "quarantine",
        "staged_deletions",
        "cycle_failed",
        "recovered",
    ]
