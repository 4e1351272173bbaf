"""The Ledger contract: the same cases against the in-memory ledger, a dry run's overlay and the
SQL one on SQLite and PostgreSQL, so a dry run (or a unit test on MemoryLedger) sees what
production would; and the overlay over a ledger with data reads as that ledger would after the
same writes, leaving it untouched.

Each case is behaviour a cycle relies on; SqlLedger is the reference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import stored_ledger
from tests.support.migrated import MigratedSqlite
from worker.adapters.dryrun import DryRunLedger
from worker.adapters.state.memory import MemoryLedger
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.errors import Conflict
from worker.domain.groups import GroupLink
from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Action, Change, Link, LinkState, ObjectOutcome, Status, Step
from worker.ports import Ledger, MembershipChange, PageWrite, RunRecord

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEPAL = timezone(timedelta(hours=5, minutes=45))


@pytest.fixture(params=["memory", "dry-run overlay", "sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "dry-run overlay":
        # A dry run's ledger: an empty base, every write in the overlay, must read the same.
        yield DryRunLedger(MemoryLedger())
        return
    with stored_ledger(request.param, request, tmp_path) as stored:
        yield stored


def link(source_id: str, state: LinkState = LinkState.ACTIVE, seen: str | None = "r0") -> Link:
    return Link("job", source_id, "t-" + source_id, state, {"displayName": source_id}, seen)


def outcome(
    source_id: str,
    action: Action = Action.CREATE,
    status: Status = Status.SUCCESS,
    *,
    approved: bool = False,
) -> ObjectOutcome:
    return ObjectOutcome(source_id, action, status, approved=approved)


def unseen(ledger: Ledger, run_id: str, batch: int = 2) -> list[list[str]]:
    return [[x.source_id for x in b] for b in ledger.unseen_links("job", run_id, batch)]


# runs -------------------------------------------------------------------------------------------


def test_runs_start_finish_and_come_back_newest_first(ledger: Ledger) -> None:
    first = RunRecord("r1", "job", "full", False, "manual", T0)
    second = RunRecord("r2", "job", "incremental", True, "schedule", T0 + timedelta(hours=1))
    ledger.start_run(first)
    ledger.start_run(second)
    ledger.start_run(RunRecord("x1", "other", "full", False, "manual", T0))
    first.status, first.counts, first.error = "failed", {"create": 2}, "throttled"
    first.finished_at, first.mode = T0 + timedelta(minutes=5), "incremental"
    ledger.finish_run(first)

    assert ledger.recent_runs("job") == [second, first]
    assert ledger.recent_runs("job", limit=1) == [second]
    assert ledger.recent_runs("nobody") == []
    # Finishing a run never started records nothing.
    ledger.finish_run(RunRecord("ghost", "job", "full", False, "manual", T0, status="success"))
    assert [r.run_id for r in ledger.recent_runs("job")] == ["r2", "r1"]


def test_a_resumed_run_is_started_again_without_losing_its_end(ledger: Ledger) -> None:
    run = RunRecord("r1", "job", "full", False, "manual", T0)
    ledger.start_run(run)
    run.status, run.finished_at, run.error = "failed", T0 + timedelta(minutes=1), "lost"
    ledger.finish_run(run)
    again = RunRecord("r1", "job", "full", False, "resume", T0.astimezone(NEPAL))
    ledger.start_run(again)
    (stored,) = ledger.recent_runs("job")
    assert (stored.status, stored.trigger, stored.error) == ("running", "resume", "")
    assert stored.finished_at == T0 + timedelta(minutes=1)
    assert stored.started_at.utcoffset() == timedelta(0)


def test_run_counts_are_counted_from_the_runs_log_rows(ledger: Ledger) -> None:
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            outcomes=[
                outcome("a"),
                outcome("b"),
                outcome("c", Action.UPDATE, Status.FAILURE),
                outcome("d", Action.SKIP, Status.SKIPPED),
            ]
        ),
    )
    ledger.commit_page("job", "r2", PageWrite(outcomes=[outcome("e", Action.DELETE)]))
    ledger.commit_page("other", "r1", PageWrite(outcomes=[outcome("f")]))
    assert ledger.run_counts("job", "r1") == {
        "create": 2,
        "failure": 1,  # a failed update counts as a failure, not as an update
        "failure.update": 1,
        "skip": 1,
    }
    assert ledger.run_counts("job", "r2") == {"delete": 1}
    assert ledger.run_counts("job", "r3") == {}


def test_a_runs_row_is_read_back_and_rewritten_in_place(ledger: Ledger) -> None:
    """The managers phase joins a reference to the user's row of the cycle (docs/manager.md)."""
    first = ObjectOutcome(
        "a",
        Action.SKIP,
        Status.SKIPPED,
        reason="RedundantExport",
        steps=[Step("import", Status.SUCCESS, "read")],
    )
    ledger.commit_page("job", "r1", PageWrite(outcomes=[first, outcome("b")]))
    ledger.commit_page("job", "r2", PageWrite(outcomes=[outcome("a", Action.UPDATE)]))

    rows = ledger.run_rows("job", "r1", ["a", "c"])

    assert list(rows) == ["a"]
    assert rows["a"].reason == "RedundantExport"
    assert rows["a"].steps == [Step("import", Status.SUCCESS, "read")]
    joined = ObjectOutcome(
        "a",
        Action.UPDATE,
        Status.WARNING,
        steps=[*rows["a"].steps, Step("export", Status.WARNING, "removed manager")],
        modified={"manager": Change("t-m", None)},
    )
    ledger.commit_page("job", "r1", PageWrite(outcomes=[joined], replaces=["a"]))
    # Replacing a row the run does not have adds it.
    ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome("c")], replaces=["c"]))

    assert ledger.run_counts("job", "r1") == {"create": 2, "update": 1}
    assert ledger.run_counts("job", "r2") == {"update": 1}
    again = ledger.run_rows("job", "r1", ["a"])["a"]
    assert (again.action, again.status, len(again.steps)) == (Action.UPDATE, Status.WARNING, 2)
    assert again.modified == {"manager": Change("t-m", None)}


