"""Shared fixtures: a sandbox with two tenants, a config file for them, the CLI in a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.bytecode import compile_packages
from tests.support.leftovers import Leftover, still_running_under, stop
from tests.support.migrated import MigratedSqlite, migrated_postgres, sql_ledger
from tests.support.postgres import NO_POSTGRES, PostgresServer, find_bindir, running_postgres
from tests.support.sandbox import SandboxHandle, running_sandbox
from tests.support.world import SOURCE, TARGET, build_world_seed, write_config
from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.adapters.state.memory import MemoryLedger
from worker.ports import Ledger


@dataclass
class SyncEnv:
    sandbox: SandboxHandle
    config: Path
    state_dir: Path
    seed: dict[str, Any]

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "worker", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=300,
            # As a script would see it: piped, whatever width the test runner's terminal has.
            env={
                **{k: v for k, v in os.environ.items() if k != "COLUMNS"},
                "PYTHONUNBUFFERED": "1",
            },
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"tenant-sync {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def run_json(self, *args: str) -> dict[str, Any]:
        result = self.cli("run", "sync", "--json", *args, check=True)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def source(self) -> Any:
        return self.sandbox.graph(SOURCE.tenant_id, SOURCE.client_id, SOURCE.secret)

    def target_users(self, include_deleted: bool = False) -> list[dict[str, Any]]:
        return self.sandbox.users(TARGET.tenant_id, include_deleted=include_deleted)

    def writes(self) -> int:
        stats = self.sandbox.admin("GET", "/_sandbox/stats").json()
        return int(stats["writes"].get(TARGET.tenant_id, 0))


@contextmanager
def sync_world(
    tmp_path: Path,
    seed: dict[str, Any] | Path,
    job: dict[str, Any] | None = None,
    *,
    database_url: str | None = None,
) -> Iterator[SyncEnv]:
    """The sandbox serving `seed` (a seed, or a seed file: then `SyncEnv.seed` is empty), a
    config with one job `sync` on it, and state under tmp_path (the SQL state too, unless
    `database_url` names another database)."""
    with running_sandbox(seed, tmp_path / "sandbox") as sandbox:
        state_dir = tmp_path / "state"
        config = write_config(
            tmp_path / "tenant-sync.yaml", sandbox, state_dir, job=job, database_url=database_url
        )
        try:
            kept = seed if isinstance(seed, dict) else {}
            yield SyncEnv(sandbox=sandbox, config=config, state_dir=state_dir, seed=kept)
        finally:
            EmbeddedRedis(state_dir).stop()


@pytest.fixture
def sync_env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SyncEnv]:
    marker = request.node.get_closest_marker("world")
    options = dict(marker.kwargs) if marker else {}
    job_overrides = options.pop("job", {})
    if getattr(request, "param", "sqlite") == "postgresql":  # see POSTGRES_SYNC_TESTS
        server: PostgresServer = request.getfixturevalue("postgres")
        with (
            server.fresh_database() as url,
            sync_world(
                tmp_path, build_world_seed(**options), job_overrides, database_url=url
            ) as env,
        ):
            yield env
            # The variant is only worth its time if the worker really kept its state there.
            with server.connect(url.rsplit("/", 1)[1]) as db:
                runs = db.execute("SELECT count(*) FROM runs").fetchone()
            assert runs is not None
            assert runs[0] > 0, "no run was recorded in PostgreSQL"
            assert not (env.state_dir / "state.db").exists(), "the state went to SQLite"
        return
    with sync_world(tmp_path, build_world_seed(**options), job_overrides) as env:
        yield env


# The session ----------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, in the controller, before any test runs
        compile_packages()


# PostgreSQL ----------------------------------------------------------------------------------

# The sync tests that also run with their state on PostgreSQL: a representative few (full and
# incremental cycles with the provisioning log; the deletion threshold with job state and staged
# deletions; a cycle in a real Celery worker process), not the whole suite twice.
# (Node ids relative to the repository, which is pytest's rootdir.)
POSTGRES_SYNC_TESTS = frozenset(
    {
        "tests/integration/test_sync.py::test_full_then_incremental_cycles_keep_the_target_exact",
        "tests/integration/test_operations.py::"
        "test_deleting_60_percent_of_the_source_waits_for_allow_deletes",
        "tests/e2e/test_celery.py::test_trigger_runs_the_cycle_in_a_worker_process",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sync_env" in metafunc.fixturenames and metafunc.definition.nodeid in POSTGRES_SYNC_TESTS:
        metafunc.parametrize("sync_env", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; skipped only when none is installed."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(NO_POSTGRES)
    with running_postgres(bindir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty state database: a SQLite file under tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with server.fresh_database() as url:
        yield url


# Processes left running ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def stops_what_it_starts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test stops the servers and workers it started, also when it fails: one still
    running under its tmp_path when its fixtures are gone is stopped here and fails the test."""
    yield
    tmp_path = (request.node.funcargs or {}).get("tmp_path")
    if not isinstance(tmp_path, Path):
        return
    left = still_running_under(tmp_path)
    if left:
        stop(left)
        pytest.fail(
            "the test left these processes running (now stopped):\n"
            + "\n".join(f"  {item}" for item in left),
            pytrace=False,
        )


# What module- and session-scoped fixtures left under the session's base directory.
_LEFTOVERS: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def session_stops_what_it_starts(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[None]:
    yield
    left: list[Leftover] = still_running_under(tmp_path_factory.getbasetemp())
    if left:
        stop(left)
        _LEFTOVERS.extend(str(item) for item in left)


# Ledgers at the current schema ----------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> MigratedSqlite:
    """Copies of a SQLite state database migrated once for the session."""
    return MigratedSqlite(tmp_path_factory.mktemp("migrated"))


@contextmanager
def stored_ledger(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A ledger the contract tests run against: "memory", or SQL on "sqlite" or "postgresql"
    (a copy of a database migrated once: tests/support/migrated.py)."""
    if kind == "memory":
        yield MemoryLedger()
        return
    if kind == "sqlite":
        migrated: MigratedSqlite = request.getfixturevalue("migrated_sqlite")
        with sql_ledger(migrated.url(tmp_path / "state.db")) as ledger:
            yield ledger
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    with migrated_postgres(server) as url, sql_ledger(url) as ledger:
        yield ledger


_FAULT_SUITE = {"faults": 0, "kills": 0, "restarts": 0, "cycles": 0, "lost": 0, "duplicates": 0}


@pytest.fixture
def fault_summary() -> dict[str, int]:
    """What the fault tests injected and found, for the summary line at the end of the run."""
    return _FAULT_SUITE


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist (make test runs two workers) each worker hands its counts to the
    # controller, which prints the one summary line.
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["fault_suite"] = dict(_FAULT_SUITE)
        output["leftovers"] = list(_LEFTOVERS)
    elif _LEFTOVERS and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    counts = getattr(node, "workeroutput", {}).get("fault_suite") or {}
    for key, value in counts.items():
        _FAULT_SUITE[key] += value
    _LEFTOVERS.extend(getattr(node, "workeroutput", {}).get("leftovers") or [])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _LEFTOVERS:
        terminalreporter.write_line(
            "module or session fixtures left these processes running (now stopped):", red=True
        )
        for line in _LEFTOVERS:
            terminalreporter.write_line(f"  {line}")
    s = _FAULT_SUITE
    if s["cycles"]:
        terminalreporter.write_line(
            f"fault suite: faults injected {s['faults']}, kill -9 {s['kills']}, "
            f"redis restarts {s['restarts']}, cycles {s['cycles']}, "
            f"users lost {s['lost']}, duplicates {s['duplicates']}"
        )
