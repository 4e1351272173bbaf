"""Cycles under the safety rules: deletion threshold, escrow, quarantine, pause."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.unit.test_cycle import World
from worker.domain.health import DeletionThreshold, JobState
from worker.ports import JobPaused, NotDue

pytestmark = pytest.mark.unit


def world_with(users: int, **kwargs: object) -> tuple[World, list[str]]:
    w = World(**kwargs)  # type: ignore[arg-type]
    ids = [w.user(f"user{i}") for i in range(users)]
    w.run()
    return w, ids


def test_too_many_deletions_are_held_while_creates_and_updates_flow() -> None:
    w, ids = world_with(10, threshold=DeletionThreshold(count=3))
    for source_id in ids[:6]:
        w.source.delete(source_id)
    w.source.update(ids[9], displayName="Still Here")
    w.user("newcomer")

    held = w.run()

    assert held.counts["staged_delete"] == 6
    assert held.counts["delete"] == 0
    assert (held.counts["create"], held.counts["update"]) == (1, 1)
    assert len(w.target.users) == 11
    assert not w.target.deleted
    assert held.deletions is not None
    assert held.deletions["exceeded"] is True
    state = w.ledger.job_state("job")
    assert state.quarantine_reason == "TooManyDeletes"
    # still held on the next cycle, with no new change
    assert w.run().counts["staged_delete"] == 6
    assert not w.target.deleted

    w.ledger.save_job_state(JobState("job", quarantine_reason="TooManyDeletes", allow_deletes=True))
    released = w.run()

    assert released.counts["delete"] == 6
    assert len(w.target.deleted) == 6
    assert not w.ledger.job_state("job").in_quarantine
    assert not w.ledger.job_state("job").allow_deletes
    assert not w.ledger.staged("job")


def test_a_held_deletion_whose_user_returns_is_never_made() -> None:
    w, ids = world_with(6, threshold=DeletionThreshold(count=1))
    saved = {i: dict(w.source.users[i]) for i in ids[:2]}
    for source_id in ids[:2]:
        w.source.delete(source_id)
    assert w.run().counts["staged_delete"] == 2
    w.source.add(id=ids[0], **saved[ids[0]])  # one comes back before anyone allows the deletes

    result = w.run()

    assert result.counts["staged_delete"] == 0
    assert result.counts["delete"] == 1  # one deletion is within the threshold again
    assert [s.source_id for s in w.ledger.staged("job")] == []
    assert len(w.target.users) == 5


def test_percent_threshold_and_dry_run_report() -> None:
    w, ids = world_with(10, threshold=DeletionThreshold(count=None, percent=20))
    for source_id in ids[:3]:
        w.source.delete(source_id)

    preview = w.run(dry_run=True)

    assert preview.deletions is not None
    assert preview.deletions["deletions"] == 3
    assert preview.deletions["exceeded"] is True
    assert (
        "3 deletions, over the threshold (20% of 10 linked users)" in preview.deletions["message"]
    )
    assert not w.ledger.staged("job")
    assert w.run().counts["staged_delete"] == 3


def test_failed_objects_are_escrowed_and_retried_without_a_source_change() -> None:
    w, ids = world_with(3)
    w.source.update(ids[0], displayName="Renamed")
    target_id = w.ledger.links[("job", ids[0])].target_id
    w.target.fail_patch_for = {target_id}

    failed = w.run()

    assert failed.counts["failure"] == 1
    (escrow,) = w.ledger.escrow_rows.values()
    assert escrow.attempts == 1
    w.target.fail_patch_for = set()
    w.now += timedelta(minutes=40)

    retried = w.run()  # no source change: only the escrow brings the user back

    assert retried.counts["update"] == 1
    assert not w.ledger.escrow_rows
    assert w.target.users[target_id]["displayName"] == "Renamed"


def test_escrow_waits_for_its_time_after_a_second_failure() -> None:
    w, ids = world_with(1)
    w.source.update(ids[0], displayName="Renamed")
    w.target.fail_patch_for = {w.ledger.links[("job", ids[0])].target_id}
    w.run()
    w.now += timedelta(minutes=40)
    assert w.run().counts["failure"] == 1  # second attempt: now 6 h away
    w.now += timedelta(hours=1)

    assert sum(w.run().counts.values()) == 0  # not due yet
    w.now += timedelta(hours=6)
    assert w.run().counts["failure"] == 1


def test_a_failing_job_is_quarantined_and_scheduled_cycles_back_off() -> None:
    w, _ = world_with(2)
    w.target.credentials_rejected = True

    failed = w.run(trigger="schedule")

    assert failed.status == "failed"
    state = w.ledger.job_state("job")
    assert state.quarantine_reason == "EncounteredQuarantineException"
    assert state.next_attempt_at == w.now + timedelta(hours=2)
    w.now += timedelta(minutes=40)
    with pytest.raises(NotDue):
        w.run(trigger="schedule")
    with pytest.raises(NotDue):
        w.run(trigger="resume")  # a restarted worker does not hammer it either
    w.target.credentials_rejected = False
    assert w.run(trigger="manual").status == "success"  # an operator may always run it
    assert not w.ledger.job_state("job").in_quarantine


def test_too_many_failing_exports_quarantine_the_job() -> None:
    w, ids = world_with(8)
    for source_id in ids:
        w.source.update(source_id, jobTitle="New")
    w.target.fail_patch_for = {link.target_id for link in w.ledger.links.values()}

    result = w.run()

    assert result.counts["failure"] == 8
    assert w.ledger.job_state("job").quarantine_reason == "EncounteredEscrowProportionThreshold"


def test_a_paused_job_does_not_run() -> None:
    w, _ = world_with(1)
    w.ledger.save_job_state(JobState("job", paused=True))
    with pytest.raises(JobPaused):
        w.run()


def on_demand(w: World) -> Any:
    from worker.domain.job import JobSpec
    from worker.service.ondemand import OnDemand

    spec = JobSpec(name="job", scope=w.scope, mappings=w.mappings, policy=w.policy)
    return OnDemand(spec, source=w.source, target=w.target, ledger=w.ledger, clock=lambda: w.now)


def test_provisioning_one_user_on_demand_works_while_paused() -> None:
    from worker.domain.scope import ScopeSpec

    w = World(scope=ScopeSpec(assigned_only=True, group_ids=("g1",)))
    ann, ben = w.user("ann"), w.user("ben")
    w.source.group_add("g1", ann)
    w.ledger.save_job_state(JobState("job", paused=True))

    created = on_demand(w).provision(ann)

    assert (created.action.value, created.status.value) == ("create", "success")
    assert [s.name for s in created.steps] == [
        "import",
        "scoping",
        "matching",
        "processing",
        "export",
        "export",
    ]
    assert w.target_by_mail("ann@src.example")
    skipped = on_demand(w).provision(ben)
    assert skipped.status.value == "skipped"
    assert "not assigned" in skipped.reason
    w.source.delete(ann)
    deleted = on_demand(w).provision(ann)  # explicit: no threshold, no wait for a cycle
    assert (deleted.action.value, deleted.status.value) == ("delete", "success")
    assert len(w.target.deleted) == 1
    assert [r.mode for r in w.ledger.runs.values()] == ["on_demand"] * 3
