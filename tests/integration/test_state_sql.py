"""The SQL ledger on real databases, SQLite and PostgreSQL, migrated by Alembic."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, select
from sqlalchemy.engine import Engine

from tests.support.migrated import MigratedSqlite, migrated_postgres, sql_ledger
from tests.support.postgres import PostgresServer
from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, SqlLedger, make_engine
from worker.domain.errors import Transient
from worker.domain.health import Escrow, JobState
from worker.domain.model import Action, Change, Link, LinkState, ObjectOutcome, Status, Step
from worker.ports import MembershipChange, PageWrite, RunRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state database at the current schema: a copy of one migrated once for the session
    (tests/support/migrated.py). The migrations themselves run from empty in the tests that
    take `engine`, and from earlier schemas with data in their neighbours (test_seen_sql.py,
    test_compact_sql.py, ...)."""
    if request.param == "sqlite":
        migrated: MigratedSqlite = request.getfixturevalue("migrated_sqlite")
        yield migrated.url(tmp_path / "state" / "state.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with migrated_postgres(server) as url:
        yield url


@pytest.fixture
def ledger(migrated_url: str) -> Iterator[SqlLedger]:
    with sql_ledger(migrated_url) as ledger:
        yield ledger


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


def test_migrations_create_the_schema_and_are_idempotent(engine: Engine) -> None:
    before, after = upgrade_database(engine)
    assert before is None
    assert after == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert upgrade_database(engine) == (after, after)
    tables = set(inspect(engine).get_table_names())
    assert tables == {*Base.metadata.tables, "alembic_version"}


def test_the_migrated_schema_is_the_models(engine: Engine) -> None:
    """What Alembic autogenerate would write for the models against the migrated database:
    nothing (types, nullability, indexes, unique constraints)."""
    upgrade_database(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


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


def test_a_page_of_500_created_users_is_a_handful_of_statements_and_keeps_every_row(
    ledger: SqlLedger,
) -> None:
    """Links read together and rows inserted together (docs/performance.md, "Time per created
    user"), not three statements per user; a stored link is updated (keeping its label when the
    page has none), a link named twice takes its last state, the log keeps the page's order."""
    kim = Link("job", "k", "t-k", LinkState.ACTIVE, {"displayName": "Kim"}, "run0", "Kim", "k@x.y")
    ledger.commit_page("job", "run0", PageWrite(links=[kim]))
    ids = [f"s{i:03}" for i in range(500)]
    links = [Link("job", i, "t-" + i, LinkState.ACTIVE, {"displayName": i}, "run1") for i in ids]
    moved = Link("job", "k", "t-k2", LinkState.SOFT_DELETED, {"displayName": "Kit"}, "run1")
    again = Link("job", "s000", "t-s000", LinkState.DISABLED, {}, "run1", "Sam")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(ledger.engine, "before_cursor_execute", count)
    try:
        ledger.commit_page(
            "job",
            "run1",
            PageWrite(links=[*links, moved, again], seen=ids, outcomes=[outcome(i) for i in ids]),
        )
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count)

    assert len(statements) <= 10, statements
    found = ledger.links_for("job", [*ids, "k"])
    assert len(found) == 501
    assert found["s001"] == links[1]
    assert found["k"] == Link(
        "job", "k", "t-k2", LinkState.SOFT_DELETED, {"displayName": "Kit"}, "run1", "Kim", "k@x.y"
    )
    assert found["s000"] == again
    rows = ledger.logs("job", limit=1000)
    assert [row["sourceId"] for row in rows] == ids


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

    assert ledger.recent_runs("job") == [run]
    assert len(ledger.logs("job", run_id="run1")) == 2
    assert [r["sourceId"] for r in ledger.logs("job", action="update")] == ["s2"]
    assert [r["sourceId"] for r in ledger.logs("job", user="S1@CONTOSO.COM")] == ["s1"]
    row = ledger.logs("job", user="t-s1")[0]
    assert row["modifiedProperties"] == {"displayName": {"old": None, "new": "Ann"}}
    assert row["steps"] == [{"name": "export", "status": "success", "detail": "invited"}]
    failed = ObjectOutcome(source_id="s3", action=Action.UPDATE, status=Status.FAILURE)
    skipped = ObjectOutcome(source_id="s4", action=Action.SKIP, status=Status.SKIPPED)
    ledger.commit_page("job", "run1", PageWrite(outcomes=[failed, skipped, outcome("s5")]))
    assert ledger.run_counts("job", "run1") == {
        "create": 2,
        "update": 1,
        "skip": 1,
        "failure": 1,
        "failure.update": 1,
    }
    assert ledger.run_counts("job", "run2") == {}


def test_log_pages_newest_first_and_one_row_by_its_change_id(ledger: SqlLedger) -> None:
    """What the console pages through: the newest rows first, a page at a time."""
    run = RunRecord("run1", "job", "full", False, "manual", datetime(2026, 1, 1, tzinfo=UTC))
    ledger.start_run(run)
    for start in range(0, 7, 3):
        outcomes = [outcome(f"s{i}") for i in range(start, min(start + 3, 7))]
        ledger.commit_page("job", "run1", PageWrite(outcomes=outcomes))
    oldest_first = [r["sourceId"] for r in ledger.logs("job")]
    assert oldest_first == [f"s{i}" for i in range(7)]
    pages = [
        [r["sourceId"] for r in ledger.logs("job", newest_first=True, limit=3, offset=offset)]
        for offset in (0, 3, 6)
    ]
    assert pages == [["s6", "s5", "s4"], ["s3", "s2", "s1"], ["s0"]]
    row = ledger.logs("job", user="s4@contoso.com")[0]
    assert ledger.logs("job", change_id=row["changeId"]) == [row]
    assert ledger.logs("job", change_id="no-such-change") == []


def test_log_pages_newest_first_by_keyset_across_jobs(ledger: SqlLedger) -> None:
    from worker.adapters.state.sql import LogCondition

    for n in range(5):
        ledger.commit_page("a", "ra", PageWrite(outcomes=[outcome(f"a{n}")]))
        ledger.commit_page("b", "rb", PageWrite(outcomes=[outcome(f"b{n}", Action.UPDATE)]))
    first = ledger.log_page([], before=None, limit=3)
    assert [row["sourceId"] for _, row in first] == ["b4", "a4", "b3"]
    ledger.commit_page("a", "ra", PageWrite(outcomes=[outcome("newer")]))  # while paging
    rest = ledger.log_page([], before=first[-1][0], limit=100)
    assert [row["sourceId"] for _, row in rest] == ["a3", "b2", "a2", "b1", "a1", "b0", "a0"]
    only_a = ledger.log_page(
        [LogCondition("job", "eq", "a"), LogCondition("action", "in", ["create", "restore"])],
        before=None,
        limit=100,
    )
    assert [row["sourceId"] for _, row in only_a] == ["newer", "a4", "a3", "a2", "a1", "a0"]
    when = datetime.fromisoformat(only_a[2][1]["activityDateTime"])
    since = ledger.log_page([LogCondition("created_at", "ge", when)], before=None, limit=100)
    assert {row["sourceId"] for _, row in since} >= {"newer", "a4", "a3"}
    assert ledger.log_page([LogCondition("job", "eq", "nope")], before=None, limit=5) == []


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


def test_datetimes_are_the_same_instants_in_utc_whatever_offset_comes_in_or_the_server_uses(
    ledger: SqlLedger,
) -> None:
    # The throwaway PostgreSQL server runs in Asia/Kathmandu (+05:45); SQLite keeps no offset.
    nepal = timezone(timedelta(hours=5, minutes=45))
    at = datetime(2026, 1, 1, 12, 0, tzinfo=nepal)  # 06:15 UTC
    ledger.commit_page("job", "r1", PageWrite(escrows=[Escrow("job", "a", 1, at, at)]))
    assert ledger.due_escrows("job", datetime(2026, 1, 1, 6, 14, tzinfo=UTC), 10) == []
    assert ledger.due_escrows("job", datetime(2026, 1, 1, 6, 15, tzinfo=UTC), 10) == ["a"]
    back = ledger.escrows_for("job", ["a"])["a"].next_attempt_at
    assert (back, back.utcoffset()) == (at, timedelta(0))

    ledger.start_run(RunRecord("r1", "job", "full", False, "manual", at))
    started = ledger.recent_runs("job")[0].started_at
    assert started.isoformat() == "2026-01-01T06:15:00+00:00"
    ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome("s1")]))
    assert ledger.logs("job")[0]["activityDateTime"].endswith("+00:00")


