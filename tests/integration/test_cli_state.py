"""When Redis or the state database cannot be used: one line naming the setting, the right exit
code (1 unreachable, 2 a setting that cannot work), `run --json`'s whole object, no traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.world import RUN_JSON_COUNT_KEYS
from worker.adapters.state.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config" / "tenant-sync.yaml"
JOB = "contoso-to-fabrikam"
# What a successful `run --json` prints, at least (docs/contracts.md: the summary, status and error).
RUN_KEYS = {"job", "run_id", "mode", "dry_run", "counts", "duration_s", "status", "error"}


@pytest.fixture(autouse=True)
def stop_embedded_redis(tmp_path: Path) -> Iterator[None]:
    """`status` and `run` start the embedded server before they find the database unusable: the
    daemon outlives the command, so each test stops it (also when it fails)."""
    yield
    EmbeddedRedis(tmp_path / "state").stop()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago, and nothing here takes it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_with(tmp_path: Path, *, redis_url: str = "embedded", database_url: str = "") -> Path:
    text = CONFIG.read_text().replace(".tenant-sync", str(tmp_path / "state"))
    # The sandbox's CA, as after its first start (outside the state directory these tests watch).
    ca = tmp_path / "ca.pem"
    ca.write_text("the sandbox's CA")
    text = text.replace(f"{tmp_path / 'state'}/sandbox-tls/ca.pem", str(ca))
    text = text.replace("redis_url: embedded", f"redis_url: {redis_url!r}", 1)
    if database_url:
        text = text.replace(
            f"database_url: sqlite:///{tmp_path / 'state'}/state.db",
            f"database_url: {database_url!r}",
            1,
        )
        assert database_url in text
    path = tmp_path / "tenant-sync.yaml"
    path.write_text(text)
    return path


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_redis_down_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()
    config = config_with(tmp_path, redis_url=f"redis://:hunter22@127.0.0.1:{port}/0")
    for args in (["status"], ["trigger", JOB], ["pause", JOB], ["run", JOB]):
        result = cli(config, *args)
        assert result.returncode == 1, (args, result.stderr)
        line = one_line(result)
        assert line.startswith(f"tenant-sync: state.redis_url (redis://127.0.0.1:{port}/0): ")
        assert "refused" in line.lower()
        assert "hunter22" not in result.stderr + result.stdout
    run = cli(config, "run", JOB, "--json")
    assert run.returncode == 1
    summary = json.loads(run.stdout)
    assert set(summary) >= RUN_KEYS
    assert set(summary["counts"]) == RUN_JSON_COUNT_KEYS
    assert summary["status"] == "failed"
    assert summary["error"].startswith("state.redis_url (")
    trigger = cli(config, "trigger", JOB, "--json")
    assert trigger.returncode == 1
    assert json.loads(trigger.stdout)["status"] == "failed"


def test_an_unparseable_redis_url_is_a_bad_setting(tmp_path: Path) -> None:
    config = config_with(tmp_path, redis_url="redis://localhost:six/0")
    result = cli(config, "status")
    assert result.returncode == 2
    assert "state.redis_url: has an invalid port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sqlite_path_that_cannot_be_created_is_a_bad_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    database = blocker / "state" / "state.db"
    config = config_with(tmp_path, database_url=f"sqlite:///{database}")
    for args in (["status"], ["logs", JOB], ["audit"], ["db", "upgrade"], ["run", JOB]):
        result = cli(config, *args)
        assert result.returncode == 2, (args, result.stderr)
        line = one_line(result)
        assert line.startswith("tenant-sync: state.database_url: ")
        assert str(database) in line
        assert "state directory" not in line
    run = cli(config, "run", JOB, "--json")
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"].startswith("state.database_url: ")


def test_an_unreachable_database_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://sync:pw-secret@127.0.0.1:{port}/state"
    config = config_with(tmp_path, database_url=url)
    for args in (["status"], ["logs", JOB], ["db", "upgrade"]):
        result = cli(config, *args)
        assert result.returncode == 1, (args, result.stderr)
        line = one_line(result)
        assert line.startswith("tenant-sync: state.database_url (postgresql+psycopg://sync@")
        assert "pw-secret" not in result.stderr


def test_a_password_in_the_query_string_is_never_shown(tmp_path: Path) -> None:
    """redis-py and libpq take `?password=`: masked like the userinfo's password."""
    redis_port, pg_port = free_port(), free_port()
    config = config_with(
        tmp_path, redis_url=f"redis://127.0.0.1:{redis_port}/0?password=Pw-S3cret-q"
    )
    status = cli(config, "status")
    assert status.returncode == 1
    assert one_line(status).startswith(
        f"tenant-sync: state.redis_url (redis://127.0.0.1:{redis_port}/0?password=***): "
    )
    run = cli(config, "run", JOB, "--json")
    assert json.loads(run.stdout)["error"].startswith("state.redis_url (")
    assert "Pw-S3cret-q" not in status.stderr + run.stdout + run.stderr
    url = f"postgresql+psycopg://ts@127.0.0.1:{pg_port}/ts?sslpassword=x&password=PgS3cret"
    config = config_with(tmp_path, database_url=url)
    for args in (["status"], ["logs", JOB], ["db", "upgrade"], ["run", JOB, "--json"]):
        result = cli(config, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert "PgS3cret" not in result.stderr + result.stdout, args
        assert "/ts?sslpassword=***&password=***" in result.stderr, args


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+psycopg2://ts:pw@127.0.0.1:5499/ts", "the driver 'postgresql+psycopg2'"),
        ("sqlite:///", "an in-memory SQLite database would lose"),
        ("sqlite:///:memory:", "an in-memory SQLite database would lose"),
    ],
)
def test_a_database_url_that_cannot_work_is_refused_by_every_command(
    tmp_path: Path, url: str, problem: str
) -> None:
    config = config_with(tmp_path, database_url=url)
    for args in (["validate"], ["status"], ["logs", JOB], ["db", "upgrade"], ["run", JOB]):
        result = cli(config, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"state.database_url: {problem}" in result.stderr, (args, result.stderr)


def test_a_sqlite_directory_behind_a_dangling_symlink_is_a_bad_setting(tmp_path: Path) -> None:
    """The parent cannot be made (a symlink to a missing mount point): one line, exit 2."""
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "not-mounted")
    database = dangling / "state.db"
    config = config_with(tmp_path, database_url=f"sqlite:///{database}")
    commands = (
        ["status"],
        ["logs", JOB],
        ["logs", JOB, "--json"],
        ["audit"],
        ["db", "upgrade"],
        ["db", "purge-logs"],
        ["pause", JOB],
        ["run", JOB],
    )
    for args in commands:
        result = cli(config, *args)
        assert result.returncode == 2, (args, result.stderr)
        line = one_line(result)
        assert line.startswith(f"tenant-sync: state.database_url: the SQLite database {database}")
        assert "state_dir" not in line


