"""`tenant-sync trigger` on a paused job: refused with the reason, not a task id nobody runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SyncEnv

pytestmark = pytest.mark.integration


def test_trigger_refuses_a_paused_job_and_says_how_to_resume(sync_env: SyncEnv) -> None:
    env = sync_env
    env.cli("pause", "sync", check=True)
    refused = env.cli("trigger", "sync")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.strip() == (
        "tenant-sync: sync is paused: no cycle runs until `tenant-sync resume sync`"
    )
    as_json = env.cli("trigger", "sync", "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["status"] == "paused"
    audit = json.loads(env.cli("audit", "sync", "--json", check=True).stdout)
    assert audit[0]["action"] == "trigger"
    assert audit[0]["result"] == "refused"
    env.cli("resume", "sync", check=True)
    queued = env.cli("trigger", "sync", "--json", check=True)
    assert json.loads(queued.stdout)["task_id"]
