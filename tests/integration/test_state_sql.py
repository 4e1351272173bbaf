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
from worker.ports import MembershipChange, RunRecord

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
    ledger.commit_page("job", "run1", links=[link], seen=["s1"], outcomes=[outcome("s1")])
    assert ledger.links_for("job", ["s1"])["s1"] == link

    # A second page whose log row cannot be written leaves no trace of its link either.
    broken = outcome("s2")
    broken.steps = [object()]  # type: ignore[list-item]
    with pytest.raises((Transient, AttributeError)):
        ledger.commit_page(
            "job",
            "run1",
            links=[Link("job", "s2", "t-s2", LinkState.ACTIVE, {}, "run1")],
            seen=["s2"],
            outcomes=[broken],
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
    ledger.commit_page("job", "old", links=links, seen=[], outcomes=[])
    ledger.commit_page("job", "new", links=[], seen=["a"], outcomes=[])

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
        "job", "r", links=[], seen=[], outcomes=[], resolved_pending=["u1", "u2", "u3"]
    )
    assert ledger.pending("job", 10) == []


def test_runs_and_log_queries(ledger: SqlLedger) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord("run1", "job", "full", False, "manual", started)
    ledger.start_run(run)
    run.status, run.counts, run.finished_at = "success", {"create": 1}, started
    ledger.finish_run(run)
    ledger.commit_page(
        "job", "run1", links=[], seen=[], outcomes=[outcome("s1"), outcome("s2", Action.UPDATE)]
    )

    assert ledger.get_run("run1") == run
    assert [r.run_id for r in ledger.recent_runs("job")] == ["run1"]
    assert len(ledger.logs("job", run_id="run1")) == 2
    assert [r["sourceId"] for r in ledger.logs("job", action="update")] == ["s2"]
    assert [r["sourceId"] for r in ledger.logs("job", user="S1@CONTOSO.COM")] == ["s1"]
    row = ledger.logs("job", user="t-s1")[0]
    assert row["modifiedProperties"] == {"displayName": {"old": None, "new": "Ann"}}
    assert row["steps"] == [{"name": "export", "status": "success", "detail": "invited"}]
