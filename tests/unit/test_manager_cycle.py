"""Manager references through whole cycles on the fakes: pages, the managers phase, resume."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.fakes import CrashAfter
from tests.unit.test_cycle import World
from worker.domain.groups import GroupProvisioning
from worker.domain.health import DeletionThreshold
from worker.domain.job import JobPolicy, JobSpec
from worker.domain.model import Status
from worker.domain.scope import Clause, Operator, ScopeSpec
from worker.ports import Phase
from worker.service.admin import allow_deletes
from worker.service.cycle import CycleService

pytestmark = pytest.mark.unit


class ManagerWorld(World):
    """The cycle tests' world, with a job that syncs the manager reference."""

    def service(self) -> CycleService:
        base = super().service()
        spec = JobSpec(
            name="job",
            scope=self.scope,
            mappings=self.mappings,
            policy=self.policy,
            deletion_threshold=self.threshold,
            manager=True,
        )
        return CycleService(
            spec,
            source=self.source,
            target=self.target,
            cursors=self.cursors,
            lock=self.lock,
            ledger=self.ledger,
            clock=base.clock,
        )

    def target_id(self, name: str) -> str:
        (user,) = [
            uid for uid, u in self.target.users.items() if u.get("mail") == f"{name}@src.example"
        ]
        return user

    def manager_of(self, name: str) -> str | None:
        return self.target.managers.get(self.target_id(name))

    def manager_writes(self) -> list[tuple[str, str, Any]]:
        return [w for w in self.target.writes if w[0] == "manager"]


def chain(w: ManagerWorld) -> None:
    """u1 reports to u2, u2 to u3 (sorted ids: with two users a page, u3 comes a page later)."""
    w.user("c", id="u3")
    w.user("b", id="u2", manager="u3")
    w.user("a", id="u1", manager="u2")


def test_a_chain_created_in_one_cycle_has_every_reference_in_that_cycle() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)

    result = w.run()

    assert result.status == "success"
    assert result.counts["failure"] == 0
    assert w.manager_of("a") == w.target_id("b")  # its manager was created in the same page
    assert w.manager_of("b") == w.target_id("c")  # its manager came a page later: the phase
    assert w.manager_of("c") is None
    assert w.cursors.load("job").progress is None


def test_references_are_written_only_when_they_change() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.run()
    before = len(w.manager_writes())
    w.source.update("u3", displayName="C renamed")  # a change that does not touch managers

    w.run()

    assert len(w.manager_writes()) == before


def test_a_changed_manager_is_set_and_a_removed_one_cleared() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.run()
    w.source.update("u1", manager="u3")
    w.source.update("u2", manager=None)

    result = w.run()

    assert result.mode == "incremental"
    assert result.counts["failure"] == 0
    assert w.manager_of("a") == w.target_id("c")
    assert w.manager_of("b") is None
    row = next(o for o in result.outcomes if o.source_id == "u2")
    assert row.modified["manager"].old == w.target_id("c")
    assert row.modified["manager"].new is None


def test_clearing_a_reference_already_gone_from_the_target_is_done() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.run()
    w.target.managers.pop(w.target_id("b"))  # removed by hand in the target
    w.source.update("u2", manager=None)

    result = w.run()

    assert result.counts["failure"] == 0
    assert w.ledger.links_for("job", ["u2"])["u2"].attributes.get("manager") is None


def test_a_manager_out_of_scope_leaves_the_reference_unset_with_a_warning() -> None:
    w = ManagerWorld(
        page_size=2, scope=ScopeSpec(assigned_only=True, user_ids=frozenset({"u1", "u2"}))
    )
    chain(w)

    result = w.run()

    assert result.status == "success"
    assert result.counts["failure"] == 0
    assert w.manager_of("a") == w.target_id("b")
    assert w.manager_of("b") is None
    assert not w.target_by_mail("c@src.example")
    (warning,) = [o for o in result.outcomes if o.status is Status.WARNING]
    assert warning.source_id == "u2"
    assert "manager u3 is not in scope" in warning.reason


