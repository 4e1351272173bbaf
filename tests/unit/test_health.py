"""Escrow schedule, quarantine back-off and the deletion threshold (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.domain.health import (
    DeletionThreshold,
    JobState,
    QuarantineReason,
    after_cycle,
    cycle_verdict,
    escrow_after_failure,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_escrow_retries_next_cycle_then_6h_12h_24h_then_daily_for_28_days() -> None:
    escrow = escrow_after_failure(None, "job", "u1", "boom", T0)
    assert escrow is not None
    assert (escrow.attempts, escrow.next_attempt_at) == (1, T0)
    delays = []
    now = T0
    while escrow is not None:
        now = escrow.next_attempt_at
        previous = escrow
        escrow = escrow_after_failure(escrow, "job", "u1", "boom", now)
        if escrow is not None:
            delays.append(escrow.next_attempt_at - now)
    assert delays[:4] == [
        timedelta(hours=6),
        timedelta(hours=12),
        timedelta(hours=24),
        timedelta(days=1),
    ]
    assert set(delays[3:]) == {timedelta(days=1)}
    assert previous.next_attempt_at - T0 <= timedelta(days=28)
    assert now + timedelta(days=1) - T0 > timedelta(days=28)  # the next one would pass 28 days


@pytest.mark.parametrize(
    ("count", "percent", "deletions", "linked", "exceeded"),
    [
        (500, None, 500, 1000, False),
        (500, None, 501, 1000, True),
        (None, 10.0, 10, 100, False),
        (None, 10.0, 11, 100, True),
        (100, 5.0, 6, 100, True),  # either limit trips it
        (None, None, 10_000, 10_000, False),
        (0, None, 1, 10, True),
    ],
)
def test_deletion_threshold(
    count: int | None, percent: float | None, deletions: int, linked: int, exceeded: bool
) -> None:
    assert DeletionThreshold(count, percent).exceeded(deletions, linked) is exceeded


def test_a_failed_cycle_quarantines_and_backs_off_until_a_healthy_one() -> None:
    state = JobState("job")
    interval = timedelta(minutes=40)
    waits = []
    for n in range(5):
        now = T0 + timedelta(days=n)
        state = after_cycle(
            state,
            reason=QuarantineReason.EXCEPTION,
            error="401",
            staged_deletes=False,
            interval=interval,
            now=now,
        )
        assert state.next_attempt_at is not None
        waits.append(state.next_attempt_at - now)
    assert waits == [
        timedelta(hours=2),
        timedelta(hours=6),
        timedelta(hours=24),
        timedelta(hours=24),
        timedelta(hours=24),
    ]
    assert state.quarantine_since == T0
    assert state.quarantine_reason == "EncounteredQuarantineException"

    healthy = after_cycle(
        state, reason=None, error="", staged_deletes=False, interval=interval, now=T0
    )
    assert not healthy.in_quarantine
    assert healthy.failures == 0


def test_pause_and_release_survive_the_cycle_that_ends_meanwhile() -> None:
    state = JobState("job", paused=True, allow_deletes=True)
    kept = after_cycle(
        state, reason=None, error="", staged_deletes=False, interval=timedelta(hours=1), now=T0
    )
    assert kept.paused
    assert kept.allow_deletes
    used = after_cycle(
        state,
        reason=None,
        error="",
        staged_deletes=False,
        released_deletions=True,
        interval=timedelta(hours=1),
        now=T0,
    )
    assert not used.allow_deletes


def test_failures_over_40_percent_of_exports_quarantine() -> None:
    assert (
        cycle_verdict({"create": 5, "failure": 4}, failed_as_a_whole=False) is None
    )  # 44 % but few
    assert (
        cycle_verdict({"create": 6, "failure": 5}, failed_as_a_whole=False)
        is QuarantineReason.ESCROW_PROPORTION
    )
    assert cycle_verdict({"create": 10, "failure": 5}, failed_as_a_whole=False) is None
    assert cycle_verdict({}, failed_as_a_whole=True) is QuarantineReason.EXCEPTION


def test_transient_failures_quarantine_only_when_they_repeat() -> None:
    state = JobState("job")
    for n in range(2):
        reason = cycle_verdict(
            {}, failed_as_a_whole=True, transient=True, failures_before=state.failures
        )
        assert reason is None
        state = after_cycle(
            state,
            reason=reason,
            error="503",
            staged_deletes=False,
            failed=True,
            interval=timedelta(minutes=40),
            now=T0,
        )
        assert state.failures == n + 1
        assert not state.in_quarantine
    third = cycle_verdict(
        {}, failed_as_a_whole=True, transient=True, failures_before=state.failures
    )
    assert third is QuarantineReason.EXCEPTION
