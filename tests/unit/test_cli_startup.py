"""CLI start-up: what `tenant-sync validate` and `status` import (operators type them all day).

Each check runs in a fresh interpreter, since this one has long imported everything. The time
itself is measured by tests/bench/test_cli_startup.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from worker import config_models
from worker.config import PLAIN_DATABASE_URL_RE, ConfigError, load_config
from worker.state_view import newest_revision

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# What a cycle needs and a read of the config or the state does not.
CYCLE_ONLY = ("celery", "kombu", "msal", "httpx", "fastapi", "starlette", "uvicorn", "jwt")
# What loading the config (validate) does not need either.
STATE_ONLY = ("sqlalchemy", "alembic", "redis", "psycopg", "structlog")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def imported_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running `code`."""
    return {m.split(".")[0] for m in modules_after(code)}


def test_importing_the_cli_loads_no_state_graph_or_celery_library() -> None:
    loaded = imported_after("import worker.cli")
    assert loaded.isdisjoint(CYCLE_ONLY + STATE_ONLY), sorted(loaded & {*CYCLE_ONLY, *STATE_ONLY})


def test_validating_the_shipped_config_loads_no_state_graph_or_celery_library() -> None:
    loaded = imported_after(
        "import worker.cli\n"
        "from pathlib import Path\n"
        "from worker.config import ConfigError, load_config\n"
        "try:\n"
        "    load_config(Path('config/tenant-sync.yaml'), strict=True)\n"
        "except ConfigError:\n"
        "    pass  # the sandbox's CA file is missing until it first starts"
    )
    assert loaded.isdisjoint(CYCLE_ONLY + STATE_ONLY), sorted(loaded & {*CYCLE_ONLY, *STATE_ONLY})


# A command run in a fresh interpreter, which then says what it loaded: the modules, and whether
# pydantic searched the installed packages for plugins (its cache of them is set once it has).
COMMAND_PROBE = """
import json, sys
from worker import cli
try:
    cli.main()
except SystemExit as exc:
    assert not exc.code, exc.code
from pydantic.plugin import _loader
print(json.dumps({"modules": sorted(sys.modules), "plugins_searched": _loader._plugins is not None}))
"""


