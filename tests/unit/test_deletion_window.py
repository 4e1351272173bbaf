"""The deletion threshold over more than one cycle (issue 14): a mass deletion that reaches the
job in parts — a cycle resumed after a crash, deletions made while a cycle runs, deletions spread
over cycles — is counted as a whole, against a rolling window of the job's own deletions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from tests.unit.fakes import CrashAfter
from tests.unit.test_cycle import World
from worker.domain.health import DeletionThreshold, JobState
from worker.domain.model import SourceUser
from worker.domain.scope import ScopeSpec

pytestmark = pytest.mark.unit


def synced(users: int, **kwargs: object) -> tuple[World, list[str]]:
    w = World(**kwargs)  # type: ignore[arg-type]
    ids = [w.user(f"user{i:02d}") for i in range(users)]
    w.run()
    return w, ids


def escrow(w: World, ids: Sequence[str]) -> None:
    """Leave these users in escrow: their update fails once."""
    for source_id in ids:
        w.source.update(source_id, jobTitle="Changed")
    w.target.fail_patch_for = {w.ledger.links[("job", i)].target_id for i in ids}
    assert w.run().counts["failure"] == len(ids)
    w.target.fail_patch_for = set()


def crash_in_escrow_phase(w: World) -> None:
    """An incremental cycle that dies while it retries the escrows (a kill, or a fault)."""
    w.now += timedelta(minutes=40)
    w.ledger.crash_after_commits = w.ledger.commits + 1  # the users page commits, an escrow not
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None
    progress = w.cursors.load("job").progress
    assert progress is not None
    assert progress.phase == "escrow"


def live_targets(w: World) -> int:
    return len(w.target.users)


def test_a_cycle_resumed_after_a_mass_deletion_holds_it_whole() -> None:
    # The run of issue 14: the resumed cycle re-read its escrows one by one (seeing the few of
    # them deleted) while its delta round predated the deletion; it carried those few out.
    w, ids = synced(20, threshold=DeletionThreshold(count=3))
    escrow(w, ids[:3])
    crash_in_escrow_phase(w)
    for source_id in ids[:12]:  # 60 %, the three escrowed users among them
        w.source.delete(source_id)

    resumed = w.run()

    assert resumed.status == "success"
    assert resumed.counts["delete"] == 0
    assert resumed.counts["staged_delete"] == 12
    assert not w.target.deleted
    assert resumed.deletions is not None
    assert resumed.deletions["held"] is True
    assert w.ledger.job_state("job").quarantine_reason == "TooManyDeletes"
    # nothing is let through by the next cycles either
    assert w.run().counts["delete"] == 0
    assert not w.target.deleted

    w.ledger.save_job_state(replace_allow(w))
    released = w.run()

    assert released.counts["delete"] == 12
    assert live_targets(w) == 8
    assert not w.ledger.staged("job")


def replace_allow(w: World) -> JobState:
    state = w.ledger.job_state("job")
    return JobState(
        state.job,
        quarantine_reason=state.quarantine_reason,
        allow_deletes=True,
        deletions_approved_at=state.deletions_approved_at,
    )


class DeletingSource:
    """Deletes users in the source the first time the cycle reads one user by itself: a person
    at the console, while the cycle is past its delta round."""

    def __init__(self, w: World, doomed: Sequence[str]) -> None:
        self.w, self.doomed = w, list(doomed)
        self.real_get_user = w.source.get_user

    def __call__(self, user_id: str, select: Sequence[str]) -> SourceUser | None:
        if self.doomed:
            for source_id in self.doomed:
                self.w.source.delete(source_id)
            self.doomed = []
        return self.real_get_user(user_id, select)


def test_deletions_made_while_the_cycle_runs_are_counted_with_it() -> None:
    w, ids = synced(20, threshold=DeletionThreshold(count=3))
    escrow(w, ids[:2])
    w.now += timedelta(minutes=40)
    w.source.get_user = DeletingSource(w, ids[:10])  # type: ignore[method-assign]

    result = w.run()

    assert result.counts["delete"] == 0
    assert result.counts["staged_delete"] == 10
    assert not w.target.deleted


def test_membership_removals_made_while_the_cycle_runs_are_counted_with_it() -> None:
    w = World(
        scope=ScopeSpec(assigned_only=True, group_ids=("g1",)), threshold=DeletionThreshold(3)
    )
    ids = [w.user(f"user{i:02d}") for i in range(12)]
    for source_id in ids:
        w.source.group_add("g1", source_id)
    w.run()
    escrow(w, ids[:1])
    w.now += timedelta(minutes=40)
    real_get_user = w.source.get_user

    def get_user(user_id: str, select: Sequence[str]) -> SourceUser | None:
        if "g1" in w.source.groups and ids[5] in w.source.groups["g1"]:
            for source_id in [ids[0], *ids[5:11]]:
                w.source.group_remove("g1", source_id)
            w.source.delete(ids[0])
        return real_get_user(user_id, select)

    w.source.get_user = get_user  # type: ignore[method-assign]

    result = w.run()

    assert result.counts["delete"] == 0
    assert result.counts["staged_delete"] == 7
    assert not w.target.deleted


def test_deletions_spread_over_cycles_count_against_the_window() -> None:
    w, ids = synced(20, threshold=DeletionThreshold(count=5))
    for source_id in ids[:3]:
        w.source.delete(source_id)
    first = w.run()
    assert first.counts["delete"] == 3  # within the threshold: made
    w.now += timedelta(hours=2)
    for source_id in ids[3:6]:
        w.source.delete(source_id)

    second = w.run()

    assert second.counts["delete"] == 0  # 3 made + 3 now > 5: all three held
    assert second.counts["staged_delete"] == 3
    assert second.deletions is not None
    assert second.deletions["carried_out_in_window"] == 3
    assert second.deletions["counted"] == 6
    assert (
        "3 deletions + 3 made in the deletion window (since 2025-12-31 02:00 UTC) = 6, "
        "over the threshold (count 5)" in second.deletions["message"]
    )
    assert w.ledger.job_state("job").quarantine_reason == "TooManyDeletes"


def test_the_window_rolls_and_restarts_when_an_approval_is_used() -> None:
    w, ids = synced(30, threshold=DeletionThreshold(count=5, window=timedelta(hours=24)))
    for source_id in ids[:4]:
        w.source.delete(source_id)
    assert w.run().counts["delete"] == 4
    w.now += timedelta(hours=25)  # those four are out of the window now
    for source_id in ids[4:8]:
        w.source.delete(source_id)
    assert w.run().counts["delete"] == 4
    w.now += timedelta(hours=1)
    for source_id in ids[8:10]:
        w.source.delete(source_id)
    held = w.run()
    assert held.counts["staged_delete"] == 2  # 4 + 2 in the window

    w.ledger.save_job_state(replace_allow(w))
    w.now += timedelta(minutes=40)
    assert w.run().counts["delete"] == 2
    w.now += timedelta(minutes=40)
    for source_id in ids[10:15]:
        w.source.delete(source_id)

    after = w.run()

    # The approved deletions (and those before them) no longer count: five is within five.
    assert after.counts["delete"] == 5
    assert after.deletions is not None
    assert after.deletions["carried_out_in_window"] == 0


def test_percent_is_of_the_users_linked_when_the_window_started() -> None:
    w, ids = synced(20, threshold=DeletionThreshold(count=None, percent=20))
    for source_id in ids[:3]:
        w.source.delete(source_id)
    assert w.run().counts["delete"] == 3  # 15 % of 20
    w.now += timedelta(hours=1)
    for source_id in ids[3:5]:
        w.source.delete(source_id)

    held = w.run()

    # 3 + 2 = 5 of the 20 linked when the window began: 25 %, over 20 %
    assert held.counts["staged_delete"] == 2
    assert held.deletions is not None
    assert held.deletions["linked_at_window_start"] == 20
    assert "(20% of 20 linked users)" in held.deletions["message"]


def test_a_dry_run_reports_the_window_and_changes_nothing() -> None:
    w, ids = synced(10, threshold=DeletionThreshold(count=3))
    for source_id in ids[:2]:
        w.source.delete(source_id)
    w.run()
    w.source.delete(ids[2])
    w.source.delete(ids[3])

    preview = w.run(dry_run=True)

    assert preview.deletions is not None
    assert (preview.deletions["deletions"], preview.deletions["counted"]) == (2, 4)
    assert preview.deletions["exceeded"] is True
    assert not w.ledger.staged("job")
    assert len(w.target.deleted) == 2


def test_approved_deletions_that_fail_are_made_later_without_a_new_approval() -> None:
    w, ids = synced(20, threshold=DeletionThreshold(count=3))
    for source_id in ids[:8]:
        w.source.delete(source_id)
    assert w.run().counts["staged_delete"] == 8
    w.ledger.save_job_state(replace_allow(w))
    failing = {w.ledger.links[("job", i)].target_id for i in ids[:3]}
    w.target.fail_delete_for = failing

    released = w.run()

    assert (released.counts["delete"], released.counts["failure"]) == (5, 3)
    assert not w.ledger.job_state("job").in_quarantine
    assert not w.ledger.job_state("job").allow_deletes
    assert [s.approved for s in w.ledger.staged("job")] == [True] * 3
    # Three more than `count` is still what the operator allowed: they are made, uncounted,
    # and with them two new deletions, within the threshold on their own.
    w.target.fail_delete_for = set()
    w.now += timedelta(minutes=40)
    for source_id in ids[8:10]:
        w.source.delete(source_id)

    retried = w.run()

    assert retried.counts["delete"] == 5
    assert retried.deletions is not None
    assert (retried.deletions["deletions"], retried.deletions["approved"]) == (2, 3)
    assert retried.deletions["held"] is False
    assert not w.ledger.staged("job")
    assert len(w.target.deleted) == 10


def test_an_approved_deletion_whose_user_returns_is_dropped() -> None:
    w, ids = synced(10, threshold=DeletionThreshold(count=1))
    saved = dict(w.source.users[ids[0]])
    for source_id in ids[:3]:
        w.source.delete(source_id)
    w.run()
    w.ledger.save_job_state(replace_allow(w))
    w.target.fail_delete_for = {w.ledger.links[("job", ids[0])].target_id}
    assert w.run().counts["delete"] == 2
    w.target.fail_delete_for = set()
    w.source.add(id=ids[0], **saved)
    w.now += timedelta(minutes=40)

    back = w.run()

    assert back.counts["delete"] == 0
    assert not w.ledger.staged("job")
    assert w.ledger.links[("job", ids[0])].state.value == "active"


def test_a_released_cycle_that_dies_half_way_leaves_the_rest_approved() -> None:
    w, ids = synced(300, threshold=DeletionThreshold(count=3))
    for source_id in ids[:250]:
        w.source.delete(source_id)
    assert w.run().counts["staged_delete"] == 250
    w.ledger.save_job_state(replace_allow(w))
    # it dies after its first batches of deletions
    w.ledger.crash_after_commits = w.ledger.commits + 3
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None
    assert 0 < len(w.target.deleted) < 250
    w.ledger.save_job_state(JobState("job"))  # even were the approval somehow gone
    w.now += timedelta(minutes=40)

    resumed = w.run()

    assert resumed.counts["delete"] == 250  # the run's counts: both attempts
    assert len(w.target.deleted) == 250
    assert not w.ledger.staged("job")


def test_status_tells_where_the_job_stands_in_its_window() -> None:
    from worker.service.status import job_status

    threshold = DeletionThreshold(count=5)
    w, ids = synced(20, threshold=threshold)
    for source_id in ids[:4]:
        w.source.delete(source_id)
    w.run()
    w.now += timedelta(hours=1)
    for source_id in ids[4:7]:
        w.source.delete(source_id)
    w.run()

    status = job_status(
        "job", w.ledger, w.cursors.load("job"), running=False, threshold=threshold, now=w.now
    )

    assert status["code"] == "Quarantine"
    assert status["deletionThreshold"] == {
        "count": 5,
        "percent": None,
        "windowSeconds": 86400,
        "windowStart": (w.now - timedelta(hours=24)).isoformat(),
        "approvedAt": None,
        "deletionsInWindow": 4,
        "staged": 3,
        "stagedGroups": 0,
        "approvedToRetry": 0,
        "counted": 7,
        "linkedAtWindowStart": 20,
        "exceeded": True,
    }
    assert (
        job_status("job", w.ledger, w.cursors.load("job"), running=False)["deletionThreshold"]
        is None
    )
