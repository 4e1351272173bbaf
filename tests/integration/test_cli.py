"""The command line as a user meets it: exit codes, messages, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def sandbox_ran(directory: Path) -> Path:
    """`directory` as the current directory of a user who has started the sandbox once: the
    shipped config's `ca_bundle` (relative: `.tenant-sync/sandbox-tls/ca.pem`) exists there."""
    ca = directory / ".tenant-sync" / "sandbox-tls" / "ca.pem"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_text("the sandbox's CA")
    return directory


def test_validate_accepts_the_shipped_configs(tmp_path: Path) -> None:
    result = cli(
        "validate",
        "--config",
        str(CONFIG / "tenant-sync.yaml"),
        "--json",
        cwd=sandbox_ran(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["valid"] is True
    assert summary["jobs"]["contoso-to-fabrikam"]["scope"] == "assigned"


def test_validate_lists_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "state: {state_dir: " + str(tmp_path / "state") + "}\n"
        "tenants:\n  a: {tenant_id: nope, client_id: 5e6f0000-0000-4000-8000-000000000001,"
        " certificate_path: " + str(tmp_path / "missing.pem") + "}\n"
        "jobs:\n  j: {source: a, target: b, schedule: {interval: 2s}}\n"
    )
    result = cli("validate", "--config", str(config))
    assert result.returncode == 2
    for expected in (
        "tenants.a.tenant_id: must be a GUID, got 'nope'",
        f"tenants.a.certificate_path: no such file '{tmp_path / 'missing.pem'}'",
        "jobs.j.target: unknown tenant 'b' (known: a)",
        "jobs.j.schedule.interval: must be at least 10s",
    ):
        assert expected in result.stderr
    assert not (tmp_path / "state").exists()
    run = cli("run", "j", "--config", str(config))
    assert run.returncode == 2
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "contoso-to-fabrikam"],
        ["run", "contoso-to-fabrikam", "--dry-run"],
        ["check", "contoso-to-fabrikam"],
        ["check", "contoso-to-fabrikam", "--fix", "--yes"],
        ["check", "--fix", "--yes"],
        ["provision", "contoso-to-fabrikam", "adele@contoso.onmicrosoft.com"],
    ],
)
def test_a_missing_ca_bundle_is_one_line_naming_the_setting_and_file(
    tmp_path: Path, args: list[str]
) -> None:
    """The shipped config before the sandbox ever ran: its `ca_bundle` does not exist yet."""
    result = cli(*args, "--config", str(CONFIG / "tenant-sync.yaml"), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "tenants.contoso.ca_bundle: no such file '.tenant-sync/sandbox-tls/ca.pem'" in lines[0]
    assert not (tmp_path / ".tenant-sync").exists()  # nothing made, no state opened


def test_validate_names_a_missing_ca_bundle(tmp_path: Path) -> None:
    result = cli("validate", "--config", str(CONFIG / "tenant-sync.yaml"), "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert json.loads(result.stdout)["problems"] == [
        f"tenants.{name}.ca_bundle: no such file '.tenant-sync/sandbox-tls/ca.pem'"
        for name in ("contoso", "fabrikam")
    ]


def test_expr_prints_values_and_rejects_bad_input() -> None:
    ok = cli(
        "expr",
        'Join(".", ToLower([givenName]), [surname])',
        "--attrs",
        '{"givenName": "John", "surname": "Doe"}',
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"value": "john.Doe"}
    ignored = cli("expr", "IgnoreFlowIfNullOrEmpty([mail])")
    assert json.loads(ignored.stdout) == {"ignored": True}
    bad = cli("expr", 'ToUpper("abc"')
    assert bad.returncode == 2
    assert "position" in bad.stderr
    assert bad.stdout == ""
    bad_attrs = cli("expr", "[x]", "--attrs", "{nope")
    assert bad_attrs.returncode == 2
    assert "--attrs is not valid JSON" in bad_attrs.stderr


def test_the_embedded_redis_can_be_inspected_and_stopped(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    text = (
        (CONFIG / "tenant-sync.yaml").read_text().replace(".tenant-sync", str(tmp_path / "state"))
    )
    config.write_text(text)
    assert "not running" in cli("redis", "status", "--config", str(config)).stdout
    upgrade = cli("db", "upgrade", "--config", str(config))
    assert upgrade.returncode == 0, upgrade.stderr
    assert "database upgraded" in upgrade.stdout
    assert "up to date" in cli("db", "upgrade", "--config", str(config)).stdout
    again = json.loads(cli("db", "upgrade", "--config", str(config), "--json").stdout)
    assert again["upgraded"] is False
    assert again["revision"] == again["before"]
    status = cli("status", "--config", str(config), "--json")  # starts the embedded server
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["code"] == "NotRun"
    assert "running at redis://127.0.0.1:" in cli("redis", "status", "--config", str(config)).stdout
    running = json.loads(cli("redis", "status", "--config", str(config), "--json").stdout)
    assert running["running"] is True
    assert running["url"].startswith("redis://127.0.0.1:")
    assert cli("redis", "stop", "--config", str(config)).stdout.strip() == "stopped"
    assert json.loads(cli("redis", "stop", "--config", str(config), "--json").stdout) == {
        "stopped": False
    }
    assert "not running" in cli("redis", "status", "--config", str(config)).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["expr", "ToUpper([x])", "--attrs", '{"x": "a"}'],
        ["validate"],
        ["sandbox", "serve", "--help"],
        ["demo", "--help"],
        ["redis", "status"],
    ],
)
def test_every_command_takes_config(args: list[str], tmp_path: Path) -> None:
    result = cli(*args, "--config", str(CONFIG / "tenant-sync.yaml"), cwd=sandbox_ran(tmp_path))
    assert "No such option" not in result.stderr
    assert result.returncode == 0, result.stderr


def test_validate_names_a_value_that_does_not_fit_its_attribute(tmp_path: Path) -> None:
    """`NO` (Norway) stays a string; `false` for a string attribute is named with its path."""
    text = (CONFIG / "tenant-sync.yaml").read_text()
    config = tmp_path / "c.yaml"
    norway = "\n".join(
        [
            "      filters:",
            "        - - {attribute: country, operator: EQUALS, value: NO}",
        ]
    )
    config.write_text(_with_filters(text, norway))
    ok = cli("validate", "--config", str(config), cwd=sandbox_ran(tmp_path))
    assert ok.returncode == 0, ok.stderr
    config.write_text(_with_filters(text, norway.replace("value: NO", "value: false")))
    bad = cli("validate", "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 2
    assert "scope.filters[0][0].value: false is a boolean, but country is Edm.String" in bad.stderr


def _with_filters(config_text: str, filters: str) -> str:
    """The shipped config with `filters` in its job's scope (after `users: assigned`)."""
    marker = "users: assigned\n"
    assert marker in config_text
    return config_text.replace(marker, marker + filters + "\n", 1)
