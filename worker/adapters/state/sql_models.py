"""The SQL state's tables as SQLAlchemy 2 typed models.

The schema itself is created by the Alembic migrations in `worker/migrations` (whose env reads
`Base`); the audit trail's model (audit.py) shares `Base`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, LargeBinary, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from worker.adapters.state.sql_types import FreeString, FreeText, PackedId, PackedJson, UTCDateTime


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job: Mapped[str] = mapped_column(String(200), index=True)
    mode: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(FreeText, default="")


class LinkRow(Base):
    __tablename__ = "links"

    # Compact (docs/performance.md, migration 0008): ids packed, the last written values
    # deflated, no stored hash (the values are compared, the hash was never read).
    # One source user per target user and job (migration 0010): two workers exporting pages
    # at the same time cannot both link one guest; the second commit is a Conflict.
    __table_args__ = (Index("uq_links_job_target_id", "job", "target_id", unique=True),)

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_id: Mapped[str] = mapped_column(PackedId, primary_key=True)
    target_id: Mapped[str] = mapped_column(PackedId)
    state: Mapped[str] = mapped_column(String(20))
    attributes: Mapped[dict[str, Any]] = mapped_column(PackedJson, default=dict)
    last_seen_run: Mapped[str | None] = mapped_column(PackedId, nullable=True)
    source_label: Mapped[str] = mapped_column(FreeString(320), default="")
    source_mail: Mapped[str] = mapped_column(FreeString(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SeenRow(Base):
    """The ids one page of a full cycle read (docs/performance.md, migration 0009): the sweep
    finds the unseen links against them, so marking a user seen never rewrites its link (on
    PostgreSQL a rewrite is a new row version and new index entries for every link). Written
    in the page's transaction, so a cycle resumed after a kill keeps them; a cycle's
    successful end forgets the job's rows."""

    __tablename__ = "seen_ids"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    job: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(PackedId)
    ids: Mapped[bytes] = mapped_column(LargeBinary)  # compact.pack_ids


class AssignmentRow(Base):
    __tablename__ = "assignments"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class PendingUserRow(Base):
    __tablename__ = "pending_users"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class LogRow(Base):
    __tablename__ = "provisioning_log"

    # 64-bit on both: SQLite's INTEGER PRIMARY KEY already is (and must stay INTEGER to be the
    # autoincrementing rowid); PostgreSQL's INTEGER would run out after 2**31 log rows.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # Ids packed and steps and modified properties deflated (migration 0008), and no index on
    # the job, action or status: each has a handful of values, so an index on one of them costs
    # a row's worth of bytes per row and finds no row faster than the id order does.
    change_id: Mapped[str] = mapped_column(PackedId, unique=True)
    run_id: Mapped[str] = mapped_column(PackedId, index=True)
    job: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(PackedId, index=True)
    source_label: Mapped[str] = mapped_column(FreeString(320), default="")
    source_mail: Mapped[str] = mapped_column(FreeString(320), default="")
    target_id: Mapped[str | None] = mapped_column(PackedId, nullable=True)
    action: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(FreeText, default="")
    error_code: Mapped[str] = mapped_column(FreeString(100), default="")
    error_message: Mapped[str] = mapped_column(FreeText, default="")
    steps: Mapped[list[dict[str, str]]] = mapped_column(PackedJson, default=list)
    modified: Mapped[dict[str, dict[str, Any]]] = mapped_column(PackedJson, default=dict)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # A deprovisioning an operator allowed over the threshold: not counted in the window.
    approved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # `User` or `Group` (docs/groups.md); rows from before group provisioning are users'.
    object_type: Mapped[str] = mapped_column(String(20), default="User", server_default="User")


class GroupLinkRow(Base):
    """A target group tenant-sync created (docs/groups.md): only these are ever changed."""

    __tablename__ = "group_links"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    display_name: Mapped[str] = mapped_column(FreeString(256), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobStateRow(Base):
    __tablename__ = "job_state"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    quarantine_reason: Mapped[str | None] = mapped_column(String(60), nullable=True)
    quarantine_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    quarantine_error: Mapped[str] = mapped_column(FreeText, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    allow_deletes: Mapped[bool] = mapped_column(Boolean, default=False)
    deletions_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EscrowRow(Base):
    __tablename__ = "escrows"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_error: Mapped[str] = mapped_column(FreeText, default="")


class StagedDeleteRow(Base):
    __tablename__ = "staged_deletes"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(FreeText, default="")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)  # gone from the source
    staged_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Released by an operator: made without being counted again (and kept if it fails).
    approved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
