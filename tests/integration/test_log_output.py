"""What a real cycle writes to its log: JSON lines with the ids bound, never a secret or token."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import SyncEnv
from tests.support.world import SOURCE, TARGET

pytestmark = pytest.mark.integration


def test_cycle_logs_carry_ids_and_no_secret_at_debug_level(sync_env: SyncEnv) -> None:
    env = sync_env
    config = yaml.safe_load(env.config.read_text())
    config["logging"] = {"format": "json", "level": "DEBUG"}
    env.config.write_text(yaml.safe_dump(config))

    result = env.cli("run", "sync", "--full", "--json", check=True)

    summary = json.loads(result.stdout)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events, result.stderr[:2000]
    started = next(e for e in events if e["event"] == "cycle started")
    finished = next(e for e in events if e["event"] == "cycle finished")
    assert started["run_id"] == finished["run_id"] == summary["run_id"]
    assert started["job_id"] == "sync"
    exported = [e for e in events if e["event"] == "object exported"]
    assert len(exported) == summary["counts"]["create"] + summary["counts"]["update"]
    assert all(e["run_id"] == summary["run_id"] and e["source_id"] for e in exported)
    everything = result.stdout + result.stderr
    for secret in (SOURCE.secret, TARGET.secret):
        assert secret not in everything
    assert "eyJ" not in everything  # no JWT, whatever the field
    assert "Bearer " not in everything
