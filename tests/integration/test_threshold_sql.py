"""The deletion window on real databases, SQLite and PostgreSQL: migration 0006 from a 0005
database full of state, and the window's count from the provisioning log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from tests.integration.test_audit_sql import TABLES_0004, fill_0004, migrate_to
from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.audit import Actor, ActorKind, AuditEntry, AuditResult, Via
from worker.domain.health import JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Action, ObjectOutcome, Status
from worker.ports import PageWrite

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
TABLES_0005 = {**TABLES_0004, "audit_log": "id"}
NEW_COLUMNS = {"deletions_approved_at", "approved"}
# Written by 0005 and never read; 0008 drops it, and its downgrade computes it from the values.
UNREAD = {"attributes_hash"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of revision 0005's tables, without the column 0006 adds."""
    with engine.connect() as connection:
        return {
            table: [
                {k: v for k, v in row.items() if k not in NEW_COLUMNS | UNREAD}
                for row in connection.execute(
                    text(f"SELECT * FROM {table} ORDER BY {order}")
                ).mappings()
            ]
            for table, order in TABLES_0005.items()
        }


def test_0006_adds_the_approval_time_to_a_0005_database_and_loses_nothing(
    engine: Engine,
) -> None:
    migrate_to(engine, "0004")
    fill_0004(engine)
    migrate_to(engine, "0005")
    SqlAuditLog(engine).record(
        AuditEntry(
            T0, Actor("op", ActorKind.OS, Via.CLI), "allow-deletes", "a-to-b", AuditResult.SUCCESS
        )
    )
    before = snapshot(engine)
    assert all(before.values()), {t: len(rows) for t, rows in before.items()}

    migrate_to(engine, "0006")

    assert snapshot(engine) == before
    upgrade_database(engine)  # and on to today's schema (0007, 0008 have their own tests)
    ledger = SqlLedger(engine)
    assert [r["sourceId"] for r in ledger.logs("c-to-d")] == ["u1", "u2"]
    # no approval on record: the window is just the last 24 h of the log
    assert ledger.job_state("a-to-b") == JobState("a-to-b", paused=True, allow_deletes=True)
    approved = T0 + timedelta(hours=3)
    ledger.save_job_state(JobState("a-to-b", deletions_approved_at=approved))
    assert ledger.job_state("a-to-b").deletions_approved_at == approved
    # what was staged or deleted before 0006 was not approved: it all counts
    assert ledger.staged("a-to-b") == [StagedDeletion("u3", "out of scope", False, False)]
    with engine.connect() as connection:
        flags = connection.execute(text("SELECT DISTINCT approved FROM provisioning_log"))
        assert [bool(f) for (f,) in flags] == [False]

    # And back: the downgrade drops the column alone.
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0005")
        connection.commit()
    for table in ("job_state", "staged_deletes", "provisioning_log"):
        assert not NEW_COLUMNS & {c["name"] for c in inspect(engine).get_columns(table)}
    after = snapshot(engine)
    # everything as it was but the one job state saved since (its approval time dropped)
    assert {t: rows for t, rows in after.items() if t != "job_state"} == {
        t: rows for t, rows in before.items() if t != "job_state"
    }
    assert [r["job"] for r in after["job_state"]] == [r["job"] for r in before["job_state"]]
    assert after["job_state"][1] == before["job_state"][1]


def outcome(
    source_id: str, action: Action, status: Status = Status.SUCCESS, *, approved: bool = False
) -> ObjectOutcome:
    return ObjectOutcome(
        source_id=source_id, action=action, status=status, target_id="t", approved=approved
    )


def test_the_window_counts_the_jobs_own_deletions_and_disables_from_its_log(
    engine: Engine,
) -> None:
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    before = datetime.now(UTC)
    ledger.commit_page(
        "a-to-b",
        "run-1",
        PageWrite(
            outcomes=[
                outcome("u1", Action.DELETE),
                outcome("u2", Action.DELETE, Status.WARNING),  # already gone: still made
                outcome("u3", Action.DISABLE),
                outcome("u4", Action.DELETE, Status.FAILURE),  # not made
                outcome("u5", Action.STAGED_DELETE, Status.WARNING),  # held, not made
                outcome("u6", Action.UPDATE),
                outcome("u8", Action.DELETE, approved=True),  # allowed by an operator
            ]
        ),
    )
    ledger.commit_page("c-to-d", "run-2", PageWrite(outcomes=[outcome("u7", Action.DELETE)]))

    assert ledger.deletions_since("a-to-b", before - timedelta(seconds=1)) == WindowDeletions(
        deleted=2, disabled=1
    )
    assert ledger.deletions_since("c-to-d", before - timedelta(seconds=1)).total == 1
    assert ledger.deletions_since("a-to-b", datetime.now(UTC) + timedelta(seconds=1)).total == 0
    assert ledger.deletions_since("nobody", before).total == 0
    # The throwaway PostgreSQL server runs in Asia/Kathmandu (+05:45): times compare as instants.
    nepal = timezone(timedelta(hours=5, minutes=45))
    assert (
        ledger.deletions_since("a-to-b", (before - timedelta(seconds=1)).astimezone(nepal)).total
        == 3
    )


def test_an_approved_staged_deletion_stays_approved_when_staged_again(engine: Engine) -> None:
    upgrade_database(engine)
    ledger = SqlLedger(engine)
    ledger.commit_page(
        "a-to-b",
        "run-1",
        PageWrite(
            staged=[
                StagedDeletion("u1", "deleted", True, approved=True),
                StagedDeletion("u2", "out of scope", False),
            ]
        ),
    )
    # a later page stages both again, as its own decision (not approved)
    ledger.commit_page(
        "a-to-b",
        "run-2",
        PageWrite(
            staged=[
                StagedDeletion("u1", "source user deleted permanently", True),
                StagedDeletion("u2", "out of scope", False),
            ]
        ),
    )
    assert ledger.staged("a-to-b") == [
        StagedDeletion("u1", "source user deleted permanently", True, approved=True),
        StagedDeletion("u2", "out of scope", False, approved=False),
    ]
    ledger.commit_page("a-to-b", "run-3", PageWrite(unstaged=["u1"]))  # the user came back
    ledger.commit_page("a-to-b", "run-4", PageWrite(staged=[StagedDeletion("u1", "gone", True)]))
    assert ledger.staged("a-to-b")[0] == StagedDeletion("u1", "gone", True, approved=False)
