"""The state alone, for commands that only read it (`tenant-sync status`).

`worker.bootstrap.open_runtime` wires everything a cycle needs (Graph clients, MSAL, the
services, notifiers); a command that only reads Redis and the SQL ledger opens this instead, so
it starts in a fraction of the time (docs/performance.md). Same connections, same checks, same
migration as the runtime; nothing here writes but the migration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from worker.adapters.state.embedded_redis import resolve_redis_url
from worker.adapters.state.redis_store import (
    RedisCursorStore,
    RedisJobLock,
    RedisLiveProgress,
    connect,
)
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.config import Config

# Migrations are numbered files (0001_initial_state_schema.py, ...) whose revision is that number.
VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
_REVISION_FILE = re.compile(r"([0-9]{4})_\w+\.py")


@dataclass
class StateView:
    """Redis and the SQL ledger, with the parts of `Runtime` a read needs."""

    config: Config
    redis: redis.Redis
    engine: Engine
    ledger: SqlLedger
    cursors: RedisCursorStore
    live: RedisLiveProgress

    def job_lock(self) -> RedisJobLock:
        return RedisJobLock(self.redis, ttl_s=self.config.state.lock_ttl.total_seconds())

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()


def newest_revision() -> str | None:
    """The newest migration's revision, read off the file names (without loading Alembic)."""
    numbers = [m.group(1) for p in VERSIONS.iterdir() if (m := _REVISION_FILE.fullmatch(p.name))]
    return max(numbers, default=None)


def at_newest_revision(engine: Engine) -> bool:
    """Whether the database is already at the newest revision; False when unsure (no version
    table yet, several rows), so the caller migrates as usual."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False
    return len(rows) == 1 and rows[0][0] == newest_revision()


def open_state_view(config: Config) -> StateView:
    """Connect to Redis (starting the embedded one if configured) and SQL (migrated, as the
    runtime does: a first `status` on a new database works)."""
    client = connect(resolve_redis_url(config.state.redis_url, Path(config.state.state_dir)))
    engine = make_engine(config.state.database_url)
    try:
        if not at_newest_revision(engine):
            # Alembic and the migration scripts cost a third of the start-up: only when needed.
            from worker.adapters.state.db import upgrade_database

            upgrade_database(engine)
    except BaseException:
        client.close()
        engine.dispose()
        raise
    return StateView(
        config=config,
        redis=client,
        engine=engine,
        ledger=SqlLedger(engine),
        cursors=RedisCursorStore(client),
        live=RedisLiveProgress(client),
    )