def test_validate_loads_no_table_and_searches_no_pydantic_plugins(tmp_path: Path) -> None:
    """Tables (rich.table) load only where one is printed, and the configuration's models are
    built without pydantic's search of every installed package for plugins."""
    config = tmp_path / "tenant-sync.yaml"
    config.write_text(
        "tenants:\n  contoso:\n    tenant_id: 11111111-1111-4111-8111-111111111111\n"
        "    client_id: aaaaaaaa-0000-4000-8000-000000000001\n    client_secret: not-a-secret\n"
        "    domain: contoso.onmicrosoft.com\njobs: {}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", COMMAND_PROBE, "validate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    probe = json.loads(result.stdout.splitlines()[-1])
    assert "rich.table" not in probe["modules"]
    assert not probe["plugins_searched"]
    assert set(probe["modules"]).isdisjoint(CYCLE_MODULES)


# The worker's own modules of a cycle's decisions and ports: dozens of dataclasses, each costing
# its methods' compilation at import (docs/performance.md, "CLI start-up"). The configuration
# takes a job's policy from worker/domain/job.py, the manager's key from worker/domain/model.py,
# the notifiers' event kinds from worker/domain/event_kinds.py, and status its state records
# from worker/state_records.py instead.
CYCLE_MODULES = (
    "worker.ports",
    "worker.domain.plan",
    "worker.domain.manager",
    "worker.domain.notifications",
)

# What `status` does not load either: it reads SQL on the driver (sql_reads.py), logs nothing,
# and imports redis-py with OpenTelemetry hidden (worker/adapters/state/redis_lib.py).
NOT_FOR_STATUS = ("sqlalchemy", "alembic", "structlog", "opentelemetry", "psycopg")


def test_the_state_view_of_status_loads_no_graph_celery_or_orm_library() -> None:
    modules = modules_after("import worker.cli, worker.state_view, worker.service.status")
    loaded = {m.split(".")[0] for m in modules}
    assert loaded.isdisjoint(CYCLE_ONLY + NOT_FOR_STATUS), sorted(
        loaded & {*CYCLE_ONLY, *NOT_FOR_STATUS}
    )
    assert "redis" in loaded
    assert modules.isdisjoint(CYCLE_MODULES), sorted(modules & {*CYCLE_MODULES})


def test_redis_loads_opentelemetry_again_once_the_state_view_has_loaded() -> None:
    """Hidden only while redis-py is imported: whatever imports OpenTelemetry later gets it."""
    pytest.importorskip("opentelemetry")
    loaded = imported_after("import worker.state_view\nimport opentelemetry.metrics")
    assert "opentelemetry" in loaded


def test_a_cycle_or_a_worker_loads_no_opentelemetry_with_redis() -> None:
    """Whichever module loads redis-py first (the runtime's, a Celery worker's, the console's),
    it loads it through redis_lib.py, so OpenTelemetry's metrics SDK is not loaded with it."""
    pytest.importorskip("opentelemetry")
    loaded = imported_after(
        "import worker.adapters.state.rate_limit, worker.bootstrap, worker.celery_app"
    )
    assert "redis" in loaded
    assert "opentelemetry" not in loaded


def test_the_launcher_only_launches_when_run() -> None:
    """`tenant-sync` is worker.__main__:run; importing the module starts no command."""
    loaded = imported_after("import worker.__main__")
    assert "typer" not in loaded


def database_problems(url: str, tmp_path: Path) -> list[str]:
    config = tmp_path / "tenant-sync.yaml"
    config.write_text(f"state: {{database_url: '{url}'}}\ntenants: {{}}\njobs: {{}}\n")
    try:
        load_config(config)
    except ConfigError as exc:
        return [p for p in exc.problems if "database_url" in p]
    return []


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///.tenant-sync/state.db",
        "sqlite:////var/lib/tenant-sync/state.db",
        "postgresql://db.example.com/tenant_sync",
        "postgresql+psycopg://sync:p%40ss:word@10.0.0.7:5432/tenant_sync?sslmode=require",
        "postgresql+psycopg://sync@db-1.internal:6432/ts",
    ],
)
def test_database_urls_accepted_without_sqlalchemy_pass_its_checks_too(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PLAIN_DATABASE_URL_RE.fullmatch(url)
    assert database_problems(url, tmp_path) == []
    # The same URL through SQLAlchemy's parsing and the checks after it.
    monkeypatch.setattr(config_models, "PLAIN_DATABASE_URL_RE", re.compile(r"(?!)"))
    assert database_problems(url, tmp_path) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://host:port/db", "not a valid"),  # a port that is not a number
        ("postgresql://a:1/db?x=@h:abc", "not a valid"),  # an "@" after the user part
        ("sqlite:relative.db", "not a valid"),
        ("postgresql+psycopg2://db/ts", "not supported"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///file::memory:?cache=shared", "in-memory"),
        ("sqlite:///state.db?mode=memory", "in-memory"),
    ],
)
def test_other_database_urls_are_still_checked_by_sqlalchemy(
    url: str, problem: str, tmp_path: Path
) -> None:
    assert not PLAIN_DATABASE_URL_RE.fullmatch(url)
    problems = database_problems(url, tmp_path)
    assert len(problems) == 1, problems
    assert problem in problems[0]


def test_the_newest_revision_read_off_file_names_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from worker.adapters.state.db import alembic_config

    assert newest_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_worker_wiring_loads_alembic_only_to_migrate() -> None:
    # `worker run` and every Celery worker open the database through worker/bootstrap.py: at
    # the newest revision (checked on the driver) Alembic is never imported, a fixed cost
    # per process (docs/performance.md, "The no-change cycle").
    loaded = imported_after("import worker.bootstrap, worker.celery_app")
    assert "alembic" not in loaded