def test_a_cycle_killed_in_the_managers_phase_finishes_it_on_resume() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.ledger.crash_after_commits = 2  # both users pages commit; the phase's commit dies
    with pytest.raises(CrashAfter):
        w.run()
    progress = w.cursors.load("job").progress
    assert progress is not None
    assert progress.phase is Phase.MANAGERS
    assert progress.managers == {"u2": "u3"}
    w.ledger.crash_after_commits = None

    result = w.run()

    assert result.run_id == progress.run_id
    assert result.status == "success"
    assert w.manager_of("b") == w.target_id("c")
    assert w.ledger.links_for("job", ["u2"])["u2"].attributes["manager"] == w.target_id("c")


def test_a_progress_saved_without_managers_still_resumes() -> None:
    """A cursor written by the previous release has no `managers` in its progress."""
    w = ManagerWorld(page_size=2)
    chain(w)
    w.ledger.crash_after_commits = 1
    with pytest.raises(CrashAfter):
        w.run()
    w.ledger.crash_after_commits = None
    cursor = w.cursors.load("job")
    assert cursor.progress is not None
    cursor.progress.managers = {}
    w.cursors.save("job", cursor)

    assert w.run().status == "success"


def test_a_dry_run_says_what_it_would_set_and_sets_nothing() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)

    result = w.run(dry_run=True)

    assert w.target.managers == {}
    steps = [s.detail for o in result.outcomes for s in o.steps]
    assert any(detail.startswith("would set manager") for detail in steps)


def test_a_reference_the_target_refuses_fails_the_user_and_is_retried() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.run()
    gone = w.target_id("c")
    deleted = w.target.users.pop(gone)  # deleted by hand in the target: the PUT finds no user
    w.source.update("u1", manager="u3")

    result = w.run()

    assert result.counts["failure"] == 1
    (row,) = [o for o in result.outcomes if o.source_id == "u1"]
    assert row.status is Status.FAILURE
    assert row.reason.startswith("manager not written")
    assert "u1" in w.ledger.escrows_for("job", ["u1"])
    w.target.users[gone] = deleted
    w.now = w.now.replace(year=2027)  # the escrow's next attempt is due

    again = w.run()

    assert again.counts["failure"] == 0
    assert w.manager_of("a") == gone


def test_a_restored_user_gets_its_reference_written_again() -> None:
    w = ManagerWorld(page_size=2)
    chain(w)
    w.run()
    attributes = dict(w.source.users["u2"])
    w.source.delete("u2")
    w.run()
    target = w.ledger.links_for("job", ["u2"])["u2"].target_id
    w.target.managers.pop(target, None)  # the recycle bin did not keep it
    w.source.add(id="u2", **attributes)

    result = w.run()

    assert result.counts["restore"] == 1
    assert w.target.managers.get(target) == w.target_id("c")


def rows_of(w: ManagerWorld, run_id: str, source_id: str) -> list[Any]:
    return [
        e.outcome for e in w.ledger.log if e.run_id == run_id and e.outcome.source_id == source_id
    ]


def test_an_out_of_scope_manager_is_a_warning_in_the_users_one_row() -> None:
    w = ManagerWorld(
        page_size=2, scope=ScopeSpec(assigned_only=True, user_ids=frozenset({"u1", "u2"}))
    )
    chain(w)

    result = w.run()

    # One row per object per cycle: the phase's warning joins u2's create row.
    (row,) = rows_of(w, result.run_id, "u2")
    assert (row.action.value, row.status) == ("create", Status.WARNING)
    assert "manager u3 is not in scope" in row.reason
    assert "manager u3 is not in scope" in row.steps[-1].detail
    assert result.counts["create"] == 2
    assert result.counts.get("other", 0) == 0
    assert w.ledger.run_counts("job", result.run_id) == {"create": 2, "skip": 1}  # u3 skipped


def test_an_out_of_scope_manager_is_warned_of_again_only_in_a_full_cycle() -> None:
    w = ManagerWorld(
        page_size=2, scope=ScopeSpec(assigned_only=True, user_ids=frozenset({"u1", "u2"}))
    )
    chain(w)
    w.run()
    # Read again in an incremental cycle (as a reread would), the manager unchanged.
    w.source.update("u2", displayName="B renamed")

    quiet = w.run()

    assert quiet.mode == "incremental"
    (row,) = rows_of(w, quiet.run_id, "u2")
    assert row.status is Status.SUCCESS
    assert not [o for o in quiet.outcomes if o.status is Status.WARNING]

    full = w.run(mode="full")

    (warning,) = [o for o in full.outcomes if o.status is Status.WARNING]
    assert warning.source_id == "u2"


