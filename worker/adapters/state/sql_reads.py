"""The SQL state's reads that `tenant-sync status` makes, on the database driver alone.

`SqlLedger` (sql.py and its parts) is the Ledger on SQLAlchemy's ORM, whose import alone costs
more than the whole of `validate` (docs/performance.md, "CLI start-up"). `status` reads a few rows
per job, so it asks the driver directly, the standard library's sqlite3 or psycopg, with plain SQL
over the same tables, and decodes the columns as the ledger's column types (sql_types.py) do:
datetimes UTC, SQLite's booleans and JSON text, packed ids (compact.py). Only for the URLs
`PLAIN_DATABASE_URL_RE` accepts (their meaning is the same to the driver as to SQLAlchemy); any
other URL is read through SQLAlchemy. tests/integration/test_sql_reads.py holds every read equal
to SqlLedger's; the constants both ask with are defined once (sql_shared.py). The SQL itself is
not shared: the ledger's are SQLAlchemy expressions decoded by its column types, these are plain
text decoded here (either one sharing the other's would bring SQLAlchemy into `status`, or take
the column types out of the ledger's reads).

Driver errors are not translated: the CLI names the database and the driver's first line
(`worker.state_errors.describe`), as it does for SQLAlchemy's, whose `orig` is the same error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from worker.adapters.state.compact import unpack_id
from worker.adapters.state.sql_shared import GROUP_ROWS_READ, LIVE_STATES
from worker.config import PLAIN_DATABASE_URL_RE
from worker.domain.groups import GROUP_OBJECT_TYPE, GroupLink, GroupSkip, group_skips
from worker.domain.health import JobState, StagedDeletion, WindowDeletions
from worker.domain.model import Action, Status
from worker.state_records import RunRecord

SQLITE_PREFIX = "sqlite:///"
SQLITE_TIMEOUT_S = 30.0  # make_engine's default wait for another process's write
# SQLAlchemy's text form of a datetime in SQLite (always six digits of microseconds).
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def plain_sqlite_path(database_url: str) -> str | None:
    """The file of a plain `sqlite:///PATH` URL, as SQLAlchemy reads it; None for any other
    URL (one with a query or a %-escape: SQLAlchemy parses those)."""
    if (
        database_url.startswith(SQLITE_PREFIX)
        and "%" not in database_url
        and PLAIN_DATABASE_URL_RE.fullmatch(database_url)
    ):
        return database_url[len(SQLITE_PREFIX) :]
    return None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: the UTC wall time as text, without an offset
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(value: Any) -> Any:
    """A JSON column: text in SQLite, already decoded by psycopg."""
    return json.loads(value) if isinstance(value, str | bytes) else value


class SqlReads:
    """The Ledger's reads behind a job's status, on one driver connection (close it)."""

    def __init__(self, connection: Any, *, sqlite: bool) -> None:
        self.connection = connection
        self.sqlite = sqlite
        self._mark = "?" if sqlite else "%s"

    @classmethod
    def open(cls, database_url: str) -> SqlReads | None:
        """A connection for a plain URL, or None when SQLAlchemy must read this one."""
        path = plain_sqlite_path(database_url)
        if path is not None:
            import sqlite3

            connection = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
            return cls(connection, sqlite=True)
        if not database_url.startswith("postgresql") or not PLAIN_DATABASE_URL_RE.fullmatch(
            database_url
        ):
            return None
        import psycopg  # the driver SQLAlchemy uses for these URLs (make_engine)

        conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        return cls(psycopg.connect(conninfo, autocommit=True), sqlite=False)

    def close(self) -> None:
        self.connection.close()

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql.replace("?", self._mark), params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _count(self, sql: str, *params: Any) -> int:
        return int(self._rows(sql, *params)[0][0] or 0)

    def revision(self) -> str | None:
        """The database's migration revision; None without one (a new database, several)."""
        try:
            rows = self._rows("SELECT version_num FROM alembic_version")
        except Exception:  # no such table yet (autocommit: nothing to roll back)
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    # The Ledger's reads (their docstrings are on the Ledger port) --------------------------
    def recent_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        rows = self._rows(
            "SELECT run_id, job, mode, dry_run, trigger, status, started_at, finished_at,"
            " counts, error FROM runs WHERE job = ? ORDER BY started_at DESC LIMIT ?",
            job,
            limit,
        )
        return [
            RunRecord(
                run_id=r[0],
                job=r[1],
                mode=r[2],
                dry_run=bool(r[3]),
                trigger=r[4],
                status=r[5],
                started_at=_utc(r[6]),  # type: ignore[arg-type]  # never NULL
                finished_at=_utc(r[7]),
                counts=dict(_json(r[8]) or {}),
                error=r[9],
            )
            for r in rows
        ]

    def job_state(self, job: str) -> JobState:
        rows = self._rows(
            "SELECT paused, quarantine_reason, quarantine_since, quarantine_error,"
            " next_attempt_at, failures, allow_deletes, deletions_approved_at"
            " FROM job_state WHERE job = ?",
            job,
        )
        if not rows:
            return JobState(job=job)
        r = rows[0]
        return JobState(
            job=job,
            paused=bool(r[0]),
            quarantine_reason=r[1],
            quarantine_since=_utc(r[2]),
            quarantine_error=r[3],
            next_attempt_at=_utc(r[4]),
            failures=r[5],
            allow_deletes=bool(r[6]),
            deletions_approved_at=_utc(r[7]),
        )

    def link_count(self, job: str) -> int:
        return self._count(
            "SELECT count(*) FROM links WHERE job = ? AND state IN (?, ?)", job, *LIVE_STATES
        )

    def group_links(self, job: str) -> list[GroupLink]:
        rows = self._rows(
            "SELECT source_id, target_id, display_name, attributes FROM group_links"
            " WHERE job = ? ORDER BY source_id",
            job,
        )
        return [
            GroupLink(
                job=job,
                source_id=r[0],
                target_id=r[1],
                display_name=r[2],
                attributes=dict(_json(r[3]) or {}),
            )
            for r in rows
        ]

    def group_skips(self, job: str) -> list[GroupSkip]:
        rows = self._rows(
            "SELECT source_id, source_label, action, status, reason FROM provisioning_log"
            " WHERE job = ? AND object_type = ? ORDER BY id DESC LIMIT ?",
            job,
            GROUP_OBJECT_TYPE,
            GROUP_ROWS_READ,
        )
        return group_skips((unpack_id(bytes(s)), lbl, a, st, rs) for s, lbl, a, st, rs in rows)

    def escrow_count(self, job: str) -> int:
        return self._count("SELECT count(*) FROM escrows WHERE job = ?", job)

    def staged(self, job: str) -> list[StagedDeletion]:
        rows = self._rows(
            "SELECT source_id, reason, deleted, approved FROM staged_deletes"
            " WHERE job = ? ORDER BY source_id",
            job,
        )
        return [StagedDeletion(r[0], r[1], bool(r[2]), bool(r[3])) for r in rows]

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        # As SqlLedger.deletions_since: what was made (anything but a failure), not approved.
        bound: Any = since.astimezone(UTC)
        if self.sqlite:
            bound = bound.strftime(SQLITE_DATETIME)
        rows = self._rows(
            "SELECT action, count(*) FROM provisioning_log WHERE job = ? AND action IN (?, ?)"
            " AND status != ? AND approved = ? AND created_at > ? GROUP BY action",
            job,
            Action.DELETE.value,
            Action.DISABLE.value,
            Status.FAILURE.value,
            False,
            bound,
        )
        found = {action: int(n) for action, n in rows}
        return WindowDeletions(
            deleted=found.get(Action.DELETE.value, 0), disabled=found.get(Action.DISABLE.value, 0)
        )
