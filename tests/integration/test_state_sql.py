"""The SQL ledger on a real SQLite database, migrated by Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from worker.adapters.state.db import upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.errors import Transient
from worker.domain.model import Action, Change, Link, LinkState, ObjectOutcome, Status, Step
from worker.ports import MembershipChange, PageWrite, RunRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger(tmp_path: Path) -> SqlLedger:
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'state.db'}")
    upgrade_database(engine)
    return SqlLedger(engine)


def outcome(source_id: str, action: Action = Action.CREATE) -> ObjectOutcome:
    return ObjectOutcome(
        source_id=source_id,
        source_label=f"{source_id}@contoso.com",
        action=action,
        status=Status.SUCCESS,
        target_id="t-" + source_id,
        steps=[Step("export", Status.SUCCESS, "invited")],
        modified={"displayName": Change(None, "Ann")},
    )


def test_migrations_create_the_schema_and_are_idempotent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    before, after = upgrade_database(engine)
    assert before is None
    assert upgrade_database(engine) == (after, after)
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "links", "provisioning_log", "assignments", "pending_users"} <= tables


def test_a_page_is_committed_in_one_transaction(ledger: SqlLedger) -> None:
    link = Link("job", "s1", "t-s1", LinkState.ACTIVE, {"displayName": "Ann"}, "run1")
    ledger.commit_page(
        "job", "run1", PageWrite(links=[link], seen=["s1"], outcomes=[outcome("s1")])
    )
    assert ledger.links_for("job", ["s1"])["s1"] == link

    # A second page whose log row cannot be written leaves no trace of its link either.
    broken = outcome("s2")
    broken.steps = [object()]  # type: ignore[list-item]
    with pytest.raises((Transient, AttributeError)):
        ledger.commit_page(
            "job",
            "run1",
            PageWrite(
                links=[Link("job", "s2", "t-s2", LinkState.ACTIVE, {}, "run1")],
                seen=["s2"],
                outcomes=[broken],
            ),
        )
    assert "s2" not in ledger.links_for("job", ["s2"])
    assert [row["sourceId"] for row in ledger.logs("job")] == ["s1"]


def test_unseen_links_are_the_live_ones_a_run_did_not_mark(ledger: SqlLedger) -> None:
    links = [
        Link("job", "a", "ta", LinkState.ACTIVE, {}, "old"),
        Link("job", "b", "tb", LinkState.ACTIVE, {}, "old"),
        Link("job", "c", "tc", LinkState.SOFT_DELETED, {}, "old"),
        Link("job", "d", "td", LinkState.DISABLED, {}, "old"),
    ]
    ledger.commit_page("job", "old", PageWrite(links=links, seen=[], outcomes=[]))
    ledger.commit_page("job", "new", PageWrite(links=[], seen=["a"], outcomes=[]))

    unseen = [
        link.source_id for batch in ledger.unseen_links("job", "new", batch=1) for link in batch
    ]

    assert unseen == ["b", "d"]
    assert ledger.link_count("job") == 3


def test_membership_changes_mark_users_pending(ledger: SqlLedger) -> None:
    ledger.replace_assignments("job", {"g1": {"u1", "u2"}})
    ledger.apply_membership_changes(
        "job", [MembershipChange("g1", "u3", True), MembershipChange("g1", "u1", False)]
    )
    assert ledger.assigned("job", ["u1", "u2", "u3"]) == {"u2", "u3"}
    assert ledger.pending("job", 10) == ["u1", "u3"]
    ledger.apply_membership_changes("job", [], removed_groups=["g1"])
    assert ledger.assigned("job", ["u2", "u3"]) == set()
    ledger.commit_page(
        "job", "r", PageWrite(links=[], seen=[], outcomes=[], resolved_pending=["u1", "u2", "u3"])
    )
    assert ledger.pending("job", 10) == []


def test_runs_and_log_queries(ledger: SqlLedger) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord("run1", "job", "full", False, "manual", started)
    ledger.start_run(run)
    run.status, run.counts, run.finished_at = "success", {"create": 1}, started
    ledger.finish_run(run)
    ledger.commit_page(
        "job",
        "run1",
        PageWrite(links=[], seen=[], outcomes=[outcome("s1"), outcome("s2", Action.UPDATE)]),
    )

    assert ledger.get_run("run1") == run
    assert [r.run_id for r in ledger.recent_runs("job")] == ["run1"]
    assert len(ledger.logs("job", run_id="run1")) == 2
    assert [r["sourceId"] for r in ledger.logs("job", action="update")] == ["s2"]
    assert [r["sourceId"] for r in ledger.logs("job", user="S1@CONTOSO.COM")] == ["s1"]
    row = ledger.logs("job", user="t-s1")[0]
    assert row["modifiedProperties"] == {"displayName": {"old": None, "new": "Ann"}}
    assert row["steps"] == [{"name": "export", "status": "success", "detail": "invited"}]


def test_job_state_escrows_and_staged_deletions_round_trip(ledger: SqlLedger) -> None:
    from datetime import timedelta

    from worker.domain.health import Escrow, JobState, StagedDeletion

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ledger.job_state("job") == JobState("job")
    state = JobState(
        "job",
        paused=True,
        quarantine_reason="TooManyDeletes",
        quarantine_since=now,
        allow_deletes=True,
    )
    ledger.save_job_state(state)
    assert ledger.job_state("job") == state

    ledger.commit_page(
        "job",
        "r1",
        PageWrite(
            escrows=[
                Escrow("job", "a", 1, now, now),
                Escrow("job", "b", 2, now, now + timedelta(hours=6)),
            ],
            staged=[
                StagedDeletion("c", "out of scope", False),
                StagedDeletion("d", "deleted", True),
            ],
        ),
    )
    assert ledger.due_escrows("job", now, 10) == ["a"]
    assert ledger.escrow_count("job") == 2
    assert ledger.escrows_for("job", ["b"])["b"].attempts == 2
    assert ledger.staged("job") == [
        StagedDeletion("c", "out of scope", False),
        StagedDeletion("d", "deleted", True),
    ]

    ledger.commit_page("job", "r2", PageWrite(released=["a"], unstaged=["c"]))
    assert ledger.escrow_count("job") == 1
    assert [s.source_id for s in ledger.staged("job")] == ["d"]
    ledger.clear("job", escrows=True, staged=True)
    assert ledger.escrow_count("job") == 0
    assert ledger.staged("job") == []