def test_reports_are_found_by_their_managers_target_user(ledger: Ledger) -> None:
    def report(source_id: str, manager: str, state: LinkState = LinkState.ACTIVE) -> Link:
        return Link("job", source_id, "t-" + source_id, state, {"manager": manager}, "r0")

    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            links=[
                report("b", "t-m"),
                report("a", "t-m"),
                report("c", "t-n"),
                report("d", "t-m", LinkState.SOFT_DELETED),
                link("m"),
            ]
        ),
    )

    assert [x.source_id for x in ledger.reports_of("job", ["t-m"])] == ["a", "b"]
    assert [x.source_id for x in ledger.reports_of("job", ["t-m", "t-n"])] == ["a", "b", "c"]
    assert ledger.reports_of("job", []) == []
    assert ledger.reports_of("other", ["t-m"]) == []


# links ------------------------------------------------------------------------------------------


def test_links_are_stored_per_job_and_read_back_as_written(ledger: Ledger) -> None:
    written = [link("a"), link("b", LinkState.DISABLED), link("c", LinkState.SOFT_DELETED)]
    written[0].source_label, written[0].source_mail = "a@contoso.com", "a@contoso.com"
    ledger.commit_page("job", "r0", PageWrite(links=written))
    ledger.commit_page("other", "r0", PageWrite(links=[link("z")]))

    found = ledger.links_for("job", ["a", "b", "c", "missing", "a", "z"])
    assert found == {"a": written[0], "b": written[1], "c": written[2]}
    assert ledger.links_for("job", []) == {}
    assert ledger.link_count("job") == 2  # active and disabled: the soft-deleted is not live
    assert ledger.link_count("nobody") == 0

    # A later page that did not read the label keeps the one known; other fields are replaced.
    again = link("a", LinkState.SOFT_DELETED, seen="r1")
    again.attributes = {}
    ledger.commit_page("job", "r1", PageWrite(links=[again]))
    stored = ledger.links_for("job", ["a"])["a"]
    assert (stored.state, stored.attributes, stored.last_seen_run) == (
        LinkState.SOFT_DELETED,
        {},
        "r1",
    )
    assert (stored.source_label, stored.source_mail) == ("a@contoso.com", "a@contoso.com")
    assert ledger.link_count("job") == 1


