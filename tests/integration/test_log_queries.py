"""The provisioning log as operators query it: schema, filters, formats, retention."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import SyncEnv, sync_world
from tests.support.world import GROUP, build_world_seed

pytestmark = pytest.mark.integration

ROW_FIELDS = {
    "changeId",
    "cycleId",
    "jobId",
    "sourceId",
    "sourceIdentity",
    "sourceMail",
    "targetId",
    "action",
    "status",
    "reason",
    "errorCode",
    "errorMessage",
    "steps",
    "modifiedProperties",
    "durationMs",
    "activityDateTime",
    "objectType",
}


def logs(env: SyncEnv, *args: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(
        env.cli("logs", "sync", "--format", "json", *args, check=True).stdout
    )
    return rows


def test_log_rows_have_entras_fields_and_can_be_found_by_id_upn_or_mail(sync_env: SyncEnv) -> None:
    env = sync_env
    run = env.run_json("--full")
    user = env.seed["tenants"][0]["users"][7]
    graph = env.source()
    graph.delete(f"/groups/{GROUP}/members/{user['id']}/$ref").raise_for_status()
    env.run_json()

    by_id = logs(env, "--user", user["id"])
    by_upn = logs(env, "--user", user["userPrincipalName"].upper())
    by_mail = logs(env, "--user", user["mail"])
    assert by_id == by_upn == by_mail
    # Newest first: the unassigned user leaves after it was created.
    assert [r["action"] for r in by_id] == ["delete", "create"]
    deleted, created = by_id
    assert set(created) == ROW_FIELDS
    assert created["cycleId"] == run["run_id"]
    assert created["sourceMail"] == user["mail"]
    assert deleted["sourceMail"] == user["mail"]  # named though no longer read from the source
    assert [s["name"] for s in created["steps"]] == [
        "import",
        "scoping",
        "matching",
        "processing",
        "export",
        "export",
    ]  # type: ignore[union-attr,index]
    # Decided mid-cycle, made at its end: the delete's row still tells every step.
    assert [(s["name"], s["status"]) for s in deleted["steps"]] == [  # type: ignore[union-attr,index]
        ("import", "success"),
        ("scoping", "skipped"),
        ("matching", "success"),
        ("processing", "success"),
        ("export", "success"),
    ]
    assert created["modifiedProperties"]["displayName"] == {"old": None, "new": user["displayName"]}  # type: ignore[index]
    assert "not assigned" in str(deleted["reason"])
    assert datetime.fromisoformat(str(created["activityDateTime"])).tzinfo is not None


def test_filters_by_action_status_and_time_and_csv(sync_env: SyncEnv) -> None:
    env = sync_env
    run = env.run_json("--full")
    creates = logs(env, "--action", "create", "--status", "success")
    assert len(creates) == run["counts"]["create"]
    assert logs(env, "--since", "1h", "--action", "create") == creates
    assert logs(env, "--until", "1h") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert logs(env, "--since", tomorrow) == []
    bad = env.cli("logs", "sync", "--since", "yesterday-ish")
    assert bad.returncode == 2
    assert "--since must be an ISO 8601 time or a duration" in bad.stderr
    table = list(
        csv.DictReader(
            io.StringIO(
                env.cli("logs", "sync", "--format", "csv", "--action", "create", check=True).stdout
            )
        )
    )
    assert len(table) == len(creates)
    assert set(table[0]) == ROW_FIELDS  # every field, nested ones as JSON
    assert json.loads(table[0]["steps"]) == creates[0]["steps"]
    assert table[0]["changeId"] == creates[0]["changeId"]
    as_json = json.loads(env.cli("logs", "sync", "--json", "--action", "create", check=True).stdout)
    assert as_json == creates
    # Actions and statuses as people type them: Entra's spelling, any case.
    assert logs(env, "--action", "CREATE", "--status", "Success") == creates


@pytest.fixture(scope="module")
def untouched_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnv]:
    """One world for the refused filters: a refused command changes nothing in it."""
    with sync_world(tmp_path_factory.mktemp("refused"), build_world_seed()) as env:
        yield env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--action", "bogus"], "unknown action 'bogus' (one of: create, update"),
        (["--status", "nope"], "unknown status 'nope' (one of: success, failure"),
        (["--run", "not-a-cycle"], "--run must be a cycle id"),
        (["--json", "--format", "csv"], "different formats"),
    ],
)
def test_a_bad_filter_is_refused_not_answered_with_nothing(
    untouched_env: SyncEnv, args: list[str], message: str
) -> None:
    refused = untouched_env.cli("logs", "sync", *args)
    assert refused.returncode == 2
    assert message in refused.stderr
    assert refused.stdout == ""


def test_old_rows_are_purged(sync_env: SyncEnv) -> None:
    env = sync_env
    env.run_json("--full")
    rows = len(logs(env))
    assert rows > 0
    kept = env.cli("db", "purge-logs", check=True)  # the default retention: 30 days
    assert "removed 0 provisioning-log rows" in kept.stdout
    assert len(logs(env)) == rows
    from worker.bootstrap import open_database
    from worker.config import load_config

    engine, ledger = open_database(load_config(env.config))
    try:
        assert ledger.purge_logs(datetime.now(UTC) + timedelta(seconds=1)) == rows
    finally:
        engine.dispose()
    assert logs(env) == []
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["lastExecution"] is not None  # runs are kept for the status
