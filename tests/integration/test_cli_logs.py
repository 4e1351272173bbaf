"""`tenant-sync logs`: newest first, the newest 100 rows by default, `--all` for every row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SyncEnv

pytestmark = pytest.mark.integration


def rows(env: SyncEnv, *args: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        env.cli("logs", "sync", "--json", *args, check=True).stdout
    )
    return data


@pytest.mark.world(users=130)
def test_logs_show_the_newest_rows_first_100_unless_asked(sync_env: SyncEnv) -> None:
    first = sync_env.run_json("--full")
    second = sync_env.run_json("--full")
    everything = rows(sync_env, "--all")
    # The first cycle logs a row per user it created; the second, with nothing to change,
    # logs the skips that say something (out of scope) but no row per unchanged user.
    created = first["counts"]["create"]
    assert created > 100
    assert created < len(everything) < created + second["counts"]["skip"]
    times = [r["activityDateTime"] for r in everything]
    assert times == sorted(times, reverse=True)
    assert everything[0]["cycleId"] == second["run_id"]
    assert everything[-1]["cycleId"] == first["run_id"]
    default = rows(sync_env)
    assert default == everything[:100]
    assert rows(sync_env, "--limit", "3") == everything[:3]
    # Filters apply before the limit.
    of_first = rows(sync_env, "--run", first["run_id"], "--limit", "2")
    assert [r["cycleId"] for r in of_first] == [first["run_id"]] * 2
    table = sync_env.cli("logs", "sync", check=True).stdout
    assert table.count(" User ") <= 100
    assert table.rstrip().endswith("showing the newest 100 rows; --all for every one")
    assert "showing the newest" not in sync_env.cli("logs", "sync", "--all", check=True).stdout
    assert "showing the newest" not in sync_env.cli("logs", "sync", "--limit", "999").stdout
    both = sync_env.cli("logs", "sync", "--limit", "5", "--all")
    assert both.returncode == 2
    assert both.stderr.strip() == (
        "tenant-sync: --limit and --all ask for different row counts; give one"
    )
    help_text = sync_env.cli("logs", "--help", check=True).stdout
    assert "--all" in help_text
    assert "newest" in help_text
