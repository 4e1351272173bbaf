"""SQL state: links, group assignments, pending users, runs and the provisioning log.

`SqlLedger` implements the service's Ledger port on SQLAlchemy 2, from parts that each own one
idea (docs/architecture.md, "The SQL ledger's modules"): the page commit (sql_commit.py), the
reads of links (sql_links.py), the provisioning log (sql_log.py), job health (sql_health.py),
assignments (sql_assignments.py); the runs are here. They stand on sql_session.py (sessions,
transactions, upserts), sql_models.py (the tables; the schema itself is created by the Alembic
migrations in `worker/migrations`), sql_types.py (column types) and sql_rows.py (rows to and
from the domain's records). Every page of a cycle is written in one transaction. SQLite and
PostgreSQL behave alike here: datetimes are UTC whatever the server's zone, free text from the
tenants is made storable on both, and rows that another process may create at the same time are
upserted. This module's names are the ones the rest of the code imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, select, text, update
from sqlalchemy.engine import Engine, make_url

from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_assignments import Assignments
from worker.adapters.state.sql_commit import PageCommit
from worker.adapters.state.sql_health import JobHealth
from worker.adapters.state.sql_links import LinkReads
from worker.adapters.state.sql_log import LogCondition, LogField, LogOp, LogReads
from worker.adapters.state.sql_models import Base, RunRow, SeenRow
from worker.adapters.state.sql_rows import _run_from_row
from worker.adapters.state.sql_session import _WriteSession
from worker.adapters.state.sql_types import FreeString, FreeText, UTCDateTime
from worker.domain.model import Mode
from worker.ports import RunRecord

__all__ = [
    "Base",
    "FreeString",
    "FreeText",
    "LogCondition",
    "LogField",
    "LogOp",
    "RunRow",
    "SqlLedger",
    "UTCDateTime",
    "_WriteSession",
    "make_engine",
]

CYCLE_MODES = (Mode.FULL.value, Mode.INCREMENTAL.value)  # not `on_demand`: no cycle


def make_engine(database_url: str) -> Engine:
    """An engine for the configured database; SQLite gets WAL and a busy timeout for sharing,
    PostgreSQL the psycopg 3 driver."""
    if database_url.startswith("sqlite"):
        url = make_url(database_url)
        # How long a write waits for another process's (`?timeout=30`, seconds).
        timeout = float(url.query.get("timeout", 30))  # type: ignore[arg-type]
        url = url.difference_update_query(["timeout"])
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            cursor.close()

        return engine
    url = make_url(database_url)
    if url.drivername == "postgresql":
        # SQLAlchemy's default PostgreSQL driver is psycopg2; the one installed is psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True)


@speaks_domain_errors
class SqlLedger(PageCommit, LinkReads, LogReads, JobHealth, Assignments):
    """The Ledger port on SQLAlchemy; database errors surface in the domain's vocabulary
    (`worker.adapters.state.errors.sql_error`: an unreachable or busy database is Transient).
    Its parts' methods are the port's; the runs' are its own."""

    def start_run(self, run: RunRecord) -> None:
        with self._write() as session:
            self._upsert(
                session,
                RunRow,
                [
                    {
                        "run_id": run.run_id,
                        "job": run.job,
                        "mode": run.mode,
                        "dry_run": run.dry_run,
                        "trigger": run.trigger,
                        "status": run.status,
                        "started_at": run.started_at,
                        "counts": run.counts,
                        "error": "",
                    }
                ],
            )

    def finish_run(self, run: RunRecord) -> None:
        forgotten = 0
        with self._write() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.run_id == run.run_id)
                .values(
                    status=run.status,
                    finished_at=run.finished_at,
                    counts=run.counts,
                    error=run.error,
                    mode=run.mode,
                )
            )
            if run.status == "success" and run.mode in CYCLE_MODES:
                # A cycle of the job ended: no full cycle of it is left to resume (one at a
                # time, under the job's lock), so every seen mark of the job can go, a killed
                # and never resumed one's too. A failed cycle keeps them for its resumption.
                deleted = session.execute(delete(SeenRow).where(SeenRow.job == run.job))
                forgotten = int(getattr(deleted, "rowcount", 0) or 0)
        if forgotten and self.engine.dialect.name == "postgresql":
            # PostgreSQL keeps a deleted row's space until a vacuum, and only a vacuum gives
            # the table's emptied end back: without it the seen ids of the last full cycle
            # (16 bytes a user) would stay on disk until the next one. It takes a moment and
            # waits for nobody (its truncation is skipped if another job holds the table).
            with self.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM seen_ids")
                )

    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        with self._session() as session:
            rows = session.scalars(
                select(RunRow)
                .where(RunRow.job == job)
                .order_by(RunRow.started_at.desc())
                .limit(limit)
            )
            return [_run_from_row(r) for r in rows]