def test_group_links_are_stored_per_job_replaced_and_dropped_with_their_page(
    ledger: Ledger,
) -> None:
    g1 = GroupLink("job", "g1", "tg1", "Sales", {"displayName": "Sales", "members": 3})
    g2 = GroupLink("job", "g2", "tg2", "Legal", {"displayName": "Legal"})
    ledger.commit_page("job", "r0", PageWrite(group_links=[g2, g1]))
    ledger.commit_page("other", "r0", PageWrite(group_links=[GroupLink("other", "g9", "t9")]))
    assert ledger.group_links("job") == [g1, g2]
    assert ledger.group_links("nobody") == []

    # renamed, and the other dropped, in one page with its log row
    renamed = GroupLink("job", "g1", "tg1", "Sales EU", {"displayName": "Sales EU"})
    row = ObjectOutcome("g2", Action.DELETE, Status.SUCCESS, target_id="tg2", object_type="Group")
    ledger.commit_page(
        "job", "r1", PageWrite(group_links=[renamed], dropped_groups=["g2"], outcomes=[row])
    )
    assert ledger.group_links("job") == [renamed]
    assert [g.source_id for g in ledger.group_links("other")] == ["g9"]
    assert ledger.run_counts("job", "r1") == {"delete": 1}
    # a group deleted counts against the deletion window like a user
    assert ledger.deletions_since("job", T0 - timedelta(days=1)).deleted == 1

    # a read is a copy
    ledger.group_links("job")[0].attributes["displayName"] = "changed"
    assert ledger.group_links("job") == [renamed]


def test_links_are_found_by_their_target_user_in_any_state(ledger: Ledger) -> None:
    # A soft-deleted link still holds its target user: matching must not give it to another.
    shared = link("b", LinkState.SOFT_DELETED)
    shared.target_id = "t-shared"
    ledger.commit_page("job", "r0", PageWrite(links=[link("c"), shared, link("a")]))
    ledger.commit_page("other", "r0", PageWrite(links=[link("z")]))

    found = ledger.links_by_target("job", ["t-shared", "t-c", "t-z", "t-missing", "t-c"])
    assert found == {"t-shared": [shared], "t-c": [link("c")]}
    assert ledger.links_by_target("job", []) == {}
    # One source user per target user and job (migration 0010): a second one is a Conflict.
    taken = link("a")
    taken.target_id = "t-shared"
    with pytest.raises(Conflict):
        ledger.commit_page("job", "r1", PageWrite(links=[taken]))

    # Pointed elsewhere (recreated), a link no longer answers for its old target user, which
    # another source user may then take.
    moved = link("b")
    moved.target_id = "t-new"
    ledger.commit_page("job", "r1", PageWrite(links=[moved]))
    ledger.commit_page("job", "r1", PageWrite(links=[taken]))
    found = ledger.links_by_target("job", ["t-shared", "t-new", "t-a"])
    assert {t: [x.source_id for x in links] for t, links in found.items()} == {
        "t-shared": ["a"],
        "t-new": ["b"],
    }


def test_a_link_read_back_is_a_copy(ledger: Ledger) -> None:
    ledger.commit_page("job", "r0", PageWrite(links=[link("a")]))
    ledger.links_for("job", ["a"])["a"].attributes["displayName"] = "changed"
    assert ledger.links_for("job", ["a"])["a"].attributes == {"displayName": "a"}


def test_labels_are_stored_as_the_database_columns_keep_them(ledger: Ledger) -> None:
    long = link("a")
    long.source_label = "x" * 400 + "@contoso.com"
    long.source_mail = "m\x00il@contoso.com"
    ledger.commit_page("job", "r0", PageWrite(links=[long]))
    stored = ledger.links_for("job", ["a"])["a"]
    assert stored.source_label == long.source_label[:320]
    assert stored.source_mail == "m\ufffdil@contoso.com"


