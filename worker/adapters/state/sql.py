"""SQL state: links, group assignments, pending users, runs and the provisioning log.

SQLAlchemy 2 typed models; the schema itself is created by the Alembic migrations in
`worker/migrations`. `SqlLedger` implements the service's Ledger port; every page of a cycle is
written in one transaction. SQLite and PostgreSQL behave alike here: datetimes are UTC whatever
the server's zone, free text from the tenants is made storable on both, and rows that another
process may create at the same time are upserted.
"""

from __future__ import annotations

import operator
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.types import TypeDecorator

from worker.adapters.state.compact import (
    pack_id,
    pack_ids,
    pack_json,
    split_ids,
    unpack_id,
    unpack_json,
)
from worker.adapters.state.errors import speaks_domain_errors, sql_errors
from worker.domain.groups import GroupLink, GroupSkip, group_skips
from worker.domain.health import Escrow, JobState, StagedDeletion, WindowDeletions
from worker.domain.idset import IdSet
from worker.domain.model import (
    Action,
    Change,
    Link,
    LinkState,
    Mode,
    ObjectOutcome,
    Status,
    Step,
    add_counts,
)
from worker.domain.records import modified_record, step_records
from worker.ports import MembershipChange, PageWrite, RunRecord

LIVE_STATES = (LinkState.ACTIVE.value, LinkState.DISABLED.value)
GROUP_OBJECT_TYPE = "Group"
GROUP_ROWS_READ = 1000  # the newest group rows `status` reads for skipped groups
CHUNK = 500
PURGE_BATCH = 5000  # provisioning-log rows forgotten per transaction
SCAN = 2000  # links' keys a sweep reads at a time to find the unseen among them
CYCLE_MODES = (Mode.FULL.value, Mode.INCREMENTAL.value)  # not `on_demand`: no cycle


def utcnow() -> datetime:
    return datetime.now(UTC)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """Distinct ids in slices small enough for an IN clause."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _among(dialect: str, column: Any, ids: list[str]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL `column = ANY(:ids)`, one array parameter: a page's IN
    list of 500 placeholders is longer than the statements psycopg keeps parsed, so it was
    parsed anew for every query (docs/performance.md, "Time per created user")."""
    if dialect == "postgresql":
        return cast(
            ColumnElement[bool], column == any_(bindparam(None, ids, type_=ARRAY(column.type)))
        )
    return cast(ColumnElement[bool], column.in_(ids))


def _unindexed(dialect: str, column: Any) -> Any:
    """`column` as SQLite's planner may not search by (`+column`): with no statistics it
    preferred an index on this column's one value, reading every row that has it, to looking a
    page's ids up in their own index (docs/performance.md, "Growth with the table size")."""
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _log_values(job: str, run_id: str, o: ObjectOutcome, now: datetime) -> dict[str, Any]:
    """A provisioning-log row's columns, for a merge in place (the ORM packs them)."""
    return dict(
        change_id=str(uuid.uuid4()),
        run_id=run_id,
        job=job,
        source_id=o.source_id,
        source_label=o.source_label,
        source_mail=o.source_mail,
        target_id=o.target_id,
        action=o.action.value,
        status=o.status.value,
        reason=o.reason,
        error_code=o.error_code,
        error_message=o.error_message,
        steps=step_records(o),
        modified=modified_record(o),
        duration_ms=o.duration_ms,
        created_at=now,
        approved=o.approved,
        object_type=o.object_type,
    )


def _new_change_id() -> bytes:
    """A random (version 4) UUID's 16 bytes, what `pack_id(str(uuid.uuid4()))` gives, without
    its text (docs/performance.md, "Time per created user")."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return bytes(raw)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out, whatever the database keeps: SQLite stores the
    wall time without its offset (so it must be UTC going in), PostgreSQL answers in the
    session's time zone (so it is turned back to UTC coming out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return _as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return _as_utc(value)


def _storable(value: str | None, length: int | None) -> str | None:
    """Text PostgreSQL accepts: no NUL characters, no more than the column's length (SQLite
    would take both; a page must not commit on one database and fail forever on the other)."""
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")
    return value[:length] if length is not None else value


class FreeText(TypeDecorator[str]):
    """Unbounded text from the tenants or from errors (reasons, messages)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return _storable(value, None)


