"""A page's reads by id look their ids up in the matching index on SQLite, whatever the number of
rows stored: asked for a page of ids, SQLite walked every link of the job in primary-key order
for the claims (`links_by_target`, `ORDER BY source_id`) and every log row of the run for the
managers phase (`run_rows`, by the run id's index), so a creating cycle's CPU per user grew with
the rows already stored (docs/performance.md, "Growth with the table size")."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.support.migrated import MigratedSqlite
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.model import Action, Link, LinkState, ObjectOutcome, Status
from worker.ports import PageWrite

pytestmark = pytest.mark.integration


def guid(n: int) -> str:
    return str(uuid.UUID(int=n))


def plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    with engine.connect() as connection:
        return [
            " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            )
            for statement, params in statements
        ]


@contextmanager
def selects(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements run on `engine` meanwhile, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def test_run_rows_looks_up_the_source_ids_and_keeps_the_newest_row_of_the_run(
    migrated_sqlite: MigratedSqlite, tmp_path: Path
) -> None:
    engine = make_engine(migrated_sqlite.url(tmp_path / "state.db"))
    try:
        ledger = SqlLedger(engine)
        run, other = guid(999), guid(998)
        # Two rows of this run for user 1 (each page its own), one for user 2, one for user 3
        # in another run.
        for n, run_id, reason in (
            (1, run, "old"),
            (2, run, "two"),
            (1, run, "new"),
            (3, other, "x"),
        ):
            outcome = ObjectOutcome(guid(n), Action.UPDATE, Status.SUCCESS, reason=reason)
            ledger.commit_page("job", run_id, PageWrite(outcomes=[outcome]))
        with selects(engine) as statements:
            found = ledger.run_rows("job", run, [guid(n) for n in range(1, 501)])

        assert {s: o.reason for s, o in found.items()} == {guid(1): "new", guid(2): "two"}
        assert statements
        for details in plans(engine, statements):
            assert "ix_provisioning_log_source_id" in details, details
            assert "ix_provisioning_log_run_id" not in details, details
    finally:
        engine.dispose()


def test_links_by_target_uses_the_target_index_and_finds_every_link(
    migrated_sqlite: MigratedSqlite, tmp_path: Path
) -> None:
    engine = make_engine(migrated_sqlite.url(tmp_path / "state.db"))
    try:
        ledger = SqlLedger(engine)
        stored = [
            Link("job", guid(n), guid(0x10000 + n), LinkState.ACTIVE, {}, "r0")
            for n in range(1, 41)
        ]
        ledger.commit_page("job", guid(999), PageWrite(links=stored))
        # A page's worth of target ids, most of them not linked (the users a page created).
        wanted = [guid(0x10000 + n) for n in (30, 7, 19)] + [guid(0x20000 + n) for n in range(497)]
        with selects(engine) as statements:
            found = ledger.links_by_target("job", wanted)

        assert {t: [x.source_id for x in links] for t, links in found.items()} == {
            guid(0x10000 + n): [guid(n)] for n in (7, 19, 30)
        }
        assert statements
        for details in plans(engine, statements):
            assert "uq_links_job_target_id" in details, details
            assert "sqlite_autoindex_links_1" not in details, details
    finally:
        engine.dispose()


def test_assigned_and_memberships_look_the_users_up_by_user_id(
    migrated_sqlite: MigratedSqlite, tmp_path: Path
) -> None:
    engine = make_engine(migrated_sqlite.url(tmp_path / "state.db"))
    try:
        ledger = SqlLedger(engine)
        ledger.replace_assignments("job", {"g1": {"u1", "u2"}, "g2": {"u2", "u3"}})
        ledger.replace_assignments("other", {"g1": {"u4"}})
        wanted = ["u2", "u4", "u3"] + [f"x{n}" for n in range(497)]
        with selects(engine) as statements:
            assigned = ledger.assigned("job", wanted)
            memberships = ledger.memberships("job", wanted)

        assert assigned == {"u2", "u3"}
        assert memberships == {("g1", "u2"), ("g2", "u2"), ("g2", "u3")}
        assert len(statements) == 2
        for details in plans(engine, statements):
            assert "ix_assignments_user_id" in details, details
    finally:
        engine.dispose()