def test_unseen_links_are_live_links_the_run_has_not_marked_in_batches(ledger: Ledger) -> None:
    ledger.commit_page(
        "job",
        "r0",
        PageWrite(
            links=[
                link("a"),
                link("b", seen=None),
                link("c", LinkState.SOFT_DELETED),
                link("d", LinkState.DISABLED),
                link("e"),
                link("f", seen="r1"),
            ]
        ),
    )
    ledger.commit_page("other", "r0", PageWrite(links=[link("g")]))
    ledger.commit_page("job", "r1", PageWrite(seen=["a", "missing"]))

    assert unseen(ledger, "r1") == [["b", "d"], ["e"]]
    assert unseen(ledger, "r1", batch=10) == [["b", "d", "e"]]
    assert unseen(ledger, "") == [["a", "b"], ["d", "e"], ["f"]]  # no run: every live link
    # The mark is kept beside the link, not in it: marking never rewrites a link.
    assert ledger.links_for("job", ["a"])["a"].last_seen_run == "r0"


@pytest.mark.parametrize(
    ("run", "forgotten"),
    [
        (RunRecord("r1", "job", "full", False, "manual", T0, status="success"), True),
        (RunRecord("r2", "job", "incremental", False, "schedule", T0, status="success"), True),
        # Failed, the cycle is resumed from its saved position: it keeps what it saw.
        (RunRecord("r1", "job", "full", False, "manual", T0, status="failed"), False),
        # Provisioning on demand is no cycle: a full cycle of the job may be under way.
        (RunRecord("r3", "job", "on_demand", False, "manual", T0, status="success"), False),
    ],
)
def test_a_cycles_successful_end_forgets_the_jobs_seen_marks(
    ledger: Ledger, run: RunRecord, forgotten: bool
) -> None:
    ledger.commit_page("job", "r0", PageWrite(links=[link("a"), link("b")]))
    ledger.commit_page("other", "r0", PageWrite(links=[link("a")]))
    ledger.commit_page("job", "r1", PageWrite(seen=["a"]))
    ledger.commit_page("other", "r1", PageWrite(seen=["a"]))
    ledger.start_run(run)

    ledger.finish_run(run)

    assert unseen(ledger, "r1") == ([["a", "b"]] if forgotten else [["b"]])
    # Another job's marks are its own.
    assert [[x.source_id for x in b] for b in ledger.unseen_links("other", "r1", 2)] == []


def test_a_sweep_sees_the_marks_and_links_committed_between_its_batches(ledger: Ledger) -> None:
    ledger.commit_page("job", "r0", PageWrite(links=[link(x) for x in "abcdef"]))
    batches = ledger.unseen_links("job", "r1", 2)
    assert [x.source_id for x in next(batches)] == ["a", "b"]
    # While the sweep runs, a page marks d and soft-deletes e (and adds a, already passed).
    ledger.commit_page(
        "job", "r1", PageWrite(links=[link("e", LinkState.SOFT_DELETED)], seen=["d"])
    )
    assert [[x.source_id for x in b] for b in batches] == [["c", "f"]]


# a page's effects -------------------------------------------------------------------------------


def test_a_page_resolves_pending_users_and_moves_escrows_and_staged_deletions(
    ledger: Ledger,
) -> None:
    ledger.apply_membership_changes(
        "job", [MembershipChange("g", u, True) for u in ("u1", "u2", "u3")]
    )
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            resolved_pending=["u1", "u3", "nobody"],
            escrows=[Escrow("job", "a", 1, T0, T0), Escrow("job", "b", 1, T0, T0)],
            staged=[StagedDeletion("c", "out of scope", False), StagedDeletion("d", "gone", True)],
        ),
    )
    assert ledger.pending("job", 10) == ["u2"]
    # Released and escrowed again in one page (failed once more): escrowed, with the new count.
    ledger.commit_page(
        "job",
        "r2",
        PageWrite(
            released=["a", "b"],
            escrows=[Escrow("job", "b", 2, T0, T0 + timedelta(hours=6), "again")],
            unstaged=["c", "d"],
            staged=[StagedDeletion("d", "gone for good", True)],
        ),
    )
    assert ledger.escrows_for("job", ["a", "b"]) == {
        "b": Escrow("job", "b", 2, T0, T0 + timedelta(hours=6), "again")
    }
    assert ledger.staged("job") == [StagedDeletion("d", "gone for good", True)]


