"""The audit trail in SQL: one row per operator action, never purged (the provisioning log's
retention does not apply to it).

The model shares `Base` with the ledger's, so one Alembic history (revision 0005) and one
schema check cover both. `SqlAuditLog` implements the AuditLog port; database failures surface
in the domain's vocabulary, as the ledger's do.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from worker.adapters.state.errors import speaks_domain_errors, sql_errors
from worker.adapters.state.sql import Base, FreeString, FreeText, UTCDateTime, _WriteSession
from worker.domain.audit import Actor, ActorKind, AuditEntry, AuditResult, Via
from worker.domain.errors import BadRequest


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        # A job's trail newest first, paged by id: one index walk whatever the trail's size.
        Index("ix_audit_log_job_id", "job", "id"),
    )

    # 64-bit on PostgreSQL, SQLite's rowid on SQLite (as the provisioning log's ids).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(FreeString(320))  # a UPN, a token's name, an OS user
    actor_kind: Mapped[str] = mapped_column(String(10))
    via: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(40))
    job: Mapped[str | None] = mapped_column(String(200), nullable=True)
    result: Mapped[str] = mapped_column(String(10))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str] = mapped_column(FreeText, default="")


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=Actor(name=row.actor, kind=ActorKind(row.actor_kind), via=Via(row.via)),
        action=row.action,
        job=row.job,
        result=AuditResult(row.result),
        detail=dict(row.detail or {}),
        message=row.message,
    )


@speaks_domain_errors
class SqlAuditLog:
    """The AuditLog port on SQLAlchemy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def _errors(self) -> AbstractContextManager[None]:
        return sql_errors(self.engine.url)

    def record(self, entry: AuditEntry) -> AuditEntry:
        row = AuditRow(
            at=entry.at,
            actor=entry.actor.name,
            actor_kind=entry.actor.kind.value,
            via=entry.actor.via.value,
            action=entry.action,
            job=entry.job,
            result=entry.result.value,
            detail=dict(entry.detail),
            message=entry.message,
        )
        with _WriteSession(self.sessions) as session:
            session.add(row)
            session.flush()  # the id, before the commit closes the session
            row_id = row.id
        return AuditEntry(
            id=row_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            job=entry.job,
            result=entry.result,
            detail=dict(entry.detail),
            message=entry.message,
        )

    def entries(
        self, job: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        if limit < 1:
            raise BadRequest(f"limit must be at least 1, not {limit}")
        query = select(AuditRow)
        if job is not None:
            query = query.where(AuditRow.job == job)
        if before_id is not None:
            query = query.where(AuditRow.id < before_id)
        query = query.order_by(AuditRow.id.desc()).limit(limit)
        with self.sessions() as session:
            return [_entry(row) for row in session.scalars(query)]
