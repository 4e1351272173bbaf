"""The audit trail on real databases, SQLite and PostgreSQL: migration 0005 from a 0004 database
full of state, the trail's queries, and database failures in the domain's words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, insert, inspect, text, update
from sqlalchemy.engine import Engine

from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.db import alembic_config, upgrade_database
from worker.adapters.state.sql import Base, RunRow, SqlLedger, make_engine
from worker.domain.audit import Actor, ActorKind, AuditEntry, AuditResult, Via
from worker.domain.errors import BadRequest, Transient
from worker.ports import MembershipChange, RunRecord

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
CLI = Actor("operator", ActorKind.OS, Via.CLI)
# The tables of revision 0004, each with the columns that order its rows.
TABLES_0004 = {
    "runs": "run_id",
    "links": "job, source_id",
    "assignments": "job, group_id, user_id",
    "pending_users": "job, user_id",
    "provisioning_log": "id",
    "job_state": "job",
    "escrows": "job, source_id",
    "staged_deletes": "job, source_id",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def migrate_to(engine: Engine, revision: str) -> None:
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table: [
                tuple(row)
                for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
            ]
            for table, order in TABLES_0004.items()
        }


def fill_0004(engine: Engine) -> None:
    """Two jobs' worth of everything revision 0004 keeps."""
    ledger = SqlLedger(engine)
    for job in ("a-to-b", "c-to-d"):
        run = RunRecord(f"run-{job}", job, "full", False, "manual", T0)
        run.status, run.counts = "success", {"create": 2}
        ledger.start_run(run)
        # Finished as 0004 records it (today's finish_run also forgets seen ids, a later table).
        with engine.begin() as connection:
            connection.execute(
                update(RunRow)
                .where(RunRow.run_id == run.run_id)
                .values(finished_at=T0 + timedelta(minutes=3))
            )
        ledger.replace_assignments(job, {"g1": {"u1", "u2"}})
        ledger.apply_membership_changes(job, [MembershipChange("g1", "u3", True)])
        # The rest as revision 0004 stores it: today's models have columns 0004 does not.
        stored(
            engine,
            "links",
            [
                link_row(job, "u1", "t1", "active", {"displayName": "Ann"}, "ann@contoso.com"),
                link_row(job, "u2", "t2", "soft_deleted", {}, ""),
            ],
        )
        stored(
            engine,
            "provisioning_log",
            [
                log_row(job, "u1", "create", "success", steps=[["export", "success", "invited"]]),
                log_row(job, "u2", "delete", "failure", error_code="Request_BadRequest"),
            ],
        )
        stored(
            engine,
            "escrows",
            [
                {
                    "job": job,
                    "source_id": "u2",
                    "attempts": 1,
                    "first_failed_at": T0,
                    "next_attempt_at": T0 + timedelta(hours=6),
                    "last_error": "no",
                }
            ],
        )
        stored(
            engine,
            "staged_deletes",
            [
                {
                    "job": job,
                    "source_id": "u3",
                    "reason": "out of scope",
                    "deleted": False,
                    "staged_at": T0,
                }
            ],
        )
        stored(
            engine,
            "job_state",
            [
                {
                    "job": job,
                    "paused": True,
                    "quarantine_error": "",
                    "failures": 0,
                    "allow_deletes": True,
                    "updated_at": T0,
                }
            ],
        )