def test_a_row_rewritten_in_place_is_the_row_the_outcome_gives_when_new(
    ledger: SqlLedger,
) -> None:
    """The managers phase rewrites a run's row in place (docs/manager.md): it keeps its id,
    change id and time, and every other column is what the same outcome stores as a new row
    (one builder packs both, sql_rows.py's `_log_row`), free text made storable alike."""
    rich = ObjectOutcome(
        source_id="a",
        action=Action.DISABLE,
        status=Status.WARNING,
        source_label="A\x00nn" + "x" * 400,
        source_mail="ann@contoso.com",
        target_id="t-a",
        reason="why\x00not",
        error_code="E" * 150,
        error_message="bad\x00byte",
        steps=[Step("export", Status.WARNING, "removed manager")],
        modified={"manager": Change("t-m", None)},
        duration_ms=12,
        approved=True,
        object_type="User",
    )
    ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome("a")]))
    ledger.commit_page("job", "r1", PageWrite(outcomes=[rich], replaces=["a"]))
    ledger.commit_page("new", "r1", PageWrite(outcomes=[rich]))

    log = Base.metadata.tables["provisioning_log"]
    with ledger.engine.connect() as connection:
        rows = {r.job: r._asdict() for r in connection.execute(select(log).order_by(log.c.id))}
    rewritten, fresh = rows["job"], rows["new"]
    assert rewritten["id"] < fresh["id"]  # kept its place in the log
    assert rewritten["created_at"] < fresh["created_at"]  # and its time
    assert rewritten["change_id"] != fresh["change_id"]
    own = ("id", "change_id", "created_at", "job")
    assert {k: v for k, v in rewritten.items() if k not in own} == {
        k: v for k, v in fresh.items() if k not in own
    }
    assert rewritten["approved"] is True
    assert rewritten["source_label"] == ("A\ufffdnn" + "x" * 400)[:320]


