"""State databases at the current schema, migrated once per test session and copied per test.

Running every Alembic migration costs about a second a database on a loaded machine; the
ledger contract runs over a hundred of them. A copy of a migrated database is the same schema
and the same `alembic_version` (a SQLite file copied, a PostgreSQL database created from it as
its TEMPLATE), so a test that needs the current schema, not the migrations themselves, starts
from a copy. The migrations are tested from empty and from every earlier schema in
tests/integration/test_state_sql.py and its neighbours, which keep migrating their own.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from psycopg import sql

from tests.support.postgres import PostgresServer
from worker.adapters.state.db import upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine


class MigratedSqlite:
    """Copies of one SQLite database migrated to head (under `workdir`, made on first use)."""

    def __init__(self, workdir: Path) -> None:
        self.template = workdir / "migrated.db"

    def url(self, path: Path) -> str:
        """A SQLite URL of a copy at `path` of the migrated database."""
        if not self.template.exists():
            building = self.template.with_suffix(".building")
            engine = make_engine(f"sqlite:///{building}")
            try:
                upgrade_database(engine)
            finally:
                engine.dispose()  # the last connection checkpoints the WAL into the file
            building.replace(self.template)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"


_TEMPLATES: dict[int, str] = {}  # server id -> its migrated template database


@contextmanager
def migrated_postgres(server: PostgresServer) -> Iterator[str]:
    """A SQLAlchemy URL of a new database on `server` at the current schema, dropped after."""
    template = _TEMPLATES.get(id(server))
    if template is None:
        template = server.create_database()
        engine = make_engine(server.url(template))
        try:
            upgrade_database(engine)
        finally:
            engine.dispose()  # CREATE DATABASE ... TEMPLATE wants no one connected to it
        _TEMPLATES[id(server)] = template
    name = f"m_{uuid.uuid4().hex[:12]}"
    with server.connect() as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@contextmanager
def sql_ledger(url: str) -> Iterator[SqlLedger]:
    """A SqlLedger on `url`, its engine disposed after."""
    engine = make_engine(url)
    try:
        yield SqlLedger(engine)
    finally:
        engine.dispose()