@pytest.mark.parametrize("manager", ["u0", "u9"])
def test_a_manager_leaving_scope_in_the_cycle_is_out_of_scope(manager: str) -> None:
    """u1's manager becomes `manager` as it leaves the filter, in one incremental cycle; the
    fake's pages go in id order: u0's page comes before u1's, u9's after it."""
    scope = ScopeSpec(filters=((Clause("department", Operator.EQUALS, "Sales"),),))
    w = ManagerWorld(page_size=1, scope=scope)
    w.user("c", id=manager, department="Sales")
    w.user("b", id="u2", manager=manager, department="Sales")
    w.user("a", id="u1", manager="u2", department="Sales")
    w.run()
    c = w.target_id("c")
    w.source.update(manager, department="Legal")
    w.source.update("u1", manager=manager)

    result = w.run()

    assert result.mode == "incremental"
    assert result.counts["delete"] == 1
    if manager == "u0":
        # Written while the deletion is only staged (the threshold might hold it: then the
        # reference is right), removed before the deletion is made.
        writes = w.manager_writes()
        a = w.target_id("a")
        assert writes.index(("manager", a, c)) < writes.index(("manager", a, None))
    # Neither report keeps a reference to the deleted user: removed, with the warning.
    assert w.manager_of("a") is None
    assert w.manager_of("b") is None
    for source_id in ("u1", "u2"):
        (row,) = rows_of(w, result.run_id, source_id)
        assert row.status is Status.WARNING
        assert f"manager {manager} is not in scope" in row.reason


def test_editing_scope_groups_makes_a_full_cycle_due_with_group_provisioning_on() -> None:
    """The cycle after `scope.groups` is edited is a full one (which repeats the warnings), also
    for a job that provisions groups."""

    def spec(*groups: str, provisioning: bool = True) -> JobSpec:
        return JobSpec(
            name="job",
            scope=ScopeSpec(group_ids=groups),
            mappings=(),
            policy=JobPolicy(),
            groups=GroupProvisioning(enabled=provisioning),
        )

    assert spec("g1").fingerprint != spec("g1", "g2").fingerprint
    assert spec("g1").fingerprint != spec("g1", provisioning=False).fingerprint


def test_a_held_deletion_keeps_the_reports_and_a_made_one_clears_them_through_kills() -> None:
    """u3 (u2's manager) and u4 are deleted in the source: two deletions over a count of 1.
    Held, u2 keeps its reference; approved, the deletion phase removes it before deleting u3,
    and a cycle killed after any of its commits finishes that on resume, writing it once."""
    w = ManagerWorld(page_size=2, threshold=DeletionThreshold(count=1))
    chain(w)
    w.user("d", id="u4")
    w.run()
    c = w.target_id("c")
    w.source.delete("u3")
    w.source.delete("u4")
    writes = len(w.manager_writes())

    held = w.run()

    assert (held.counts["staged_delete"], held.counts["delete"]) == (2, 0)
    assert w.manager_of("b") == c
    assert len(w.manager_writes()) == writes
    assert w.ledger.links_for("job", ["u2"])["u2"].attributes["manager"] == c

    allow_deletes(w.ledger, "job")
    kills = 0
    while True:
        w.ledger.crash_after_commits = w.ledger.commits + 1  # one commit, then killed
        try:
            made = w.run()
            break
        except CrashAfter:
            kills += 1
    w.ledger.crash_after_commits = None

    assert kills >= 1
    assert made.status == "success"
    assert w.manager_of("b") is None
    b = w.target_id("b")
    assert w.manager_writes()[writes:] == [("manager", b, None)]
    assert "manager" not in w.ledger.links_for("job", ["u2"])["u2"].attributes
    (row,) = rows_of(w, made.run_id, "u2")
    assert row.status is Status.WARNING
    assert "manager u3 is not in scope" in row.reason
