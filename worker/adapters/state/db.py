"""Applying the Alembic migrations, safely when several processes start at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

MIGRATIONS = str(Path(__file__).resolve().parent.parent.parent / "migrations")
# "tsync". PostgreSQL keys advisory locks by database too: this serializes the processes
# migrating one database, and installations sharing a server do not wait for each other.
PG_MIGRATION_LOCK = 0x7473796E63


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    return config


@contextmanager
def _exclusive(engine: Engine) -> Iterator[Connection]:
    """A connection held under a lock that only one migrating process gets at a time."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database or ""
        lock_path = Path(database + ".migrate.lock") if database not in ("", ":memory:") else None
        if lock_path is None:
            with engine.connect() as connection:
                yield connection
            return
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as connection:
                    yield connection
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as connection:
        # A session lock, committed at once: what runs under it starts a new transaction and so
        # sees everything the process that held the lock before committed.
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK})
        connection.commit()
        try:
            yield connection
        finally:
            _unlock(connection)


def _unlock(connection: Connection) -> None:
    """Release the migration lock whatever happened under it. A failed migration leaves the
    transaction aborted (PostgreSQL refuses the unlock until it is rolled back); a connection
    that cannot even roll back is thrown away, and the server drops its locks with it. Left
    held, the lock would ride the pooled connection and block every other migrating process."""
    try:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK})
        connection.commit()
    except SQLAlchemyError:
        connection.invalidate()


def upgrade_database(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (revision before, revision after)."""
    with _exclusive(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        after = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return before, after or head or ""
