"""The state stores, opened for a command: Redis and the SQL database, migrated.

`open_state` is the one way to open them: `worker.bootstrap.open_runtime` builds the whole
runtime of a cycle on it (Graph clients, MSAL, the services, notifiers), and `open_state_view`
the reads of `tenant-sync status`, which start in a fraction of the time (docs/performance.md,
"CLI start-up"): SQLAlchemy is loaded only when something uses the engine, Alembic only when the
database is not at the newest revision, and status reads through the driver alone
(worker/adapters/state/sql_reads.py). Nothing here writes but the migration.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from worker.adapters.state.embedded_redis import resolve_redis_url
from worker.adapters.state.redis_lib import redis
from worker.adapters.state.redis_store import (
    RedisCursorStore,
    RedisJobLock,
    RedisLiveProgress,
    connect,
)
from worker.adapters.state.sql_reads import SqlReads
from worker.config import Config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from worker.ports import LedgerReads  # annotations only: status defines no port

# Migrations are numbered files (0001_initial_state_schema.py, ...) whose revision is that number.
VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION_FILE = re.compile(r"([0-9]{4})_\w+\.py")


def newest_revision() -> str | None:
    """The newest migration's revision, read off the file names (without loading Alembic)."""
    numbers = [m.group(1) for p in VERSIONS.iterdir() if (m := _REVISION_FILE.fullmatch(p.name))]
    return max(numbers, default=None)


def schema_is_newest(
    database_url: str, engine: Callable[[], Engine], reads: SqlReads | None = None
) -> bool:
    """Whether the database is at the newest revision, asked without loading Alembic (a
    fixed cost of every process that opens the database: docs/performance.md, "The no-change
    cycle"): on the driver alone where the URL allows (`reads`, if open), else on `engine()`."""
    driver = reads or SqlReads.open(database_url)
    if driver is not None:
        try:
            return driver.revision() == newest_revision()
        finally:
            if driver is not reads:
                driver.close()
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine().connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False  # no version table yet: the caller migrates as usual
    return len(rows) == 1 and rows[0][0] == newest_revision()


@dataclass
class State:
    """Redis and the SQL database of one process. The engine (SQLAlchemy) and the driver
    connection behind `reads` are made on first use; `close` ends whichever were made."""

    config: Config
    redis_url: str
    redis: redis.Redis
    _engine: Engine | None = field(default=None, repr=False)
    _reads: SqlReads | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from worker.adapters.state.sql import make_engine

            self._engine = make_engine(self.config.state.database_url)
        return self._engine

    def reads(self) -> LedgerReads:
        """The ledger's reads for a status: on the driver alone where the URL allows it
        (sql_reads.py), else on SQLAlchemy."""
        if self._reads is None:
            self._reads = SqlReads.open(self.config.state.database_url)
        if self._reads is not None:
            return self._reads
        from worker.adapters.state.sql import SqlLedger

        return SqlLedger(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the newest revision, loading Alembic only when it is not there
        (a first command on a new database works)."""
        if self._at_newest_revision():
            return
        from worker.adapters.state.db import upgrade_database

        upgrade_database(self.engine)

    def _at_newest_revision(self) -> bool:
        return schema_is_newest(self.config.state.database_url, lambda: self.engine, self._reads)

    def close(self) -> None:
        self.redis.close()
        if self._reads is not None:
            self._reads.close()
        if self._engine is not None:
            self._engine.dispose()


def open_state(config: Config, *, migrate: bool = True, reads: bool = False) -> State:
    """Connect to Redis (starting the embedded one if configured) and to the SQL database,
    migrated unless `migrate` is False; with `reads`, `State.reads` is opened at once (and the
    migration check uses it). On a failure, whatever was opened is closed."""
    url = resolve_redis_url(config.state.redis_url, Path(config.state.state_dir))
    state = State(config=config, redis_url=url, redis=connect(url))
    try:
        if reads:
            state.reads()
        if migrate:
            state.migrate()
    except BaseException:
        state.close()
        raise
    return state


@dataclass
class StateView:
    """What `status` reads: the ledger's reads, cursors, live progress and the job lock."""

    state: State
    ledger: LedgerReads
    cursors: RedisCursorStore
    live: RedisLiveProgress

    @property
    def redis(self) -> redis.Redis:
        return self.state.redis

    def job_lock(self) -> RedisJobLock:
        ttl = self.state.config.state.lock_ttl.total_seconds()
        return RedisJobLock(self.state.redis, ttl_s=ttl)

    def close(self) -> None:
        self.state.close()


def open_state_view(config: Config) -> StateView:
    """The state opened (and migrated) by `open_state`, for reading."""
    state = open_state(config, reads=True)
    return StateView(
        state=state,
        ledger=state.reads(),
        cursors=RedisCursorStore(state.redis),
        live=RedisLiveProgress(state.redis),
    )