def test_an_approved_staged_deletion_stays_approved_when_staged_again(ledger: Ledger) -> None:
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            staged=[
                StagedDeletion("a", "gone", True, approved=True),
                StagedDeletion("b", "gone", True),
            ]
        ),
    )
    ledger.commit_page(
        "job",
        "r2",
        PageWrite(
            staged=[
                StagedDeletion("a", "still gone", True, approved=False),
                StagedDeletion("b", "gone", True, approved=True),
            ]
        ),
    )
    assert ledger.staged("job") == [
        StagedDeletion("a", "still gone", True, approved=True),
        StagedDeletion("b", "gone", True, approved=True),
    ]
    # Unstaged (its user came back), the approval goes with it.
    ledger.commit_page("job", "r3", PageWrite(unstaged=["a"]))
    ledger.commit_page("job", "r4", PageWrite(staged=[StagedDeletion("a", "gone", True)]))
    assert ledger.staged("job")[0] == StagedDeletion("a", "gone", True, approved=False)


def test_deletions_since_counts_the_deprovisionings_made_in_the_window(ledger: Ledger) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            outcomes=[
                outcome("a", Action.DELETE),
                outcome("b", Action.DELETE, Status.WARNING),  # already gone: made all the same
                outcome("c", Action.DISABLE),
                outcome("d", Action.DELETE, Status.FAILURE),  # not made
                outcome("e", Action.DELETE, approved=True),  # allowed over the threshold
                outcome("f", Action.STAGED_DELETE, Status.SKIPPED),
                outcome("g", Action.UPDATE),
            ]
        ),
    )
    ledger.commit_page("other", "r1", PageWrite(outcomes=[outcome("h", Action.DELETE)]))

    assert ledger.deletions_since("job", before) == WindowDeletions(deleted=2, disabled=1)
    assert ledger.deletions_since("job", before.astimezone(NEPAL)).total == 3
    assert ledger.deletions_since("job", datetime.now(UTC) + timedelta(seconds=1)).total == 0
    assert ledger.deletions_since("nobody", before).total == 0


