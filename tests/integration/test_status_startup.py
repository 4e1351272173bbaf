"""`tenant-sync status` starts light (docs/performance.md, "CLI start-up") and shows the same
state as the ledger on SQLAlchemy would: its reads on the driver alone are not a second truth."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import SyncEnv

pytestmark = pytest.mark.integration

# Loaded by a cycle; a status at the newest revision needs none of them.
NOT_FOR_STATUS = {"sqlalchemy", "alembic", "structlog", "opentelemetry"}
# The worker's own modules of a cycle (its ports and decisions, dozens of dataclasses).
CYCLE_MODULES = {
    "worker.ports",
    "worker.domain.plan",
    "worker.domain.manager",
    "worker.domain.notifications",
}


# The command run in this interpreter, which then names the modules it loaded (Python's own
# import log would also name the imports that failed, as redis-py's of OpenTelemetry does).
PROBE = """
import json, sys
from worker import cli
try:
    cli.main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(m for m, v in sys.modules.items() if v)), file=sys.stderr)
"""


def modules_imported_by(env: SyncEnv, *args: str) -> set[str]:
    """The modules `tenant-sync ARGS` imported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--config", str(env.config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stderr.splitlines()[-1]))


def imported_by(env: SyncEnv, *args: str) -> set[str]:
    """The top-level packages `tenant-sync ARGS` imported."""
    return {m.split(".")[0] for m in modules_imported_by(env, *args)}


def statuses(env: SyncEnv) -> list[dict[str, Any]]:
    result = env.cli("status", "--json", check=True)
    found: list[dict[str, Any]] = json.loads(result.stdout)
    for status in found:
        status["deletionThreshold"].pop("windowStart")  # the time of asking
    return found


@pytest.mark.world(job={"groups": {"provision": True}})
def test_status_loads_no_orm_migrations_or_logging_and_shows_what_the_ledger_holds(
    sync_env: SyncEnv,
) -> None:
    sync_env.run_json()
    modules = modules_imported_by(sync_env, "status")
    assert {m.split(".")[0] for m in modules}.isdisjoint(NOT_FOR_STATUS)
    assert modules.isdisjoint(CYCLE_MODULES), sorted(modules & CYCLE_MODULES)
    light = statuses(sync_env)
    assert light[0]["linkedUsers"] > 0
    assert light[0]["groups"]["provisioned"] > 0
    # The same database under a URL the driver is not handed (a query): read by SqlLedger.
    text = sync_env.config.read_text()
    url = re.search(r"database_url: (\S+)", text)
    assert url is not None
    sync_env.config.write_text(text.replace(url.group(1), url.group(1) + "?timeout=30"))
    assert "sqlalchemy" in imported_by(sync_env, "status")
    assert statuses(sync_env) == light


def test_a_first_status_migrates_a_new_database_and_shows_no_run(sync_env: SyncEnv) -> None:
    assert not (sync_env.state_dir / "state.db").exists()
    [status] = statuses(sync_env)
    assert (status["code"], status["lastExecution"], status["linkedUsers"]) == ("NotRun", None, 0)
    assert "alembic" not in imported_by(sync_env, "status")  # migrated once is enough