def test_remote_free_text_too_long_or_holding_nul_never_blocks_a_page(ledger: SqlLedger) -> None:
    # Labels and error texts come from the tenants; PostgreSQL enforces VARCHAR lengths and
    # refuses NUL characters where SQLite takes anything. A page must commit on both alike.
    label = "x" * 400 + "@contoso.com"
    odd = outcome("s1")
    odd.source_label = label
    odd.status = Status.FAILURE
    odd.error_code = "E" * 150
    odd.error_message = "bad\x00byte"
    odd.reason = "why\x00not"
    link = Link("job", "s1", "t-s1", LinkState.ACTIVE, {"displayName": "A\x00nn"}, "r1", label)
    ledger.commit_page("job", "r1", PageWrite(links=[link], seen=["s1"], outcomes=[odd]))

    row = ledger.logs("job")[0]
    assert row["sourceIdentity"] == label[:320]
    assert row["errorCode"] == "E" * 100
    assert row["errorMessage"] == "bad\ufffdbyte"
    assert row["reason"] == "why\ufffdnot"
    stored = ledger.links_for("job", ["s1"])["s1"]
    assert stored.source_label == label[:320]
    assert stored.attributes == {"displayName": "A\x00nn"}  # JSON keeps it, escaped


def test_saving_a_row_another_process_just_created_updates_it(
    ledger: SqlLedger, migrated_url: str
) -> None:
    """Job state, escrows and staged deletions are upserts: between our read and our insert
    another process (the CLI pausing a job, say) may insert the same row first."""
    other = SqlLedger(make_engine(migrated_url))
    raced: list[str] = []

    def _insert_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT") and not raced:
            raced.append(statement)
            other.save_job_state(JobState("job", paused=True))

    event.listen(ledger.engine, "before_cursor_execute", _insert_first)
    try:
        ledger.save_job_state(JobState("job", allow_deletes=True))
    finally:
        event.remove(ledger.engine, "before_cursor_execute", _insert_first)
        other.engine.dispose()
    assert raced, "the other process never got in before our insert"
    assert ledger.job_state("job") == JobState("job", allow_deletes=True)


def every_kind_of_call(ledger: SqlLedger) -> list[Callable[[], object]]:
    """A read, a write, a generator's first batch and a job-state read: each must fail alike."""
    return [
        lambda: ledger.links_for("job", ["s1"]),
        lambda: ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome("s1")])),
        lambda: next(iter(ledger.unseen_links("job", "r1", 10))),
        lambda: ledger.job_state("job"),
    ]


def test_a_sqlite_database_another_process_locks_is_a_transient_error_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "state.db"
    engine = make_engine(f"sqlite:///{path}?timeout=0.2")
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    engine.dispose()  # as a process that starts now finds it
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        for call in every_kind_of_call(ledger):
            with pytest.raises(Transient) as caught:
                call()
            assert str(caught.value) == (
                f"the state database sqlite:///{path} is unavailable: "
                "OperationalError: database is locked"
            )
    finally:
        holder.close()
        engine.dispose()
    assert ledger.link_count("job") == 0  # and works again once it is free


def test_a_sqlite_database_that_cannot_be_opened_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    audit = SqlAuditLog(engine)
    engine.dispose()
    shutil.rmtree(path.parent)
    path.parent.write_text("not a directory")  # the volume holding it is gone
    for call in [*every_kind_of_call(ledger), lambda: audit.entries()]:
        with pytest.raises(Transient, match=r"^the state database sqlite:///.* is unavailable: "):
            call()
    engine.dispose()
