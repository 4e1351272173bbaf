"""The SQL ledger's provisioning log: rows by job and filters, keyset pages of any job's rows
(the operator API's), a run's counts, the deletion window's, and the purge of old rows.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import delete, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_models import LogRow
from worker.adapters.state.sql_rows import _log_dict
from worker.adapters.state.sql_session import LedgerPart
from worker.domain.health import WindowDeletions
from worker.domain.model import Action, Status, add_counts

PURGE_BATCH = 5000  # provisioning-log rows forgotten per transaction


LogField = Literal[
    "job", "run_id", "change_id", "action", "status", "source_id", "target_id", "created_at"
]
LogOp = Literal["eq", "in", "ge", "gt", "le", "lt"]


@dataclass(frozen=True)
class LogCondition:
    """One condition on provisioning-log rows: `field op value` (`in` takes a sequence)."""

    field: LogField
    op: LogOp
    value: Any


def _log_condition(condition: LogCondition) -> ColumnElement[bool]:
    column: Any = getattr(LogRow, condition.field)
    value = condition.value
    if condition.op == "in":
        return cast(ColumnElement[bool], column.in_(list(value)))
    operations: dict[str, Callable[[Any, Any], Any]] = {
        "eq": operator.eq,
        "ge": operator.ge,
        "gt": operator.gt,
        "le": operator.le,
        "lt": operator.lt,
    }
    return cast(ColumnElement[bool], operations[condition.op](column, value))


@speaks_domain_errors
class LogReads(LedgerPart):
    """The Ledger's provisioning-log reads and purge."""

    def logs(
        self,
        job: str,
        *,
        run_id: str | None = None,
        user: str | None = None,
        action: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        change_id: str | None = None,
        newest_first: bool = False,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Provisioning-log rows, oldest first (or newest first, for pages of the most recent);
        `user` is a source or target id, a UPN or a mail."""
        query = select(LogRow).where(LogRow.job == job)
        if change_id:
            query = query.where(LogRow.change_id == change_id)
        if run_id:
            query = query.where(LogRow.run_id == run_id)
        if user:
            query = query.where(
                or_(
                    LogRow.source_id == user,
                    LogRow.target_id == user,
                    func.lower(LogRow.source_label) == user.lower(),
                    func.lower(LogRow.source_mail) == user.lower(),
                )
            )
        if since:
            query = query.where(LogRow.created_at >= since)
        if until:
            query = query.where(LogRow.created_at < until)
        if action:
            query = query.where(LogRow.action == action)
        if status:
            query = query.where(LogRow.status == status)
        query = query.order_by(LogRow.id.desc() if newest_first else LogRow.id)
        if offset:
            query = query.offset(offset)
        if limit:
            query = query.limit(limit)
        with self._session() as session:
            return [_log_dict(row) for row in session.scalars(query)]

    def log_page(
        self, conditions: Sequence[LogCondition], *, before: int | None, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """One page of provisioning-log rows of any job, newest first: (row id, row) pairs.

        Keyset paging on the row id: the next page is `before=` the last id of this one, so
        rows recorded meanwhile (higher ids) never shift a page or repeat a row. Every
        condition must hold (`and`)."""
        query = select(LogRow)
        for condition in conditions:
            query = query.where(_log_condition(condition))
        if before is not None:
            query = query.where(LogRow.id < before)
        query = query.order_by(LogRow.id.desc()).limit(limit)
        with self._session() as session:
            return [(row.id, _log_dict(row)) for row in session.scalars(query)]

    def run_counts(self, job: str, run_id: str) -> dict[str, int]:
        query = (
            select(LogRow.action, LogRow.status, func.count())
            .where(LogRow.job == job, LogRow.run_id == run_id)
            .group_by(LogRow.action, LogRow.status)
        )
        counts: dict[str, int] = {}
        with self._session() as session:
            for action, status, n in session.execute(query):
                add_counts(counts, Action(action), Status(status), n)
        return counts

    def purge_logs(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        """Forget provisioning-log rows older than `before` (runs, small, are kept for status);
        returns how many rows went. Oldest first, `batch` rows a transaction: a cycle writing
        its pages meanwhile never waits long for the lock (SQLite) or the rows (PostgreSQL)."""
        removed = 0
        while True:
            oldest = (
                select(LogRow.id).where(LogRow.created_at < before).order_by(LogRow.id).limit(batch)
            )
            with self._write() as session:
                deleted = session.execute(delete(LogRow).where(LogRow.id.in_(oldest)))
                count = int(getattr(deleted, "rowcount", 0) or 0)
            removed += count
            if count < batch:
                return removed

    def deletions_since(self, job: str, since: datetime) -> WindowDeletions:
        # Anything but a failure made the deprovisioning (a target user already gone is a
        # success with a note); staged deletions are another action and are not counted.
        query = (
            select(LogRow.action, func.count())
            .where(
                LogRow.job == job,
                LogRow.action.in_((Action.DELETE.value, Action.DISABLE.value)),
                LogRow.status != Status.FAILURE.value,
                LogRow.approved.is_(False),
                LogRow.created_at > since,
            )
            .group_by(LogRow.action)
        )
        with self._session() as session:
            found = {action: int(n) for action, n in session.execute(query)}
        return WindowDeletions(
            deleted=found.get(Action.DELETE.value, 0), disabled=found.get(Action.DISABLE.value, 0)
        )
