"""Escrow schedule, quarantine back-off and the deletion threshold (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.domain.health import (
    DeletionThreshold,
    DeletionVerdict,
    JobState,
    QuarantineReason,
    WindowDeletions,
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


def verdict(
    threshold: DeletionThreshold, pending: int, linked: int, deleted: int = 0, disabled: int = 0
) -> DeletionVerdict:
    return threshold.judge(
        pending=pending,
        linked=linked,
        done=WindowDeletions(deleted=deleted, disabled=disabled),
        window_start=T0,
    )


@pytest.mark.parametrize(
    ("count", "percent", "pending", "linked", "deleted", "disabled", "exceeded"),
    [
        (10, None, 10, 100, 0, 0, False),
        (10, None, 4, 100, 6, 0, False),  # exactly the count, over the window
        (10, None, 4, 100, 6, 1, True),  # a disable counts too
        (10, None, 1, 100, 10, 0, True),  # one more after the count was used up
        (None, 10.0, 5, 95, 5, 0, False),  # 10 of the 100 linked when the window began
        (None, 10.0, 6, 95, 5, 0, True),
        (None, 10.0, 6, 100, 0, 5, True),  # disabled users are still linked: 11 of 100
        (None, None, 10_000, 10_000, 10_000, 0, False),
    ],
)
def test_the_threshold_counts_the_window_with_the_cycle(
    count: int | None,
    percent: float | None,
    pending: int,
    linked: int,
    deleted: int,
    disabled: int,
    exceeded: bool,
) -> None:
    judged = verdict(DeletionThreshold(count, percent), pending, linked, deleted, disabled)
    assert judged.exceeded is exceeded
    assert judged.counted == pending + deleted + disabled
    assert judged.base == linked + deleted


def test_a_verdict_describes_itself_and_reads_as_plain_data() -> None:
    threshold = DeletionThreshold(10, 5.0, window=timedelta(hours=6))
    quiet = verdict(threshold, 3, 200)
    assert (
        quiet.describe() == "3 deletions, within the threshold (count 10 or 5% of 200 linked users)"
    )
    busy = verdict(threshold, 3, 190, deleted=10)
    assert busy.describe() == (
        "3 deletions + 10 made in the deletion window (since 2026-01-01 00:00 UTC) = 13, "
        "over the threshold (count 10 or 5% of 200 linked users)"
    )
    assert busy.as_dict() == {
        "deletions": 3,
        "carried_out_in_window": 10,
        "counted": 13,
        "linked": 190,
        "linked_at_window_start": 200,
        "window": {"start": "2026-01-01T00:00:00+00:00", "length_s": 21600},
        "threshold": {"count": 10, "percent": 5.0, "window_s": 21600},
        "exceeded": True,
    }


def test_the_window_rolls_and_starts_no_earlier_than_the_last_approval() -> None:
    threshold = DeletionThreshold(window=timedelta(hours=24))
    now = T0 + timedelta(days=3)
    assert threshold.window_start(now) == now - timedelta(hours=24)
    assert threshold.window_start(now, T0) == now - timedelta(hours=24)
    approved = now - timedelta(hours=2)
    assert threshold.window_start(now, approved) == approved


def test_an_approval_used_restarts_the_window_and_is_remembered() -> None:
    state = JobState("job", quarantine_reason="TooManyDeletes", allow_deletes=True)
    interval = timedelta(minutes=40)
    released = after_cycle(
        state,
        reason=None,
        error="",
        staged_deletes=False,
        released_deletions=True,
        interval=interval,
        now=T0,
    )
    assert released == JobState("job", deletions_approved_at=T0)
    later = T0 + timedelta(hours=1)
    for reason, staged, failed in (
        (None, False, False),
        (None, True, False),
        (None, False, True),
        (QuarantineReason.EXCEPTION, False, True),
    ):
        after = after_cycle(
            released,
            reason=reason,
            error="",
            staged_deletes=staged,
            failed=failed,
            interval=interval,
            now=later,
        )
        assert after.deletions_approved_at == T0
    # an allow-deletes given but not needed is neither used up nor a restart
    unused = after_cycle(
        JobState("job", allow_deletes=True),
        reason=None,
        error="",
        staged_deletes=False,
        interval=interval,
        now=later,
    )
    assert unused == JobState("job", allow_deletes=True)


def test_an_approval_the_cycle_began_with_lapses_once_its_deletion_phase_ran() -> None:
    # The held deletions it approved were dropped: not kept for a later mass deletion.
    spent = after_cycle(
        JobState("job", quarantine_reason="TooManyDeletes", allow_deletes=True),
        reason=None,
        error="",
        staged_deletes=False,
        approval_spent=True,
        interval=timedelta(hours=1),
        now=T0,
    )
    assert spent == JobState("job")  # lapsed, and the window does not restart