def test_json_commands_print_an_object_with_the_error_when_they_cannot_start(
    tmp_path: Path,
) -> None:
    """A state store that cannot be used, a bad setting, a refused job: `--json` still gets
    an object with `error` (and the documented exit code)."""
    down = config_with(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    status = cli(down, "status", "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["error"].startswith("state.redis_url (")
    pg = config_with(
        tmp_path, database_url=f"postgresql+psycopg://ts:pw@127.0.0.1:{free_port()}/ts"
    )
    for args in (["logs", JOB, "--json"], ["audit", "--json"], ["pause", JOB, "--json"]):
        result = cli(pg, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert json.loads(result.stdout)["error"].startswith("state.database_url ("), args
    malformed = config_with(tmp_path, redis_url="localhost:6379")
    for args in (["run", JOB, "--json"], ["trigger", JOB, "--json"], ["status", "--json"]):
        result = cli(malformed, *args)
        assert result.returncode == 2, (args, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error.startswith("the configuration has problems: state.redis_url: "), args
    run = json.loads(cli(malformed, "run", JOB, "--json").stdout)
    assert set(run) >= RUN_KEYS
    assert run["status"] == "failed"
    unset = config_with(tmp_path)
    unset.write_text(
        unset.read_text().replace("${CONTOSO_SECRET:-contoso-secret}", "${TS_TEST_UNSET_SECRET}")
    )
    refused = cli(unset, "run", JOB, "--json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"] == (
        f"jobs.{JOB}: cannot run: its source tenant 'contoso' is unusable: "
        "tenants.contoso.client_secret: environment variable TS_TEST_UNSET_SECRET is not set"
    )
