"""Rows to and from the domain's records, for the SQL ledger's writes and reads.

New provisioning-log rows and new links are packed here once, as their columns store them, and
written through `_raw_table`s: the bulk inserts skip the column types' bind steps, the larger part
of a created user's commit, and go to the driver's executemany as they are (`insert_many`), without
SQLAlchemy's per-row parameter steps (docs/performance.md, "Time per created user"). A
provisioning-log row has one builder, `_log_row`, for a new row and for one rewritten in place.
Links are read as plain rows and unpacked here (docs/performance.md, "The no-change cycle").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Column, LargeBinary, MetaData, Table, insert, type_coerce
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator

from worker.adapters.state.compact import pack_id, pack_json, unpack_id, unpack_json
from worker.adapters.state.sql_models import Base, LinkRow, LogRow, RunRow
from worker.adapters.state.sql_types import _storable, _StoredBytes
from worker.domain.model import Action, Change, Link, LinkState, ObjectOutcome, Status, Step
from worker.domain.records import modified_record, step_records
from worker.ports import RunRecord


def _new_change_id() -> bytes:
    """A random (version 4) UUID's 16 bytes, what `pack_id(str(uuid.uuid4()))` gives, without
    its text (docs/performance.md, "Time per created user")."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return bytes(raw)


def _stored_type(column: Any) -> Any:
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    return _StoredBytes() if isinstance(kind, LargeBinary) else kind


def _raw_table(model: type[Base]) -> Table:
    """The model's table with each column's stored type, for bulk inserts of values packed
    here once (`_log_row`, `_link_insert_row`): a TypeDecorator's bind step runs per
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

# A raw table's INSERT of these columns as one dialect compiles it: its text, the columns in the
# order the driver takes them (None: by name, the rows as they are), and each column's bind step
# (None for most: ids and JSON are packed already; SQLite's datetimes and booleans have one).
_Insert = tuple[str, tuple[str, ...] | None, tuple[tuple[str, Callable[[Any], Any] | None], ...]]
_INSERTS: dict[tuple[str, str, str, str, tuple[str, ...]], _Insert] = {}


def _compiled_insert(table: Table, dialect: Dialect, keys: tuple[str, ...]) -> _Insert:
    # The statement's text and its placeholders are the driver's (and its paramstyle's).
    cache_key = (dialect.name, dialect.driver, dialect.paramstyle, table.name, keys)
    found = _INSERTS.get(cache_key)
    if found is None:
        # As SQLAlchemy compiles it for an executemany: on PostgreSQL the single-row form would
        # end in `RETURNING id`, a result per row that nothing reads.
        compiled = insert(table).compile(
            dialect=dialect, column_keys=list(keys), for_executemany=True
        )
        steps = tuple(
            (key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in keys
        )
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _INSERTS[cache_key] = (compiled.string, order, steps)
    return found


def insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows of a raw table (`_log_row`, `_link_insert_row`: every row the same keys) in
    one executemany of the statement SQLAlchemy compiles for them, handed to the driver as it
    is: SQLAlchemy's own executemany builds and binds each row's parameters again, column by
    column, about a third of a created user's commit (docs/performance.md, "Time per created
    user"). The values stored are the same: each column's bind step still runs (on the rows'
    own dicts, in place). `rows` must not be empty."""
    statement, order, steps = _compiled_insert(table, connection.dialect, tuple(rows[0]))
    processors = [(key, step) for key, step in steps if step is not None]
    if processors:
        for row in rows:
            for key, step in processors:
                row[key] = step(row[key])
    if order is None:
        connection.exec_driver_sql(statement, rows)
    else:
        connection.exec_driver_sql(statement, [tuple([row[k] for k in order]) for row in rows])


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


def _log_row(job: str, run_key: bytes, o: ObjectOutcome, created_at: Any) -> dict[str, Any]:
    """A provisioning-log row as `_RAW_LOG` stores it: what LogRow's column types would bind
    (`run_key`: the run id packed; `created_at`: a UTC time, which the stored type binds). The
    one builder of a row's columns: a new row is inserted with them, a row rewritten in place
    takes all but its change id and time (`_LOG_KEPT`, sql_commit.py)."""
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