def test_purging_logs_forgets_old_rows_of_every_job(ledger: Ledger) -> None:
    assert isinstance(ledger, MemoryLedger | SqlLedger | DryRunLedger)
    ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome("a"), outcome("b")]))
    ledger.commit_page("other", "r1", PageWrite(outcomes=[outcome("c")]))
    assert ledger.purge_logs(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert ledger.purge_logs(datetime.now(UTC) + timedelta(seconds=1)) == 3
    assert ledger.run_counts("job", "r1") == {}


# assignments ------------------------------------------------------------------------------------


def test_assignments_are_replaced_and_changed_and_changes_make_users_pending(
    ledger: Ledger,
) -> None:
    ledger.replace_assignments("job", {"g1": {"u1", "u2"}, "g2": {"u2", "u4"}})
    ledger.replace_assignments("other", {"g1": {"u9"}})
    assert ledger.assigned("job", ["u1", "u2", "u3", "u9"]) == {"u1", "u2"}
    assert ledger.memberships("job") == {("g1", "u1"), ("g1", "u2"), ("g2", "u2"), ("g2", "u4")}
    assert ledger.memberships("job", ["u2", "u3"]) == {("g1", "u2"), ("g2", "u2")}
    assert ledger.pending("job", 10) == []  # a full read marks nobody

    ledger.apply_membership_changes(
        "job",
        [
            MembershipChange("g1", "u3", True),
            MembershipChange("g1", "u1", False),
            MembershipChange("g1", "u5", True),
            MembershipChange("g1", "u5", False),  # added and removed in one round
            MembershipChange("g3", "u6", False),  # removed where it never was
        ],
    )
    assert ledger.memberships("job", ["u1", "u3", "u5", "u6"]) == {("g1", "u3")}
    assert ledger.pending("job", 10) == ["u1", "u3", "u5", "u6"]
    assert ledger.pending("job", 2) == ["u1", "u3"]

    ledger.apply_membership_changes("job", [], removed_groups=["g2"])
    assert ledger.memberships("job") == {("g1", "u2"), ("g1", "u3")}
    assert ledger.pending("job", 10) == ["u1", "u2", "u3", "u4", "u5", "u6"]
    assert ledger.pending("other", 10) == []

    ledger.replace_assignments("job", {})
    assert ledger.memberships("job") == set()
    assert ledger.memberships("other") == {("g1", "u9")}
    assert ledger.pending("job", 10) == ["u1", "u2", "u3", "u4", "u5", "u6"]


# job state, escrows, staged deletions ------------------------------------------------------------


def test_job_state_is_saved_and_read_back_in_utc(ledger: Ledger) -> None:
    assert ledger.job_state("job") == JobState("job")
    at = datetime(2026, 1, 1, 12, 0, tzinfo=NEPAL)
    state = JobState(
        "job",
        paused=True,
        quarantine_reason="TooManyDeletes",
        quarantine_since=at,
        quarantine_error="60 deletions",
        next_attempt_at=at + timedelta(hours=2),
        failures=2,
        allow_deletes=True,
        deletions_approved_at=at,
    )
    ledger.save_job_state(state)
    ledger.save_job_state(JobState("other", paused=True))
    stored = ledger.job_state("job")
    assert stored == state
    assert stored.quarantine_since is not None
    assert stored.quarantine_since.utcoffset() == timedelta(0)
    ledger.save_job_state(JobState("job", allow_deletes=True))
    assert ledger.job_state("job") == JobState("job", allow_deletes=True)
    assert ledger.job_state("other").paused


def test_due_escrows_come_oldest_first_up_to_the_limit(ledger: Ledger) -> None:
    hour = timedelta(hours=1)
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            escrows=[
                Escrow("job", "late", 1, T0, T0 + 3 * hour),
                Escrow("job", "b", 1, T0, T0 + hour),
                Escrow("job", "a", 2, T0, T0 + hour, "boom"),
                Escrow("job", "first", 1, T0, T0),
            ]
        ),
    )
    ledger.commit_page("other", "r1", PageWrite(escrows=[Escrow("other", "z", 1, T0, T0)]))

    assert ledger.due_escrows("job", T0 + hour, 10) == ["first", "a", "b"]
    assert ledger.due_escrows("job", T0 + hour, 2) == ["first", "a"]
    assert ledger.due_escrows("job", (T0 - hour).astimezone(NEPAL), 10) == []
    assert ledger.escrow_count("job") == 4
    assert ledger.escrow_count("nobody") == 0
    found = ledger.escrows_for("job", ["a", "first", "z", "a"])
    assert found == {
        "a": Escrow("job", "a", 2, T0, T0 + hour, "boom"),
        "first": Escrow("job", "first", 1, T0, T0),
    }


def test_staged_deletions_come_in_source_id_order(ledger: Ledger) -> None:
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(staged=[StagedDeletion(x, "out of scope", False) for x in ("c", "a", "b")]),
    )
    ledger.commit_page("other", "r1", PageWrite(staged=[StagedDeletion("z", "gone", True)]))
    assert [s.source_id for s in ledger.staged("job")] == ["a", "b", "c"]
    assert ledger.staged("nobody") == []


def test_clear_forgets_a_jobs_escrows_and_or_staged_deletions(ledger: Ledger) -> None:
    for job in ("job", "other"):
        ledger.commit_page(
            job,
            "r1",
            PageWrite(
                escrows=[Escrow(job, "a", 1, T0, T0)], staged=[StagedDeletion("b", "gone", True)]
            ),
        )
    ledger.clear("job")
    assert (ledger.escrow_count("job"), len(ledger.staged("job"))) == (1, 1)
    ledger.clear("job", escrows=True)
    assert (ledger.escrow_count("job"), len(ledger.staged("job"))) == (0, 1)
    ledger.clear("job", staged=True)
    assert ledger.staged("job") == []
    assert (ledger.escrow_count("other"), len(ledger.staged("other"))) == (1, 1)


# a dry run over a ledger with data ---------------------------------------------------------------
# The overlay must read as the base would after the same writes, and leave the base as it was.


@pytest.fixture(params=["memory", "sqlite"])
def new_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Ledger]]:
    engines = []

    def make() -> Ledger:
        if request.param == "memory":
            return MemoryLedger()
        migrated: MigratedSqlite = request.getfixturevalue("migrated_sqlite")
        engine = make_engine(migrated.url(tmp_path / f"state{len(engines)}.db"))
        engines.append(engine)
        return SqlLedger(engine)

    yield make
    for engine in engines:
        engine.dispose()


