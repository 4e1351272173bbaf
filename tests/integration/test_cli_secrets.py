"""A tenant whose secret's environment variable is unset stops only the jobs that use it."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import SyncEnv

pytestmark = pytest.mark.integration

VARIABLE = "TENANT_SYNC_TEST_NORTHWIND_SECRET_UNSET"


def test_only_the_jobs_of_the_tenant_without_its_secret_fail(sync_env: SyncEnv) -> None:
    env = sync_env
    config = yaml.safe_load(env.config.read_text())
    config["tenants"]["northwind"] = {
        **config["tenants"]["fabrikam"],
        "tenant_id": "44444444-4444-4444-8444-444444444444",
        "client_secret": "${" + VARIABLE + "}",
    }
    config["jobs"]["to-northwind"] = {**config["jobs"]["sync"], "target": "northwind"}
    env.config.write_text(yaml.safe_dump(config))

    assert env.run_json()["status"] == "success"  # sync does not need northwind
    assert env.cli("status", check=True).returncode == 0
    refused = env.cli("run", "to-northwind")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "tenant-sync: jobs.to-northwind: cannot run: its target tenant 'northwind' is unusable: "
        f"tenants.northwind.client_secret: environment variable {VARIABLE} is not set"
    )
    validate = env.cli("validate", "--json")
    assert validate.returncode == 2
    assert json.loads(validate.stdout)["problems"] == [
        f"tenants.northwind.client_secret: environment variable {VARIABLE} is not set"
    ]


def test_a_job_without_its_tenant_secret_can_be_inspected_and_paused(sync_env: SyncEnv) -> None:
    """Only what talks to Graph needs the secret; `status` says why the job cannot run."""
    env = sync_env
    config = yaml.safe_load(env.config.read_text())
    config["tenants"]["northwind"] = {
        **config["tenants"]["fabrikam"],
        "tenant_id": "44444444-4444-4444-8444-444444444444",
        "client_secret": "${" + VARIABLE + "}",
    }
    config["jobs"]["to-northwind"] = {**config["jobs"]["sync"], "target": "northwind"}
    env.config.write_text(yaml.safe_dump(config))
    blocked = (
        "cannot run: its target tenant 'northwind' is unusable: "
        f"tenants.northwind.client_secret: environment variable {VARIABLE} is not set"
    )
    for args in (
        ["logs", "to-northwind"],
        ["status", "to-northwind"],
        ["audit", "to-northwind"],
        ["pause", "to-northwind"],
        ["resume", "to-northwind"],
        ["restart", "to-northwind", "--scope", "watermark"],
        ["allow-deletes", "to-northwind"],
    ):
        result = env.cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    for args in (
        ["run", "to-northwind"],
        ["trigger", "to-northwind"],
        ["provision", "to-northwind", "someone@contoso.com"],
        ["check", "to-northwind"],
    ):
        result = env.cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip() == f"tenant-sync: jobs.to-northwind: {blocked}", args
    statuses = {s["job"]: s for s in json.loads(env.cli("status", "--json", check=True).stdout)}
    assert statuses["to-northwind"]["error"] == {"message": blocked}
    assert statuses["sync"]["error"] is None
    table = env.cli("status", check=True).stdout
    assert f"to-northwind: {blocked}" in table
    audit = json.loads(env.cli("audit", "to-northwind", "--json", check=True).stdout)
    assert [e["action"] for e in audit][:2] == ["allow-deletes", "restart"]


def test_an_unset_variable_outside_tenants_stops_only_what_needs_it(sync_env: SyncEnv) -> None:
    """The console's secret, a static token's digest, a webhook's URL: a worker host runs
    without them; `serve` refuses naming them, and `validate` lists every one."""
    env = sync_env
    config = yaml.safe_load(env.config.read_text())
    config["api"] = {
        "auth": {
            "client_secret": "${TENANT_SYNC_TEST_CONSOLE_SECRET_UNSET}",
            "tokens": [
                {
                    "name": "ci",
                    "sha256": "${TENANT_SYNC_TEST_TOKEN_SHA_UNSET}",
                    "role": "TenantSync.Read",
                }
            ],
        }
    }
    config["notifications"] = [{"kind": "webhook", "url": "${TENANT_SYNC_TEST_HOOK_UNSET}"}]
    env.config.write_text(yaml.safe_dump(config))
    problems = [
        "api.auth.client_secret: environment variable TENANT_SYNC_TEST_CONSOLE_SECRET_UNSET "
        "is not set",
        "api.auth.tokens[0].sha256: environment variable TENANT_SYNC_TEST_TOKEN_SHA_UNSET "
        "is not set",
        "notifications[0].url: environment variable TENANT_SYNC_TEST_HOOK_UNSET is not set",
    ]

    run = env.cli("run", "sync", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["status"] == "success"
    assert "notifications[0]" in run.stderr  # the notifier is named unusable at delivery
    assert env.cli("status", check=True).returncode == 0
    validate = env.cli("validate", "--json")
    assert validate.returncode == 2
    assert json.loads(validate.stdout)["problems"] == problems
    serve = env.cli("serve", "--port", "0")
    assert serve.returncode == 2
    assert serve.stderr.strip() == "tenant-sync: serve cannot start: " + "; ".join(problems[:2])
