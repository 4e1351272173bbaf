"""Dry runs are ordinary cycles wired to adapters that keep their writes (worker/adapters/dryrun.py)."""

from __future__ import annotations

import pytest

from tests.unit.fakes import CrashAfter
from tests.unit.test_cycle import World
from worker.domain.job import Deprovision, JobPolicy
from worker.domain.model import Action, LinkState

pytestmark = pytest.mark.unit


def _steps(outcome: object) -> list[str]:
    return [step.detail for step in outcome.steps]  # type: ignore[attr-defined]


def test_a_dry_run_says_what_it_would_do_not_what_it_did() -> None:
    w = World()
    ann = w.user("ann")
    w.user("ben")
    w.run()
    w.source.update(ann, jobTitle="Boss")
    w.user("cyd")

    preview = w.run(dry_run=True)

    created = next(o for o in preview.outcomes if o.action is Action.CREATE)
    updated = next(o for o in preview.outcomes if o.action is Action.UPDATE)
    assert created.simulated
    assert updated.simulated
    assert any(d.startswith("would invite cyd@src.example") for d in _steps(created))
    assert "would update 1 attributes" in _steps(updated)
    assert not any(
        d.startswith(("invited", "updated")) for o in preview.outcomes for d in _steps(o)
    )
    real = w.run()
    assert not any(o.simulated for o in real.outcomes)
    assert any(d.startswith("invited cyd@src.example") for o in real.outcomes for d in _steps(o))


def test_a_dry_run_of_deprovisioning_says_would_soft_delete_and_would_restore() -> None:
    w = World()
    ann = w.user("ann")
    w.run()
    saved = dict(w.source.users[ann])
    w.source.delete(ann)

    (deleted,) = [o for o in w.run(dry_run=True).outcomes if o.action is Action.DELETE]
    assert "would soft-delete" in _steps(deleted)
    w.run()
    w.source.add(id=ann, **saved)

    (restored,) = [o for o in w.run(dry_run=True).outcomes if o.action is Action.RESTORE]
    assert any(d.startswith("would restore") for d in _steps(restored))
    assert w.ledger.links[("job", ann)].state is LinkState.SOFT_DELETED


def test_a_dry_run_neither_resumes_nor_disturbs_a_real_runs_saved_progress() -> None:
    w = World(page_size=2)
    for i in range(6):
        w.user(f"user{i}")
    w.ledger.crash_after_commits = 2
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None
    saved = w.cursors.load("job").progress
    assert saved is not None
    runs, log, writes = dict(w.ledger.runs), list(w.ledger.log), len(w.target.writes)

    preview = w.run(dry_run=True)

    assert preview.run_id != saved.run_id
    # A fresh cycle over every user (not the last page the real run has left): the four linked
    # ones unchanged, the two the crashed page invited matched and linked.
    assert (len(preview.outcomes), preview.counts["skip"], preview.counts["update"]) == (6, 4, 2)
    assert w.cursors.load("job").progress == saved
    assert (w.ledger.runs, w.ledger.log) == (runs, log)
    assert len(w.target.writes) == writes
    resumed = w.run()
    assert resumed.run_id == saved.run_id
    assert len(w.target.users) == 6


def test_a_dry_run_of_a_disabling_job_plans_what_the_real_run_does() -> None:
    w = World(policy=JobPolicy(deprovision=Deprovision.DISABLE))
    ids = [w.user(f"user{i}") for i in range(8)]
    w.run()
    for source_id in ids[:3]:
        w.source.delete(source_id)
    w.source.update(ids[5], jobTitle="New")

    preview = w.run(mode="full", dry_run=True)
    real = w.run(mode="full")

    assert preview.counts == real.counts
    planned = sorted(
        (o.source_id, o.action.value) for o in preview.outcomes if o.status.value != "skipped"
    )
    done = sorted((o.source_id, o.action.value) for o in real.outcomes)
    assert planned == done
