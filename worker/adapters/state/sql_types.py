"""The SQL state's column types: what each value becomes in the database and back.

UTC datetimes whatever the server's zone, free text from the tenants made storable on SQLite and
PostgreSQL alike, ids and JSON documents packed (compact.py), and bytes bound as they are for the
bulk inserts of values packed once (sql_rows.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, LargeBinary, String, Text
from sqlalchemy.types import TypeDecorator

from worker.adapters.state.compact import pack_id, pack_json, unpack_id, unpack_json


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class _StoredBytes(LargeBinary):
    """Bytes bound and read as they are: both drivers take `bytes` (and answer with bytes
    or a buffer, which compact.py's unpacking takes); LargeBinary's own bind step wraps each
    value in the driver's Binary first, and its result step copies it (a call per value)."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None