class FreeString(TypeDecorator[str]):
    """Bounded text from the tenants (labels, error codes), cut to fit rather than refused:
    it names things for people, so a shorter name beats a page that never commits."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return _storable(value, self.length)


class PackedId(TypeDecorator[str]):
    """An object or run id: a GUID in 16 bytes, anything else as its text (compact.py)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> bytes | None:
        return None if value is None else pack_id(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else unpack_id(value)


class PackedJson(TypeDecorator[Any]):
    """A JSON document, deflated against a dictionary of the words it repeats (compact.py)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        return None if value is None else pack_json(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> Any:
        return None if value is None else unpack_json(value)


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


class _StoredBytes(LargeBinary):
    """Bytes bound and read as they are: both drivers take `bytes` (and answer with bytes
    or a buffer, which compact.py's unpacking takes); LargeBinary's own bind step wraps each
    value in the driver's Binary first, and its result step copies it (a call per value)."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


def _stored_type(column: Any) -> Any:
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    return _StoredBytes() if isinstance(kind, LargeBinary) else kind


def _raw_table(model: type[Base]) -> Table:
    """The model's table with each column's stored type, for bulk inserts of values packed
    here once (`_log_insert_row`, `_link_insert_row`): a TypeDecorator's bind step runs per
    column and row inside the executemany, the larger part of a created user's commit
    (docs/performance.md, "Time per created user"). Same table name, columns and types as
    stored, so the statement is the one the model's insert compiles to."""
    columns = [
        Column(
            column.name,
            _stored_type(column),
            primary_key=column.primary_key,
            autoincrement=column.autoincrement,
        )
        for column in model.__table__.columns
    ]
    return Table(model.__tablename__, MetaData(), *columns)


_RAW_LOG = _raw_table(LogRow)
_RAW_LINKS = _raw_table(LinkRow)


def _length(column: Any) -> int | None:
    return cast(int | None, column.type.length)


# FreeString columns' lengths, read off the models (what their bind step cuts to).
_LOG_LABEL = _length(LogRow.__table__.c.source_label)
_LOG_MAIL = _length(LogRow.__table__.c.source_mail)
_LOG_ERROR_CODE = _length(LogRow.__table__.c.error_code)
_LINK_LABEL = _length(LinkRow.__table__.c.source_label)
_LINK_MAIL = _length(LinkRow.__table__.c.source_mail)


def _packed_id(value: str | None) -> bytes | None:
    return None if value is None else pack_id(value)


def _log_insert_row(job: str, run_key: bytes, o: ObjectOutcome, created_at: Any) -> dict[str, Any]:
    """A new provisioning-log row as `_RAW_LOG` stores it: what LogRow's column types would
    bind (`run_key`: the run id packed; `created_at`: a UTC time, which the stored type binds)."""
    return {
        "change_id": _new_change_id(),
        "run_id": run_key,
        "job": job,
        "source_id": pack_id(o.source_id),
        "source_label": _storable(o.source_label, _LOG_LABEL),
        "source_mail": _storable(o.source_mail, _LOG_MAIL),
        "target_id": _packed_id(o.target_id),
        "action": o.action.value,
        "status": o.status.value,
        "reason": _storable(o.reason, None),
        "error_code": _storable(o.error_code, _LOG_ERROR_CODE),
        "error_message": _storable(o.error_message, None),
        "steps": pack_json(step_records(o)),
        "modified": pack_json(modified_record(o)),
        "duration_ms": o.duration_ms,
        "created_at": created_at,
        "approved": o.approved,
        "object_type": o.object_type,
    }


def _link_insert_row(job: str, link: Link, now: Any, deleted_at: Any) -> dict[str, Any]:
    """A new link as `_RAW_LINKS` stores it (`now`, `deleted_at`: UTC times or None)."""
    return {
        "job": job,
        "source_id": pack_id(link.source_id),
        "target_id": pack_id(link.target_id),
        "state": link.state.value,
        "attributes": None if link.attributes is None else pack_json(link.attributes),
        "last_seen_run": _packed_id(link.last_seen_run),
        "source_label": _storable(link.source_label, _LINK_LABEL),
        "source_mail": _storable(link.source_mail, _LINK_MAIL),
        "created_at": now,
        "updated_at": now,
        "deleted_at": deleted_at,
    }


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


def _raw(column: Any) -> Any:
    """A packed id column as the bytes it holds (compared and read without unpacking)."""
    return type_coerce(column, LargeBinary)


def _log_dict(row: LogRow) -> dict[str, Any]:
    return {
        "changeId": row.change_id,
        "cycleId": row.run_id,
        "jobId": row.job,
        "sourceId": row.source_id,
        "sourceIdentity": row.source_label,
        "sourceMail": row.source_mail or None,
        "targetId": row.target_id,
        "action": Action(row.action).log_name,
        "status": row.status,
        "reason": row.reason,
        "errorCode": row.error_code,
        "errorMessage": row.error_message,
        "steps": row.steps,
        "modifiedProperties": row.modified,
        "durationMs": row.duration_ms,
        "activityDateTime": row.created_at.isoformat(),
        "objectType": row.object_type,
    }


def _outcome_from_row(row: LogRow) -> ObjectOutcome:
    return ObjectOutcome(
        source_id=row.source_id,
        action=Action(row.action),
        status=Status(row.status),
        source_label=row.source_label,
        source_mail=row.source_mail,
        target_id=row.target_id,
        reason=row.reason,
        error_code=row.error_code,
        error_message=row.error_message,
        steps=[Step(s["name"], Status(s["status"]), s["detail"]) for s in row.steps or []],
        modified={k: Change(v["old"], v["new"]) for k, v in (row.modified or {}).items()},
        duration_ms=row.duration_ms,
        approved=row.approved,
        object_type=row.object_type,
    )


def _stored(column: Any) -> Any:
    """A packed column read as the bytes it holds, unpacked by `_link_from_row`: without the
    column type's result step, a call per value (docs/performance.md, "The no-change cycle")."""
    return type_coerce(column, _StoredBytes()).label(column.key)


# A link's columns, read as plain rows: building an ORM object per link was most of a no-change
# full cycle's CPU (docs/performance.md, "The no-change cycle").
_LINK_COLUMNS = (
    LinkRow.job,
    _stored(LinkRow.source_id),
    _stored(LinkRow.target_id),
    LinkRow.state,
    _stored(LinkRow.attributes),
    _stored(LinkRow.last_seen_run),
    LinkRow.source_label,
    LinkRow.source_mail,
)


_LINK_STATES = {state.value: state for state in LinkState}  # a dict is cheaper than the enum's call


def _link_from_row(row: Any) -> Link:
    """A Link from a `_LINK_COLUMNS` row (ids and attributes as stored, packed)."""
    attributes, last_seen_run = row.attributes, row.last_seen_run
    return Link(
        job=row.job,
        source_id=unpack_id(row.source_id),
        target_id=unpack_id(row.target_id),
        state=_LINK_STATES[row.state],
        attributes={} if attributes is None else unpack_json(attributes) or {},
        last_seen_run=None if last_seen_run is None else unpack_id(last_seen_run),
        source_label=row.source_label,
        source_mail=row.source_mail,
    )


def _run_from_row(row: RunRow) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        job=row.job,
        mode=row.mode,
        dry_run=row.dry_run,
        trigger=row.trigger,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=row.status,
        counts=dict(row.counts or {}),
        error=row.error,
    )


@speaks_domain_errors
class SqlLedger:
    """The Ledger port on SQLAlchemy; database errors surface in the domain's vocabulary
    (`worker.adapters.state.errors.sql_error`: an unreachable or busy database is Transient)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    def _errors(self) -> AbstractContextManager[None]:
        return sql_errors(self.engine.url)

    def _session(self) -> Session:
        return self.sessions()

    # runs -------------------------------------------------------------------------------------
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

    # links ------------------------------------------------------------------------------------
    def links_for(self, job: str, source_ids: Iterable[str]) -> dict[str, Link]:
        ids = list(dict.fromkeys(source_ids))
        found: dict[str, Link] = {}
        with self._session() as session:
            for start in range(0, len(ids), CHUNK):
                rows = session.execute(
                    select(*_LINK_COLUMNS).where(
                        LinkRow.job == job,
                        _among(self._dialect, LinkRow.source_id, ids[start : start + CHUNK]),
                    )
                )
                for row in rows:
                    link = _link_from_row(row)
                    found[link.source_id] = link
        return found

    def links_by_target(self, job: str, target_ids: Iterable[str]) -> dict[str, list[Link]]:
        ids = list(dict.fromkeys(target_ids))
        found: dict[str, list[Link]] = {}
        with self._session() as session:
            for start in range(0, len(ids), CHUNK):
                rows = session.execute(
                    select(*_LINK_COLUMNS).where(
                        LinkRow.job == job,
                        _among(self._dialect, LinkRow.target_id, ids[start : start + CHUNK]),
                    )
                )
                # In source order, sorted here: `ORDER BY source_id` led SQLite to walk the
                # job's every link in primary-key order rather than look up the target ids
                # (docs/performance.md, "Growth with the table size").
                for row in sorted(rows, key=lambda row: bytes(row.source_id)):
                    link = _link_from_row(row)
                    found.setdefault(link.target_id, []).append(link)
        return found

    def link_count(self, job: str) -> int:
        with self._session() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(LinkRow)
                    .where(LinkRow.job == job, LinkRow.state.in_(LIVE_STATES))
                )
                or 0
            )

    def group_links(self, job: str) -> list[GroupLink]:
        with self._session() as session:
            rows = session.scalars(
                select(GroupLinkRow).where(GroupLinkRow.job == job).order_by(GroupLinkRow.source_id)
            )
            return [
                GroupLink(
                    job=r.job,
                    source_id=r.source_id,
                    target_id=r.target_id,
                    display_name=r.display_name,
                    attributes=dict(r.attributes or {}),
                )
                for r in rows
            ]

    def group_skips(self, job: str) -> list[GroupSkip]:
        query = (
            select(
                LogRow.source_id, LogRow.source_label, LogRow.action, LogRow.status, LogRow.reason
            )
            .where(LogRow.job == job, LogRow.object_type == GROUP_OBJECT_TYPE)
            .order_by(LogRow.id.desc())
            .limit(GROUP_ROWS_READ)
        )
        with self._session() as session:
            return group_skips((s, lbl, a, st, r) for s, lbl, a, st, r in session.execute(query))

    def unseen_links(self, job: str, run_id: str, batch: int) -> Iterator[list[Link]]:
        """Live links neither in the run's seen rows nor marked with the run in the link
        (how a page marked them before migration 0009: a cycle under way then still finishes
        right). Keyset paging on the links' keys, and the seen rows committed since the last
        batch are read before the next, so what pages mark while a sweep runs counts."""
        seen = IdSet()
        later: set[bytes] = set()  # marks committed after the first batch (a sweep's pages)
        read_up_to = self._read_seen(job, run_id, None, seen, later)
        after = b""
        while True:
            if after:
                read_up_to = self._read_seen(job, run_id, read_up_to, seen, later)
            found: list[bytes] = []
            exhausted = False
            while len(found) < batch and not exhausted:
                keys = self._unmarked_keys(job, run_id, after, SCAN)
                exhausted = len(keys) < SCAN
                for key in keys:
                    after = key
                    if not self._marked(key, seen, later):
                        found.append(key)
                        if len(found) == batch:
                            break
            if not found:
                return
            with self._session() as session:
                rows = session.execute(
                    select(*_LINK_COLUMNS)
                    .where(LinkRow.job == job, _raw(LinkRow.source_id).in_(found))
                    .order_by(LinkRow.source_id)
                )
                links = [_link_from_row(r) for r in rows]
            yield links

    def _read_seen(
        self, job: str, run_id: str, after: int | None, seen: IdSet, later: set[bytes]
    ) -> int:
        """Add the run's seen rows to `seen` (the first read: `after` None) or, those after row
        `after`, to `later` (`seen` takes no ids once asked about one); returns the last row
        read (0: none yet)."""
        first = after is None
        after = after or 0
        query = (
            select(SeenRow.id, SeenRow.ids)
            .where(SeenRow.job == job, SeenRow.run_id == run_id, SeenRow.id > after)
            .order_by(SeenRow.id)
        )
        with self._session() as session:
            for row_id, packed in session.execute(query):
                guids, others = split_ids(packed)
                if first:
                    seen.update_keys(guids)
                    seen.update(others)
                else:
                    later.update(guids[i : i + 16] for i in range(0, len(guids), 16))
                    later.update(pack_id(other) for other in others)
                after = row_id
        return after

    @staticmethod
    def _marked(key: bytes, seen: IdSet, later: set[bytes]) -> bool:
        if key in later:
            return True
        return seen.has_key(key) if len(key) == 16 else unpack_id(key) in seen

    def _unmarked_keys(self, job: str, run_id: str, after: bytes, limit: int) -> list[bytes]:
        """The packed keys of the job's live links after `after` that do not carry the run's
        mark in the link itself, in key order."""
        key = _raw(LinkRow.source_id)
        query = (
            select(key)
            .where(
                LinkRow.job == job,
                LinkRow.state.in_(LIVE_STATES),
                or_(LinkRow.last_seen_run.is_(None), LinkRow.last_seen_run != run_id),
                key > after,
            )
            .order_by(key)
            .limit(limit)
        )
        with self._session() as session:
            return [bytes(k) for k in session.scalars(query)]

    def commit_page(self, job: str, run_id: str, write: PageWrite) -> None:
        now = utcnow()
        with self._write() as session:
            self._write_links(session, job, write.links, now)
            if write.seen:
                # One narrow row for the page, not a mark in each link (SeenRow).
                seen = pack_ids(dict.fromkeys(write.seen))
                session.add(SeenRow(job=job, run_id=run_id, ids=seen))
            replaced = self._replaced_rows(session, job, run_id, write.replaces)
            added: list[dict[str, Any]] = []
            run_key, created_at = pack_id(run_id), _as_utc(now)
            for o in write.outcomes:
                kept = replaced.get(o.source_id)
                if kept is None:
                    added.append(_log_insert_row(job, run_key, o, created_at))
                else:
                    # In place: the row keeps its id, change id and time (docs/manager.md).
                    values = _log_values(job, run_id, o, now)
                    values.update(id=kept.id, change_id=kept.change_id, created_at=kept.created_at)
                    session.merge(LogRow(**values))
            if added:
                # One executemany, in the outcomes' order (the log's ids are its order), of
                # values packed once (`_raw_table`).
                session.connection().execute(insert(_RAW_LOG), added)
            self._write_group_links(session, job, write, now)
            for ids in _chunks(write.resolved_pending):
                session.execute(
                    delete(PendingUserRow).where(
                        PendingUserRow.job == job,
                        _among(self._dialect, PendingUserRow.user_id, ids),
                    )
                )
            for ids in _chunks(write.released):
                session.execute(
                    delete(EscrowRow).where(
                        EscrowRow.job == job, _among(self._dialect, EscrowRow.source_id, ids)
                    )
                )
            self._upsert(
                session,
                EscrowRow,
                [
                    {
                        "job": job,
                        "source_id": escrow.source_id,
                        "attempts": escrow.attempts,
                        "first_failed_at": escrow.first_failed_at,
                        "next_attempt_at": escrow.next_attempt_at,
                        "last_error": escrow.last_error,
                    }
                    for escrow in write.escrows
                ],
            )
            for ids in _chunks(write.unstaged):
                session.execute(
                    delete(StagedDeleteRow).where(
                        StagedDeleteRow.job == job,
                        _among(self._dialect, StagedDeleteRow.source_id, ids),
                    )
                )
            self._upsert(
                session,
                StagedDeleteRow,
                [
                    {
                        "job": job,
                        "source_id": staged.source_id,
                        "reason": staged.reason,
                        "deleted": staged.deleted,
                        "staged_at": now,
                        "approved": staged.approved,
                    }
                    for staged in write.staged
                ],
                # Staged again by a later page, an approved deletion stays approved.
                keep_true=("approved",),
            )

    def _write_links(
        self, session: Session, job: str, links: Sequence[Link], now: datetime
    ) -> None:
        """A page's changed links: the existing rows read in one query per chunk and updated,
        the new ones inserted in one executemany (docs/performance.md, "Time per created
        user"). Reading them one `session.get` at a time flushed the page's pending rows before
        every read, so each new link was inserted alone."""
        if not links:
            return
        existing: dict[str, LinkRow] = {}
        for ids in _chunks([link.source_id for link in links]):
            query = select(LinkRow).where(
                LinkRow.job == job, _among(self._dialect, LinkRow.source_id, ids)
            )
            existing.update((row.source_id, row) for row in session.scalars(query))
        new: dict[str, Link] = {}
        for link in links:
            row = existing.get(link.source_id)
            pending = new.get(link.source_id)
            if row is None:
                # New, or named twice in one write: the later one is inserted, with the
                # earlier one's label and mail if it has none.
                if pending is not None:
                    link = replace(
                        link,
                        source_label=link.source_label or pending.source_label,
                        source_mail=link.source_mail or pending.source_mail,
                    )
                new[link.source_id] = link
                continue
            # A link already stored: updated.
            values: dict[str, Any] = {
                "target_id": link.target_id,
                "state": link.state.value,
                "attributes": link.attributes,
                "last_seen_run": link.last_seen_run,
                "source_label": link.source_label or row.source_label,
                "source_mail": link.source_mail or row.source_mail,
                "updated_at": now,
            }
            if row.state != link.state.value:
                values["deleted_at"] = now if link.state is LinkState.SOFT_DELETED else None
            for name, value in values.items():
                setattr(row, name, value)
        if new:
            # One executemany of values packed once (`_raw_table`).
            at = _as_utc(now)
            session.connection().execute(
                insert(_RAW_LINKS),
                [
                    _link_insert_row(
                        job, link, at, at if link.state is LinkState.SOFT_DELETED else None
                    )
                    for link in new.values()
                ],
            )

    def _replaced_rows(
        self, session: Session, job: str, run_id: str, source_ids: Sequence[str]
    ) -> dict[str, LogRow]:
        """The newest row of this run for each of these objects, to be rewritten in place."""
        rows: dict[str, LogRow] = {}
        run = _unindexed(self._dialect, LogRow.run_id)  # by source id, not the run's every row
        for ids in _chunks(source_ids):
            query = (
                select(LogRow)
                .where(LogRow.job == job, run == run_id, LogRow.source_id.in_(ids))
                .order_by(LogRow.id)
            )
            rows.update((row.source_id, row) for row in session.scalars(query))
        return rows

    def run_rows(
        self, job: str, run_id: str, source_ids: Iterable[str]
    ) -> dict[str, ObjectOutcome]:
        with self._session() as session:
            rows = self._replaced_rows(session, job, run_id, list(source_ids))
            return {source_id: _outcome_from_row(row) for source_id, row in rows.items()}

    def reports_of(self, job: str, target_ids: Iterable[str]) -> list[Link]:
        wanted = set(target_ids)
        if not wanted:
            return []
        # Link attributes are stored deflated (compact.py), so the database cannot look inside
        # them: the job's live links are read in batches and their managers compared here. Only
        # a cycle whose managers leave scope asks.
        found: list[Link] = []
        query = (
            select(*_LINK_COLUMNS)
            .where(LinkRow.job == job, LinkRow.state.in_(LIVE_STATES))
            .execution_options(yield_per=2000)
        )
        with self._session() as session:
            for row in session.execute(query):
                link = _link_from_row(row)
                if link.attributes.get("manager") in wanted:
                    found.append(link)
        return sorted(found, key=lambda link: link.source_id)

    def _write_group_links(
        self, session: Session, job: str, write: PageWrite, now: datetime
    ) -> None:
        for ids in _chunks(write.dropped_groups):
            session.execute(
                delete(GroupLinkRow).where(GroupLinkRow.job == job, GroupLinkRow.source_id.in_(ids))
            )
        for link in write.group_links:
            existing = session.get(GroupLinkRow, (job, link.source_id))
            if existing is None:
                session.add(
                    GroupLinkRow(
                        job=job,
                        source_id=link.source_id,
                        target_id=link.target_id,
                        display_name=link.display_name,
                        attributes=link.attributes,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                existing.target_id = link.target_id
                existing.display_name = link.display_name
                existing.attributes = link.attributes
                existing.updated_at = now

    # job state, escrows and staged deletions --------------------------------------------------
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

    def clear(self, job: str, *, escrows: bool = False, staged: bool = False) -> None:
        with self._write() as session:
            if escrows:
                session.execute(delete(EscrowRow).where(EscrowRow.job == job))
            if staged:
                session.execute(delete(StagedDeleteRow).where(StagedDeleteRow.job == job))

    # assignments --------------------------------------------------------------------------------
    def assigned(self, job: str, user_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        with self._session() as session:
            for start in range(0, len(ids), CHUNK):
                found.update(
                    session.scalars(
                        select(AssignmentRow.user_id).where(
                            _unindexed(self._dialect, AssignmentRow.job) == job,
                            AssignmentRow.user_id.in_(ids[start : start + CHUNK]),
                        )
                    )
                )
        return found

    def memberships(self, job: str, user_ids: Iterable[str] | None = None) -> set[tuple[str, str]]:
        query = select(AssignmentRow.group_id, AssignmentRow.user_id).where(
            AssignmentRow.job == job
        )
        with self._session() as session:
            if user_ids is None:
                return {(g, u) for g, u in session.execute(query)}
            ids = list(dict.fromkeys(user_ids))
            found: set[tuple[str, str]] = set()
            for start in range(0, len(ids), CHUNK):
                chunk = select(AssignmentRow.group_id, AssignmentRow.user_id).where(
                    _unindexed(self._dialect, AssignmentRow.job) == job,
                    AssignmentRow.user_id.in_(ids[start : start + CHUNK]),
                )
                found.update((g, u) for g, u in session.execute(chunk))
            return found

    def replace_assignments(self, job: str, members: Mapping[str, set[str]]) -> None:
        with self._write() as session:
            session.execute(delete(AssignmentRow).where(AssignmentRow.job == job))
            session.add_all(
                AssignmentRow(job=job, group_id=group, user_id=user)
                for group, users in members.items()
                for user in users
            )

    def apply_membership_changes(
        self, job: str, changes: Sequence[MembershipChange], removed_groups: Sequence[str] = ()
    ) -> None:
        with self._write() as session:
            touched: set[str] = set()
            for group_id in removed_groups:
                rows = list(
                    session.scalars(
                        select(AssignmentRow).where(
                            AssignmentRow.job == job, AssignmentRow.group_id == group_id
                        )
                    )
                )
                for row in rows:
                    touched.add(row.user_id)
                    session.delete(row)
            for change in changes:
                existing = session.get(AssignmentRow, (job, change.group_id, change.member_id))
                if change.added and existing is None:
                    session.add(
                        AssignmentRow(job=job, group_id=change.group_id, user_id=change.member_id)
                    )
                elif not change.added and existing is not None:
                    session.delete(existing)
                session.flush()
                touched.add(change.member_id)
            for user_id in touched:
                if session.get(PendingUserRow, (job, user_id)) is None:
                    session.add(PendingUserRow(job=job, user_id=user_id))

    def pending(self, job: str, limit: int) -> list[str]:
        with self._session() as session:
            return list(
                session.scalars(
                    select(PendingUserRow.user_id)
                    .where(PendingUserRow.job == job)
                    .order_by(PendingUserRow.user_id)
                    .limit(limit)
                )
            )

    # provisioning log -------------------------------------------------------------------------
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

    # helpers ----------------------------------------------------------------------------------
    def _write(self) -> _WriteSession:
        return _WriteSession(self.sessions)

    def _upsert(
        self,
        session: Session,
        model: type[Base],
        rows: Sequence[dict[str, Any]],
        keep_true: Sequence[str] = (),
    ) -> None:
        """Insert rows, or update those whose primary key exists, in one statement per chunk.
        Unlike session.merge (read, then insert), nothing another process inserts in between
        can make it fail; both databases have INSERT ... ON CONFLICT DO UPDATE. The boolean
        columns in `keep_true` are never turned from true to false by an update."""
        if not rows:
            return
        keys = [column.name for column in model.__table__.primary_key]
        # PostgreSQL refuses to touch one row twice in a statement: a key's last row wins.
        unique = list({tuple(row[key] for key in keys): row for row in rows}.values())
        # Imported here, the one dialect used: read-only commands (`status`) start without the
        # dialects' insert code, and a worker on SQLite without PostgreSQL's dialect.
        insert: Callable[..., Any]
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            insert = postgresql_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            insert = sqlite_insert
        for start in range(0, len(unique), CHUNK):
            statement = insert(model).values(unique[start : start + CHUNK])
            table = model.__table__.c
            statement = statement.on_conflict_do_update(
                index_elements=keys,
                set_={
                    name: or_(table[name], statement.excluded[name])
                    if name in keep_true
                    else statement.excluded[name]
                    for name in unique[0]
                    if name not in keys
                },
            )
            session.execute(statement)


class _WriteSession:
    """A session whose block is one transaction: committed if the block ends well, else rolled
    back. (Its errors are translated by the adapter's method, like every other.)"""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.session: Session | None = None

    def __enter__(self) -> Session:
        self.session = self.factory()
        self.session.begin()
        return self.session

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        assert self.session is not None
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
