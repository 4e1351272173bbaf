"""What only PostgreSQL has: the migration advisory lock under real concurrent processes, a lock
that a failed migration must not leave behind, 64-bit log ids, plain postgresql:// URLs. (The
ledger and schema tests run on both databases in test_state_sql.py; a few sync tests run on
both through POSTGRES_SYNC_TESTS in conftest.py.)"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from tests.conftest import POSTGRES_SYNC_TESTS, sync_world
from tests.support.postgres import NO_POSTGRES, PostgresServer, find_bindir, running_postgres
from tests.support.sandbox import REPO_ROOT
from tests.support.world import build_world_seed
from worker.adapters.state.audit import SqlAuditLog
from worker.adapters.state.db import PG_MIGRATION_LOCK, alembic_config, upgrade_database
from worker.adapters.state.sql import SqlLedger, make_engine
from worker.bootstrap import open_runtime
from worker.config import load_config
from worker.domain.errors import Transient
from worker.domain.model import Action, ObjectOutcome, Status
from worker.ports import PageWrite

pytestmark = pytest.mark.integration

LOCK_DEADLINE_S = 60.0

MIGRATE = """
import json, sys
from worker.adapters.state.db import upgrade_database
from worker.adapters.state.sql import make_engine
engine = make_engine(sys.argv[1])
print(json.dumps(upgrade_database(engine)))
engine.dispose()
"""


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def advisory_locks(engine: Engine) -> list[bool]:
    """`granted` of each advisory lock on the migration key in this database."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT granted FROM pg_locks WHERE locktype = 'advisory'"
                    " AND database = (SELECT oid FROM pg_database"
                    "                 WHERE datname = current_database())"
                    " AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": PG_MIGRATION_LOCK},
            )
        )


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision
    return revision


def test_two_processes_migrating_a_fresh_database_at_once_both_succeed(
    pg_url: str, pg_engine: Engine
) -> None:
    # Hold the lock ourselves until both processes are queued behind it, then let them race.
    with pg_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_MIGRATION_LOCK})
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", MIGRATE, pg_url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + LOCK_DEADLINE_S
            while sorted(advisory_locks(pg_engine)) != [False, False, True]:
                assert all(p.poll() is None for p in processes), "a process did not wait"
                assert time.monotonic() < deadline, "the processes never queued on the lock"
                time.sleep(0.05)
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_MIGRATION_LOCK})
            holder.commit()
        results = [p.communicate(timeout=LOCK_DEADLINE_S) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], results
    revisions = sorted((json.loads(out) for out, _ in results), key=lambda r: r[0] or "")
    # One migrated the empty database; the other waited and found it done.
    assert revisions == [[None, head()], [head(), head()]]
    assert advisory_locks(pg_engine) == []


def test_a_failed_migration_reports_its_cause_and_leaves_no_lock(pg_engine: Engine) -> None:
    with pg_engine.begin() as connection:
        connection.execute(text("CREATE TABLE assignments (squatter integer)"))

    for _ in range(2):  # the second time on the pooled connection the first one gave back
        with pytest.raises(SQLAlchemyError, match="already exists"):
            upgrade_database(pg_engine)
        assert advisory_locks(pg_engine) == []


def test_a_plain_postgresql_url_gets_the_installed_psycopg_driver(pg_url: str) -> None:
    engine = make_engine(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert engine.dialect.driver == "psycopg"
        assert upgrade_database(engine) == (None, head())
    finally:
        engine.dispose()


def test_provisioning_log_ids_go_past_32_bits(pg_engine: Engine) -> None:
    upgrade_database(pg_engine)
    with pg_engine.begin() as connection:
        connection.execute(
            text("SELECT setval(pg_get_serial_sequence('provisioning_log', 'id'), 3000000000)")
        )
    ledger = SqlLedger(pg_engine)
    outcome = ObjectOutcome("s1", Action.CREATE, Status.SUCCESS)
    ledger.commit_page("job", "r1", PageWrite(outcomes=[outcome]))
    assert [row["sourceId"] for row in ledger.logs("job")] == ["s1"]
    with pg_engine.connect() as connection:
        assert connection.scalar(text("SELECT max(id) FROM provisioning_log")) == 3000000001


@pytest.mark.parametrize("node_id", sorted(POSTGRES_SYNC_TESTS))
def test_the_postgresql_sync_variants_name_real_sync_tests(node_id: str) -> None:
    # A renamed or moved test would silently lose its PostgreSQL variant.
    path, name = node_id.split("::")
    tree = ast.parse((REPO_ROOT / path).read_text())
    tests = {
        node.name: [arg.arg for arg in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }
    assert name in tests, f"{node_id} is gone: update POSTGRES_SYNC_TESTS in tests/conftest.py"
    assert "sync_env" in tests[name]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, to stop under it (the session's serves other tests)."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(NO_POSTGRES)
    with running_postgres(bindir) as server:
        yield server


def test_a_stopped_server_is_a_transient_error_naming_the_database_without_its_password(
    own_postgres: PostgresServer,
) -> None:
    name = own_postgres.create_database()
    # The server trusts local connections: the password is never checked, only carried.
    url = f"postgresql+psycopg://postgres:Sw0rdfish-77@127.0.0.1:{own_postgres.port}/{name}"
    engine = make_engine(url)
    upgrade_database(engine)
    ledger, audit = SqlLedger(engine), SqlAuditLog(engine)
    own_postgres.stop()
    calls: list[Callable[[], object]] = [
        lambda: ledger.links_for("job", ["s1"]),
        lambda: ledger.commit_page(
            "job", "r1", PageWrite(outcomes=[ObjectOutcome("s1", Action.CREATE, Status.SUCCESS)])
        ),
        lambda: next(iter(ledger.unseen_links("job", "r1", 10))),
        lambda: ledger.staged("job"),
        lambda: audit.entries(),
    ]
    try:
        for call in calls:
            with pytest.raises(Transient) as caught:
                call()
            message = str(caught.value)
            assert message.startswith(
                f"the state database postgresql+psycopg://postgres@127.0.0.1:"
                f"{own_postgres.port}/{name} is unavailable: OperationalError: "
            ), message
            assert "Sw0rdfish-77" not in message
            assert "\n" not in message
    finally:
        engine.dispose()
        own_postgres.start()  # for running_postgres's own stop


def test_a_cycle_whose_database_goes_away_fails_as_transient_not_internal(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    """The server stops after the cycle's first page: its next read of links fails."""
    stopped: list[str] = []

    def stop_after_first_page(phase: str, counts: dict[str, int]) -> None:
        if not stopped:
            stopped.append(phase)
            own_postgres.stop()

    with (
        own_postgres.fresh_database() as url,
        sync_world(tmp_path, build_world_seed(users=30), database_url=url) as env,
    ):
        runtime = open_runtime(load_config(env.config))
        try:
            result = runtime.cycle("sync", on_progress=stop_after_first_page).run(mode="full")
        finally:
            runtime.close()
            if stopped:
                own_postgres.start()
    assert stopped, "the cycle committed no page"
    assert (result.status, result.transient) == ("failed", True)
    assert result.error.startswith("the state database postgresql+psycopg://postgres@127.0.0.1:")
    assert "is unavailable: OperationalError" in result.error
    assert "internal error" not in result.error