def seed(ledger: Ledger) -> None:
    """A job some real runs have left: links, a log, escrows, staged deletions, assignments."""
    ledger.start_run(RunRecord("r0", "job", "full", False, "manual", T0))
    labelled = link("d")
    labelled.source_label = "d@contoso.com"
    ledger.commit_page(
        "job",
        "r0",
        PageWrite(
            links=[
                link("a"),
                link("b", LinkState.DISABLED),
                link("c", LinkState.SOFT_DELETED),
                labelled,
                link("e"),
            ],
            outcomes=[outcome("a"), outcome("x", Action.DELETE)],
            escrows=[Escrow("job", "e1", 1, T0, T0), Escrow("job", "e2", 2, T0, T0, "boom")],
            staged=[
                StagedDeletion("s1", "gone", True, approved=True),
                StagedDeletion("s2", "out of scope", False),
            ],
        ),
    )
    ledger.replace_assignments("job", {"g1": {"u1", "u2"}, "g2": {"u3"}})
    ledger.apply_membership_changes("job", [MembershipChange("g2", u, True) for u in ("u4", "u5")])
    ledger.save_job_state(JobState("job", paused=True, failures=1))
    # provisioned groups (docs/groups.md): two linked, one skipped for its name
    taken = ObjectOutcome("g3", Action.SKIP, Status.WARNING, reason="taken", object_type="Group")
    ledger.commit_page(
        "job",
        "r9",
        PageWrite(
            group_links=[GroupLink("job", g, "t-" + g, g.upper()) for g in ("g1", "g2")],
            outcomes=[taken],
        ),
    )


def a_dry_runs_page(ledger: Ledger) -> list[list[str]]:
    """A cycle's writes: a run, pages changing what the base holds, a sweep between pages."""
    ledger.start_run(RunRecord("r1", "job", "full", True, "manual", T0 + timedelta(hours=1)))
    unlabelled = link("d", seen="r1")  # a page that did not read the label
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            links=[unlabelled, link("f", seen=None), link("b", LinkState.SOFT_DELETED)],
            seen=["a"],
            outcomes=[outcome("d", Action.UPDATE), outcome("y", Action.DISABLE)],
            released=["e1"],
            escrows=[
                Escrow("job", "e2", 3, T0, T0 + timedelta(hours=1)),
                Escrow("job", "e3", 1, T0, T0),
            ],
            unstaged=["s2"],
            staged=[StagedDeletion("s1", "still gone", True), StagedDeletion("s3", "gone", True)],
            resolved_pending=["u4"],
        ),
    )
    ledger.apply_membership_changes("job", [MembershipChange("g1", "u2", False)])
    ledger.save_job_state(JobState("job", failures=0))
    # g1 renamed, g2 deleted, g3's name free at last: created
    created = ObjectOutcome("g3", Action.CREATE, Status.SUCCESS, object_type="Group")
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            group_links=[GroupLink("job", "g1", "t-g1", "G1 EU"), GroupLink("job", "g3", "t-g3")],
            dropped_groups=["g2"],
            outcomes=[created],
        ),
    )
    # The sweep: e and f unseen (b soft-deleted, a and d seen); a page between its batches.
    batches = ledger.unseen_links("job", "r1", 1)
    swept = [[x.source_id for x in next(batches)]]
    ledger.commit_page("job", "r1", PageWrite(links=[link("g", seen=None)], seen=["f"]))
    swept += [[x.source_id for x in b] for b in batches]
    return swept


def a_restart(ledger: Ledger) -> list[list[str]]:
    """A restart forgets the escrows and staged deletions; assignments are read anew."""
    ledger.clear("job", escrows=True, staged=True)
    ledger.replace_assignments("job", {"g3": {"u1", "u9"}})
    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            escrows=[Escrow("job", "e4", 1, T0, T0)],
            staged=[StagedDeletion("s1", "gone", True)],  # staged anew: not approved
            resolved_pending=["u5"],
        ),
    )
    return unseen(ledger, "r1")


