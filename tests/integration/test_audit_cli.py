"""The audit trail as an operator sees it: CLI commands run in their own processes, then
`tenant-sync audit` says who did what to which job, in order, and how each ended."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from tests.conftest import SyncEnv
from worker.adapters.state.audit import AuditRow
from worker.adapters.state.sql import make_engine
from worker.service.audit import os_actor

pytestmark = pytest.mark.integration

UNKNOWN_USER = "0b1c0000-dead-4000-8000-00000000beef"


def trail(env: SyncEnv, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(env.cli("audit", *args, "--json", check=True).stdout)
    return rows


def test_every_operator_command_is_recorded_with_who_what_and_how_it_ended(
    sync_env: SyncEnv,
) -> None:
    env = sync_env
    user = env.seed["tenants"][0]["users"][3]

    env.cli("pause", "sync", check=True)
    assert env.cli("run", "sync", "--json").returncode == 1  # refused: paused
    env.cli("resume", "sync", check=True)
    assert env.run_json("--dry-run")["status"] == "success"
    good = env.config.read_text()
    env.config.write_text(good.replace("target-secret", "wrong-secret"))
    failed = env.cli("run", "sync", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status"] == "failed"
    env.config.write_text(good)
    task_id = json.loads(env.cli("trigger", "sync", "--json", check=True).stdout)["task_id"]
    assert env.cli("trigger", "sync", "--full").returncode == 1  # refused: already queued
    env.cli("provision", "sync", user["id"], check=True)
    env.cli("restart", "sync", "--scope", "quarantine", check=True)
    env.cli("allow-deletes", "sync", check=True)
    # Refused for bad input before anything was done: not in the trail.
    assert env.cli("restart", "sync", "--scope", "everything").returncode == 2
    assert env.cli("pause", "nope").returncode == 2
    assert env.cli("provision", "sync", UNKNOWN_USER).returncode == 2
    assert env.cli("provision", "sync", "not-a-guid").returncode == 2

    rows = trail(env)

    assert [(r["action"], r["result"]) for r in reversed(rows)] == [
        ("pause", "success"),
        ("run", "refused"),
        ("resume", "success"),
        ("run", "success"),
        ("run", "failure"),
        ("trigger", "success"),
        ("trigger", "refused"),
        ("provision", "success"),
        ("restart", "success"),
        ("allow-deletes", "success"),
    ]
    me = os_actor().name
    assert {(r["actor"], r["actorKind"], r["via"], r["job"]) for r in rows} == {
        (me, "os", "cli", "sync")
    }
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True)  # newest first
    times = [datetime.fromisoformat(r["at"]) for r in rows]
    assert times == sorted(times, reverse=True)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    allow, restart, provision, queued, trigger, failure, dry, _resume, paused, _pause = rows
    assert paused["message"] == "job 'sync' is paused (tenant-sync resume to go on)"
    assert paused["detail"] == {"mode": "auto", "dry_run": False}
    assert dry["detail"]["dry_run"] is True
    assert dry["detail"]["mode"] == "auto"
    assert dry["detail"]["run_id"]
    assert "invalid_client" in failure["message"]
    assert failure["detail"]["status"] == "failed"
    assert trigger["detail"] == {"mode": "auto", "task_id": task_id}
    assert queued["detail"] == {"mode": "full"}
    assert queued["message"] == f"a cycle of sync is already queued: {task_id}"
    assert provision["detail"]["user_id"] == user["id"]
    assert provision["detail"]["action"] == "create"
    assert restart["detail"] == {"scope": "quarantine"}
    assert allow["detail"] == {"held": 0}

    assert [r["action"] for r in trail(env, "sync", "--limit", "2")] == ["allow-deletes", "restart"]
    table = env.cli("audit", "sync", check=True).stdout
    assert "when (UTC)" in table
    assert f"{me} (os)" in table
    assert "a cycle of sync is already queued" in table
    unknown = env.cli("audit", "nope")
    assert unknown.returncode == 2
    assert "unknown job 'nope' (known jobs: sync)" in unknown.stderr
    bad_limit = env.cli("audit", "--limit", "0")
    assert bad_limit.returncode == 2
    assert "--limit must be at least 1" in bad_limit.stderr


def test_an_action_whose_entry_cannot_be_written_says_so(sync_env: SyncEnv) -> None:
    env = sync_env
    env.cli("status", "sync", check=True)  # creates and migrates the database
    with sqlite3.connect(env.state_dir / "state.db") as db:
        db.execute("DROP TABLE audit_log")

    paused = env.cli("pause", "sync")

    assert paused.returncode == 1
    assert "pause of sync ended success, but the audit trail could not record it" in paused.stderr
    assert "Traceback" not in paused.stderr
    status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
    assert status["code"] == "Paused"  # done, and the operator was told the trail missed it


def test_the_whole_trail_pages_through_every_entry(sync_env: SyncEnv) -> None:
    env = sync_env
    env.cli("pause", "sync", check=True)
    engine = make_engine(f"sqlite:///{env.state_dir / 'state.db'}")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "at": at + timedelta(seconds=i),
            "actor": "runbook",
            "actor_kind": "token",
            "via": "api",
            "action": "trigger",
            "job": "sync" if i % 2 else "gone",  # a job no longer in the config keeps its trail
            "result": "success",
            "detail": {"n": i},
            "message": "",
        }
        for i in range(1200)
    ]
    with engine.begin() as connection:
        connection.execute(insert(AuditRow), rows)
    engine.dispose()
    env.cli("resume", "sync", check=True)

    assert len(trail(env)) == 100
    everything = trail(env, "--all")
    assert len(everything) == 1202
    assert everything[0]["action"] == "resume"
    assert everything[-1]["action"] == "pause"
    assert len({r["id"] for r in everything}) == 1202
    of_sync = trail(env, "sync", "--all")
    assert len(of_sync) == 602
    assert [r["detail"]["n"] for r in of_sync[1:-1]] == list(range(1199, 0, -2))
