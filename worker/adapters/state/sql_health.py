"""The SQL ledger's job health: a job's state (pause, quarantine, backoff, deletion approval),
its escrows and its staged deletions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select

from worker.adapters.state.errors import speaks_domain_errors
from worker.adapters.state.sql_models import EscrowRow, JobStateRow, StagedDeleteRow
from worker.adapters.state.sql_session import LedgerPart, _among, _chunks
from worker.adapters.state.sql_types import utcnow
from worker.domain.health import Escrow, JobState, StagedDeletion


@speaks_domain_errors
class JobHealth(LedgerPart):
    """The Ledger's job state, escrows and staged deletions."""

    def job_state(self, job: str) -> JobState:
        with self._session() as session:
            row = session.get(JobStateRow, job)
        if row is None:
            return JobState(job=job)
        return JobState(
            job=job,
            paused=row.paused,
            quarantine_reason=row.quarantine_reason,
            quarantine_since=row.quarantine_since,
            quarantine_error=row.quarantine_error,
            next_attempt_at=row.next_attempt_at,
            failures=row.failures,
            allow_deletes=row.allow_deletes,
            deletions_approved_at=row.deletions_approved_at,
        )

    def save_job_state(self, state: JobState) -> None:
        with self._write() as session:
            self._upsert(
                session,
                JobStateRow,
                [
                    {
                        "job": state.job,
                        "paused": state.paused,
                        "quarantine_reason": state.quarantine_reason,
                        "quarantine_since": state.quarantine_since,
                        "quarantine_error": state.quarantine_error,
                        "next_attempt_at": state.next_attempt_at,
                        "failures": state.failures,
                        "allow_deletes": state.allow_deletes,
                        "deletions_approved_at": state.deletions_approved_at,
                        "updated_at": utcnow(),
                    }
                ],
            )

    def escrows_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Escrow]:
        found: dict[str, Escrow] = {}
        with self._session() as session:
            for ids in _chunks(list(source_ids)):
                rows = session.scalars(
                    select(EscrowRow).where(
                        EscrowRow.job == job, _among(self._dialect, EscrowRow.source_id, ids)
                    )
                )
                found.update(
                    {
                        row.source_id: Escrow(
                            job=job,
                            source_id=row.source_id,
                            attempts=row.attempts,
                            first_failed_at=row.first_failed_at,
                            next_attempt_at=row.next_attempt_at,
                            last_error=row.last_error,
                        )
                        for row in rows
                    }
                )
        return found

    def due_escrows(self, job: str, now: datetime, limit: int) -> list[str]:
        with self._session() as session:
            return list(
                session.scalars(
                    select(EscrowRow.source_id)
                    .where(EscrowRow.job == job, EscrowRow.next_attempt_at <= now)
                    .order_by(EscrowRow.next_attempt_at, EscrowRow.source_id)
                    .limit(limit)
                )
            )

    def escrow_count(self, job: str) -> int:
        with self._session() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(EscrowRow).where(EscrowRow.job == job)
                )
                or 0
            )

    def staged(self, job: str) -> list[StagedDeletion]:
        with self._session() as session:
            rows = session.scalars(
                select(StagedDeleteRow)
                .where(StagedDeleteRow.job == job)
                .order_by(StagedDeleteRow.source_id)
            )
            return [StagedDeletion(r.source_id, r.reason, r.deleted, r.approved) for r in rows]

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        with self._write() as session:
            if escrows:
                session.execute(delete(EscrowRow).where(EscrowRow.job == job))
            if staged:
                session.execute(delete(StagedDeleteRow).where(StagedDeleteRow.job == job))
