"""What a command says when the state stores (Redis, the SQL database) cannot be used.

One line naming the setting (`state.redis_url`, `state.database_url`), its URL without the
password, and the cause; and the exit code: 1 when the service is unreachable (it may come back),
2 when the setting itself cannot work (a SQLite path that cannot be created or written).
Used at the CLI boundary, where library errors and the adapters' domain errors end up.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from worker.config import Config
from worker.urls import redacted_url

UNREACHABLE = 1
BAD_SETTING = 2


@dataclass(frozen=True)
class StateProblem:
    message: str
    code: int


def sqlite_path(database_url: str) -> Path | None:
    """The file of a sqlite:/// URL (None for another database or an in-memory one)."""
    if not database_url.startswith("sqlite"):
        return None
    from worker.adapters.state.sql_reads import plain_sqlite_path

    plain = plain_sqlite_path(database_url)
    if plain is not None:  # read without SQLAlchemy, which `status` does not load
        return Path(plain)
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def check_sqlite(config: Config) -> StateProblem | None:
    """Whether the SQLite file can be created and written (before anything tries to)."""
    path = sqlite_path(config.state.database_url)
    if path is None:
        return None
    where = f"state.database_url: the SQLite database {path}"
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return StateProblem(
            f"{where} cannot be created: {existing} is not a directory", BAD_SETTING
        )
    if path.exists():
        if path.is_dir():
            return StateProblem(f"{where} is a directory", BAD_SETTING)
        if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
            return StateProblem(f"{where} cannot be written (permission denied)", BAD_SETTING)
        return None
    if not os.access(existing, os.W_OK | os.X_OK):
        return StateProblem(f"{where} cannot be created: {existing} is not writable", BAD_SETTING)
    dangling = next((p for p in path.parents if p.is_symlink() and not p.exists()), None)
    if dangling is not None:
        return StateProblem(
            f"{where} cannot be created: {dangling} is a symlink to the missing "
            f"{os.readlink(dangling)}",
            BAD_SETTING,
        )
    try:
        # Made now, where a failure is named: a dangling symlink on the way, or a place only
        # root's os.access believes writable (/proc), fails here and not in the engine.
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return StateProblem(f"{where} cannot be created: {_os_reason(exc)}", BAD_SETTING)
    return None


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


def describe(config: Config, exc: BaseException) -> StateProblem | None:
    """The line for a failure of Redis or the SQL database, or None for any other error."""
    from worker.adapters.state.redis_lib import redis
    from worker.domain.errors import SyncError

    cause: BaseException | None = exc
    # The adapters wrap library errors in the domain's (Transient, ...): look at the cause.
    while isinstance(cause, SyncError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, redis.RedisError):
        url = redacted_url(config.state.redis_url)
        return StateProblem(f"state.redis_url ({url}): {_first_line(cause)}", UNREACHABLE)
    path = sqlite_path(config.state.database_url)
    if (
        isinstance(cause, OSError)
        and path is not None
        and cause.filename
        and Path(os.fsdecode(cause.filename)).absolute()
        in {path.absolute(), *path.absolute().parents}
    ):
        # Making the SQLite file's directory failed: the setting is what is wrong.
        return StateProblem(
            f"state.database_url: cannot use the SQLite database {path}: {_os_reason(cause)}",
            BAD_SETTING,
        )
    if cause is not None and _sql_error(cause):
        # SQLAlchemy's error carries the driver's (`orig`); status's reads raise it directly.
        orig = getattr(cause, "orig", None) or cause
        if path is not None:
            # SQLite is a local file: when it cannot be opened, the setting is what is wrong.
            return StateProblem(
                f"state.database_url: cannot use the SQLite database {path}: {_first_line(orig)}",
                BAD_SETTING,
            )
        url = redacted_url(config.state.database_url)
        return StateProblem(f"state.database_url ({url}): {_first_line(orig)}", UNREACHABLE)
    return None


def _sql_error(exc: BaseException) -> bool:
    """Whether `exc` is SQLAlchemy's or a database driver's (sqlite3, psycopg) error. Only the
    libraries already loaded are asked: an error cannot come from one that is not."""
    kinds: list[type[BaseException]] = []
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import SQLAlchemyError

        kinds.append(SQLAlchemyError)
    if "sqlite3" in sys.modules:
        import sqlite3

        kinds.append(sqlite3.Error)
    if "psycopg" in sys.modules:
        import psycopg

        kinds.append(psycopg.Error)
    return isinstance(exc, tuple(kinds))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