def reads(ledger: Ledger) -> dict[str, object]:
    """Everything a cycle can read of the job."""
    ids = ["a", "b", "c", "d", "e", "f", "g", "e1", "e2", "e3", "e4"]
    return {
        "runs": ledger.recent_runs("job"),
        "counts": [ledger.run_counts("job", r) for r in ("r0", "r1")],
        "links": ledger.links_for("job", ids),
        "by target": ledger.links_by_target("job", [f"t-{i}" for i in ids]),
        "link count": ledger.link_count("job"),
        "unseen": (unseen(ledger, ""), unseen(ledger, "r1", 3)),
        "escrows": (ledger.escrows_for("job", ids), ledger.escrow_count("job")),
        "due": (ledger.due_escrows("job", T0, 10), ledger.due_escrows("job", T0, 1)),
        "staged": ledger.staged("job"),
        "deletions": ledger.deletions_since("job", T0),
        "assignments": (ledger.memberships("job"), ledger.assigned("job", ["u1", "u2", "u3"])),
        "pending": (ledger.pending("job", 10), ledger.pending("job", 1)),
        "state": ledger.job_state("job"),
        "group links": ledger.group_links("job"),
        "group skips": ledger.group_skips("job"),
    }


@pytest.mark.parametrize("writes", [a_dry_runs_page, a_restart])
def test_the_overlay_over_data_reads_as_the_ledger_would_and_leaves_it_alone(
    new_ledger: Callable[[], Ledger], writes: Callable[[Ledger], list[list[str]]]
) -> None:
    expected, base = new_ledger(), new_ledger()
    seed(expected)
    seed(base)
    before = reads(base)
    overlay = DryRunLedger(base)

    assert writes(overlay) == writes(expected)
    assert reads(overlay) == reads(expected)
    assert reads(base) == before


def test_the_overlay_changes_what_the_base_holds_as_a_real_page_would(
    new_ledger: Callable[[], Ledger],
) -> None:
    base = new_ledger()
    seed(base)
    overlay = DryRunLedger(base)
    assert a_dry_runs_page(overlay) == [["e"], ["g"]]  # f marked seen while the sweep ran
    d = overlay.links_for("job", ["d"])["d"]
    assert (d.last_seen_run, d.source_label) == ("r1", "d@contoso.com")
    assert overlay.link_count("job") == 5  # a, d, e, f, g: b soft-deleted
    assert overlay.escrows_for("job", ["e1", "e2"]) == {
        "e2": Escrow("job", "e2", 3, T0, T0 + timedelta(hours=1))
    }
    assert overlay.due_escrows("job", T0, 10) == ["e3"]
    assert [(s.source_id, s.approved) for s in overlay.staged("job")] == [
        ("s1", True),  # staged again, the base's approval stays
        ("s3", False),
    ]
    assert overlay.memberships("job") == {("g1", "u1"), ("g2", "u3"), ("g2", "u4"), ("g2", "u5")}
    assert overlay.pending("job", 10) == ["u2", "u5"]
    assert overlay.run_counts("job", "r0") == {"create": 1, "delete": 1}
    assert [(g.source_id, g.display_name) for g in overlay.group_links("job")] == [
        ("g1", "G1 EU"),
        ("g3", ""),
    ]
    assert overlay.group_skips("job") == []  # g3's newest row, the overlay's, is a create
    assert [g.source_id for g in base.group_links("job")] == ["g1", "g2"]
    assert [r.run_id for r in overlay.recent_runs("job")] == ["r1", "r0"]
    assert base.recent_runs("job")[0].run_id == "r0"


def test_purging_logs_through_the_overlay_forgets_only_the_dry_runs_rows(
    new_ledger: Callable[[], Ledger],
) -> None:
    # A dry run never deletes from the base: its log rows are the only ones it can forget.
    base = new_ledger()
    seed(base)
    overlay = DryRunLedger(base)
    overlay.commit_page("job", "r1", PageWrite(outcomes=[outcome("f"), outcome("g")]))
    assert overlay.purge_logs(datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert overlay.run_counts("job", "r1") == {}
    assert (
        overlay.run_counts("job", "r0")
        == base.run_counts("job", "r0")
        == {
            "create": 1,
            "delete": 1,
        }
    )
