"""A page's claims read (`links_by_target`) looks its target ids up in the target index on SQLite,
whatever the number of links stored: asked with `ORDER BY source_id` and a page of ids, SQLite
walked every link of the job in primary-key order instead, so a creating cycle's CPU per user
grew with the links already stored (docs/performance.md, "Growth with the table size")."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.migrated import MigratedSqlite
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.domain.model import Link, LinkState
from worker.ports import PageWrite

pytestmark = pytest.mark.integration


def guid(n: int) -> str:
    return str(uuid.UUID(int=n))


def test_links_by_target_uses_the_target_index_and_keeps_source_order(
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
        statements: list[tuple[str, Any]] = []

        def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", keep)
        # A page's worth of target ids, most of them not linked (the users a page created).
        wanted = [guid(0x10000 + n) for n in (30, 7, 19)] + [guid(0x20000 + n) for n in range(497)]
        found = ledger.links_by_target("job", wanted)
        event.remove(engine, "before_cursor_execute", keep)

        assert {t: [x.source_id for x in links] for t, links in found.items()} == {
            guid(0x10000 + n): [guid(n)] for n in (7, 19, 30)
        }
        assert statements
        with engine.connect() as connection:
            for statement, parameters in statements:
                plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                details = " ".join(str(row[-1]) for row in plan)
                assert "uq_links_job_target_id" in details, details
                assert "sqlite_autoindex_links_1" not in details, details
    finally:
        engine.dispose()