def stored(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows into a table as the database has it now (reflected, not today's model)."""
    reflected = Table(table, MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(insert(reflected), rows)


def link_row(
    job: str, source_id: str, target_id: str, state: str, attributes: dict[str, Any], mail: str
) -> dict[str, Any]:
    return {
        "job": job,
        "source_id": source_id,
        "target_id": target_id,
        "state": state,
        "attributes": attributes,
        "attributes_hash": f"hash-{source_id}",
        "last_seen_run": f"run-{job}",
        "source_label": mail or f"{source_id}@contoso.com",
        "source_mail": mail,
        "created_at": T0,
        "updated_at": T0,
        "deleted_at": None if state == "active" else T0,
    }


def log_row(
    job: str,
    source_id: str,
    action: str,
    status: str,
    *,
    steps: list[list[str]] = [],  # noqa: B006 (read only)
    error_code: str = "",
) -> dict[str, Any]:
    return {
        "change_id": f"{job}-{source_id}-{action}",
        "run_id": f"run-{job}",
        "job": job,
        "source_id": source_id,
        "source_label": f"{source_id}@contoso.com",
        "source_mail": f"{source_id}@contoso.com",
        "target_id": f"t-{source_id}",
        "action": action,
        "status": status,
        "reason": "",
        "error_code": error_code,
        "error_message": "no" if error_code else "",
        "steps": [{"name": n, "status": st, "detail": d} for n, st, d in steps],
        "modified": {},
        "duration_ms": 0,
        "created_at": T0,
    }


def test_0005_adds_the_audit_trail_to_a_0004_database_and_loses_nothing(engine: Engine) -> None:
    migrate_to(engine, "0004")
    fill_0004(engine)
    before = snapshot(engine)
    assert all(before.values()), {t: len(rows) for t, rows in before.items()}
    # Before the migration the trail has no table: an error in the domain's words, not SQL's.
    with pytest.raises(Transient, match="the state database"):
        SqlAuditLog(engine).record(AuditEntry(T0, CLI, "pause", "a-to-b", AuditResult.SUCCESS))
    with pytest.raises(Transient, match="the state database"):
        SqlAuditLog(engine).entries()

    migrate_to(engine, "0005")  # (0006 and later: tests/integration/test_threshold_sql.py)

    assert snapshot(engine) == before
    # Every table of today's schema but those later revisions add (0007, 0009).
    later = {"group_links", "seen_ids"}
    assert (
        set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"} - later
    )
    trail = SqlAuditLog(engine)
    assert trail.entries() == []
    trail.record(AuditEntry(T0, CLI, "resume", "a-to-b", AuditResult.SUCCESS))
    assert [e.action for e in trail.entries("a-to-b")] == ["resume"]

    # And back: the downgrade drops the trail alone.
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0004")
        connection.commit()
    assert "audit_log" not in inspect(engine).get_table_names()
    assert snapshot(engine) == before


@pytest.fixture
def trail(engine: Engine) -> SqlAuditLog:
    upgrade_database(engine)
    return SqlAuditLog(engine)


def test_entries_are_newest_first_by_job_and_paged_by_id(trail: SqlAuditLog) -> None:
    ann = Actor("ann@contoso.com", ActorKind.USER, Via.CONSOLE)
    recorded = [
        trail.record(
            AuditEntry(
                T0 + timedelta(seconds=i),
                ann if i % 2 else CLI,
                "pause" if i % 3 else "resume",
                "a-to-b" if i < 7 else "c-to-d",
                AuditResult.SUCCESS,
                {"n": i},
            )
        )
        for i in range(10)
    ]
    ids = [e.id for e in recorded]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(ids)

    newest = trail.entries()
    assert [e.detail["n"] for e in newest] == list(range(9, -1, -1))
    assert newest[0] == recorded[9]
    assert [e.detail["n"] for e in trail.entries("c-to-d")] == [9, 8, 7]
    first = trail.entries("a-to-b", limit=4)
    assert [e.detail["n"] for e in first] == [6, 5, 4, 3]
    second = trail.entries("a-to-b", limit=4, before_id=first[-1].id)
    assert [e.detail["n"] for e in second] == [2, 1, 0]
    assert trail.entries("a-to-b", before_id=recorded[0].id) == []
    assert trail.entries("no-such-job") == []
    with pytest.raises(BadRequest):
        trail.entries(limit=0)


def test_an_entry_reads_back_as_it_was_written(trail: SqlAuditLog) -> None:
    # The throwaway PostgreSQL server runs in Asia/Kathmandu (+05:45); SQLite keeps no offset.
    nepal = timezone(timedelta(hours=5, minutes=45))
    at = datetime(2026, 2, 1, 14, 0, tzinfo=nepal)
    name = "x" * 400  # more than the column holds: cut, never refused
    entry = AuditEntry(
        at,
        Actor(name, ActorKind.TOKEN, Via.API),
        "restart",
        None,
        AuditResult.FAILURE,
        {"scope": "full", "done": ["watermark cleared"], "nested": {"ok": False}},
        "a cycle is \x00 running",
    )
    stored = trail.record(entry)

    back = trail.entries()[0]
    assert back.id == stored.id
    assert (back.action, back.result) == ("restart", AuditResult.FAILURE)
    assert back.at == at
    assert back.at.isoformat() == "2026-02-01T08:15:00+00:00"
    assert back.actor == Actor("x" * 320, ActorKind.TOKEN, Via.API)
    assert back.detail == {"scope": "full", "done": ["watermark cleared"], "nested": {"ok": False}}
    assert back.message == "a cycle is \ufffd running"
    assert back.job is None
