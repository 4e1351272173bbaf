"""Real cycles through the CLI: embedded Redis, SQLite, and the sandbox over HTTPS through MSAL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SyncEnv, sync_world
from tests.support.certs import self_signed
from tests.support.world import GROUP, RUN_JSON_COUNT_KEYS, TARGET, build_world_seed

pytestmark = pytest.mark.integration


def by_mail(users: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for user in users:
        if not user.get("deletedDateTime"):
            found.setdefault((user.get("mail") or "").lower(), []).append(user)
    return found


def source_user(env: SyncEnv, index: int) -> dict[str, Any]:
    users: list[dict[str, Any]] = env.seed["tenants"][0]["users"]
    return users[index]


def address(user: dict[str, Any]) -> str:
    return str(user.get("mail") or user["userPrincipalName"]).lower()


def test_full_then_incremental_cycles_keep_the_target_exact(sync_env: SyncEnv) -> None:
    env = sync_env
    members = env.seed["tenants"][0]["users"][:-1]
    in_scope = members[:-4]

    first = env.run_json("--full")

    assert first["mode"] == "full"
    assert first["dry_run"] is False
    assert set(first["counts"]) == RUN_JSON_COUNT_KEYS
    assert first["counts"]["create"] == len(in_scope) - 1
    assert first["counts"]["update"] == 1  # the B2B user invited by hand, matched and linked
    assert first["counts"]["failure"] == 0
    target = by_mail(env.target_users())
    assert len(target) == len(in_scope)
    for user in in_scope:
        (b2b,) = target[address(user)]
        assert b2b["displayName"] == user["displayName"]
        assert b2b["department"] == user["department"]
        assert b2b["employeeId"] == user["employeeId"]
        assert b2b["businessPhones"] == user["businessPhones"]
        assert b2b["showInAddressList"] is True
        assert b2b["userType"] == "Member"
        assert "#EXT#" in b2b["userPrincipalName"]
    hand_invited = target["user0@contoso.com"][0]
    assert hand_invited["id"] == env.seed["tenants"][1]["users"][0]["id"]

    writes = env.writes()
    quiet = env.run_json()
    assert quiet["mode"] == "incremental"
    assert sum(quiet["counts"].values()) == 0
    assert env.writes() == writes, "a cycle with no source changes wrote to the target"

    graph = env.source()
    renamed, unassigned, disabled, deleted = (source_user(env, i) for i in (2, 3, 4, 5))
    graph.patch(f"/users/{renamed['id']}", json={"displayName": "Renamed Two"}).raise_for_status()
    graph.delete(f"/groups/{GROUP}/members/{unassigned['id']}/$ref").raise_for_status()
    graph.patch(f"/users/{disabled['id']}", json={"accountEnabled": False}).raise_for_status()
    graph.delete(f"/users/{deleted['id']}").raise_for_status()
    new = graph.post(
        "/users",
        json={
            "accountEnabled": True,
            "displayName": "Newcomer",
            "mailNickname": "newcomer",
            "userPrincipalName": "newcomer@contoso.onmicrosoft.com",
            "mail": "newcomer@contoso.com",
            "department": "Sales",
            "passwordProfile": {"password": "x-Very-Long-1!"},
        },
    )
    new.raise_for_status()
    graph.post(
        f"/groups/{GROUP}/members/$ref",
        json={"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{new.json()['id']}"},
    ).raise_for_status()
    deleted_target_id = by_mail(env.target_users())[address(deleted)][0]["id"]

    changed = env.run_json()

    assert changed["mode"] == "incremental"
    counts = changed["counts"]
    # the rename and the disable are updates
    assert (counts["create"], counts["update"], counts["disable"], counts["delete"]) == (1, 2, 0, 2)
    assert counts["failure"] == 0
    target = by_mail(env.target_users())
    assert target[address(renamed)][0]["displayName"] == "Renamed Two"
    assert target[address(disabled)][0]["accountEnabled"] is False
    assert address(unassigned) not in target
    assert address(deleted) not in target
    assert len(target["newcomer@contoso.com"]) == 1
    soft_deleted = {
        u["id"] for u in env.target_users(include_deleted=True) if u.get("deletedDateTime")
    }
    assert deleted_target_id in soft_deleted

    graph.post(f"/directory/deletedItems/{deleted['id']}/restore").raise_for_status()
    restored = env.run_json()

    assert restored["counts"]["restore"] == 1
    target = by_mail(env.target_users())
    assert [u["id"] for u in target[address(deleted)]] == [deleted_target_id]


@pytest.mark.world(
    job={
        "scope": {
            "users": "all",
            "filters": [
                [{"attribute": "department", "operator": "IS IN", "value": ["Sales", "Legal"]}],
                [
                    {"attribute": "jobTitle", "operator": "STARTS_WITH", "value": "Anal"},
                    {"attribute": "department", "operator": "EQUALS", "value": "Finance"},
                ],
            ],
        },
        "mappings": [
            {"target": "displayName", "source": "displayName"},
            {"target": "jobTitle", "source": "department"},
            {"target": "companyName", "constant": "Contoso Ltd"},
            {"target": "mail", "source": "mail", "match": 1},
        ],
    }
)
def test_scope_all_with_filters_and_custom_mappings(sync_env: SyncEnv) -> None:
    env = sync_env
    members = env.seed["tenants"][0]["users"][:-1]
    expected = [
        u
        for u in members
        if u["department"] in ("Sales", "Legal")
        or (u["jobTitle"].startswith("Anal") and u["department"] == "Finance")
    ]

    preview = env.run_json("--full", "--dry-run")
    planned = {row["sourceId"]: row for row in preview["planned"]}
    outside = next(u for u in members if u["department"] == "Engineering")
    assert planned[outside["id"]]["status"] == "skipped"
    assert "filter group 1: department IS IN" in planned[outside["id"]]["reason"]
    assert (
        "filter group 2: jobTitle STARTS_WITH 'Anal' is false" in planned[outside["id"]]["reason"]
    )
    actions = {u["userPrincipalName"]: planned[u["id"]]["action"] for u in expected}
    assert actions.pop("user0@contoso.onmicrosoft.com") == "update"  # the hand-invited one
    assert set(actions.values()) == {"create"}
    assert env.writes() == 0

    result = env.run_json("--full")

    assert result["counts"]["failure"] == 0
    assert result["counts"]["create"] == preview["counts"]["create"]
    target = by_mail(env.target_users())
    assert sorted(target) == sorted(address(u) for u in expected)
    for user in expected:
        (b2b,) = target[address(user)]
        assert b2b["jobTitle"] == user["department"]
        assert b2b["companyName"] == "Contoso Ltd"
        assert b2b.get("employeeId") is None  # not mapped here


def test_dry_run_writes_nothing_anywhere(sync_env: SyncEnv) -> None:
    env = sync_env
    before = env.target_users()

    result = env.run_json("--dry-run")

    assert result["dry_run"] is True
    assert result["counts"]["create"] > 0
    assert env.writes() == 0
    assert env.target_users() == before
    status = env.cli("status", "sync", "--json", check=True)
    assert '"lastExecution": null' in status.stdout


def test_cli_reports_bad_input_with_exit_code_2(sync_env: SyncEnv) -> None:
    env = sync_env
    unknown = env.cli("run", "nope")
    assert unknown.returncode == 2
    assert "unknown job 'nope'" in unknown.stderr
    assert env.writes() == 0


def test_status_and_logs_after_a_cycle(sync_env: SyncEnv) -> None:
    env = sync_env
    run = env.run_json("--full")

    status = env.cli("status", "sync", "--json", check=True)
    assert f'"activityIdentifier": "{run["run_id"]}"' in status.stdout
    assert '"state": "Succeeded"' in status.stdout
    logs = env.cli(
        "logs", "sync", "--run", run["run_id"], "--action", "create", "--format", "csv", check=True
    )
    rows = list(csv.DictReader(io.StringIO(logs.stdout)))
    assert len(rows) == run["counts"]["create"]
    assert {r["cycleId"] for r in rows} == {run["run_id"]}
    assert {r["action"] for r in rows} == {"create"}


def test_certificate_credentials_sign_in_through_msal(tmp_path: Path) -> None:
    key_pem, cert_pem, _ = self_signed()
    seed = build_world_seed(users=6, prior_b2b=False)
    seed["tenants"][1]["clients"] = [{"client_id": TARGET.client_id, "certificate": cert_pem}]
    pem_file = tmp_path / "fabrikam.pem"
    pem_file.write_text(cert_pem + key_pem)
    with sync_world(tmp_path, seed) as env:
        text = yaml.safe_load(env.config.read_text())
        del text["tenants"]["fabrikam"]["client_secret"]
        text["tenants"]["fabrikam"]["certificate_path"] = str(pem_file)
        env.config.write_text(yaml.safe_dump(text))
        result = env.run_json("--full")
        assert result["counts"]["create"] == 2  # 6 members, the last 4 outside the group
        assert len(env.target_users()) == 2

        # the wrong certificate is refused: the cycle fails, nothing is written
        other_key, other_cert, _ = self_signed()
        pem_file.write_text(other_cert + other_key)
        failed = env.cli("run", "sync", "--full", "--json")
        assert failed.returncode == 1
        assert json.loads(failed.stdout)["status"] == "failed"
        assert "could not sign in" in json.loads(failed.stdout)["error"]


def test_a_full_cycle_restores_target_users_deleted_by_hand(sync_env: SyncEnv) -> None:
    env = sync_env
    env.run_json("--full")
    victim = next(u for u in env.target_users() if u.get("mail") == "user3@contoso.com")
    target = env.sandbox.graph(TARGET.tenant_id, TARGET.client_id, TARGET.secret)
    target.delete(f"/users/{victim['id']}").raise_for_status()

    assert sum(env.run_json()["counts"].values()) == 0  # nothing changed in the source
    repaired = env.run_json("--full")

    assert repaired["counts"]["restore"] == 1
    assert repaired["counts"]["create"] == 0
    live = by_mail(env.target_users())
    assert [u["id"] for u in live["user3@contoso.com"]] == [victim["id"]]


def test_nested_groups_reach_members_of_member_groups(tmp_path: Path) -> None:
    seed = build_world_seed(users=10, prior_b2b=False)
    source = seed["tenants"][0]
    users = source["users"]
    inner = {
        "id": "44444444-4444-4444-8444-444444444444",
        "displayName": "Inner",
        "members": [users[8]["id"]],
    }
    source["groups"][0]["members"].append(inner["id"])
    source["groups"].append(inner)
    job = {"scope": {"users": "assigned", "groups": [GROUP], "nested_groups": True}}
    with sync_world(tmp_path, seed, job) as env:
        first = env.run_json("--full")
        assert first["counts"]["create"] == 6 + 1  # 6 direct members, 1 through Inner
        graph = env.source()
        graph.post(
            f"/groups/{inner['id']}/members/$ref",
            json={
                "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{users[9]['id']}"
            },
        ).raise_for_status()
        graph.delete(f"/groups/{inner['id']}/members/{users[8]['id']}/$ref").raise_for_status()

        second = env.run_json()

        assert (second["counts"]["create"], second["counts"]["delete"]) == (1, 1)
        live = by_mail(env.target_users())
        assert address(users[9]) in live
        assert address(users[8]) not in live


# A dry run is the real cycle wired to adapters that keep their writes ----------------------------


def _generated_seed(users: int) -> dict[str, Any]:
    """`tenant-sync sandbox seed --users N`, signed in with the test world's clients."""
    from tenant_sync_sandbox.generate import Shape, generate
    from tests.support.world import SOURCE

    seed = generate(Shape(users=users, guests=10, random_seed=12))
    for tenant, info in zip(seed["tenants"], (SOURCE, TARGET), strict=True):
        tenant["clients"] = [{"client_id": info.client_id, "client_secret": info.secret}]
    # About behaviour, not pace: Graph's throttling is out of the way (make bench measures it).
    seed["limits"] = {
        "write_per_150s": 10_000_000,
        "invitations_per_5s": 1_000_000,
        "resource_units_per_10s": 10_000_000,
    }
    return seed


def _state(env: SyncEnv, runtime: Any) -> tuple[list[str], Any, list[dict[str, Any]]]:
    """Everything a cycle may change: the SQL state, the Redis cursor and live progress, the
    target's users."""
    import sqlite3

    with sqlite3.connect(env.state_dir / "state.db") as db:
        # The audit trail records the operator's `run --dry-run` itself (docs/audit.md).
        dump = [line for line in db.iterdump() if "audit" not in line]
    # The job lock is taken and given back by a dry run as by any cycle; the rest must not move.
    redis_values = {
        key: runtime.redis.dump(key)
        for key in runtime.redis.keys("tenant-sync:job:sync:*")
        if not key.endswith((b":lock", b":fence"))
    }
    return dump, redis_values, env.target_users(True)


def _actions(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted((r["sourceId"], r["action"], r["status"]) for r in rows if r["action"] != "skip")


def test_a_dry_run_plans_what_the_real_run_does_on_a_large_tenant(tmp_path: Path) -> None:
    from tenant_sync_sandbox.generate import SYNC_SCOPE
    from worker.bootstrap import open_runtime
    from worker.config import load_config

    seed = _generated_seed(2000)
    job = {"scope": {"users": "assigned", "groups": [SYNC_SCOPE]}}
    with sync_world(tmp_path, seed, job) as env:
        first = env.run_json("--full")
        assert first["counts"]["create"] > 1500
        graph = env.source()
        scope = set(
            next(g for g in seed["tenants"][0]["groups"] if g["id"] == SYNC_SCOPE)["members"]
        )
        members = [
            u for u in seed["tenants"][0]["users"] if u["id"] in scope and u["accountEnabled"]
        ]
        returning = members[:25]
        for user in returning:  # soft-deleted in the target now, restored in the source later
            graph.delete(f"/users/{user['id']}").raise_for_status()
        assert env.run_json()["counts"]["delete"] == len(returning)
        for user in returning:
            graph.post(f"/directory/deletedItems/{user['id']}/restore").raise_for_status()
        for user in members[25:175]:
            graph.patch(f"/users/{user['id']}", json={"jobTitle": "Changed"}).raise_for_status()
        for user in members[175:235]:
            graph.delete(f"/users/{user['id']}").raise_for_status()
        for user in members[235:265]:
            graph.delete(f"/groups/{SYNC_SCOPE}/members/{user['id']}/$ref").raise_for_status()
        for i in range(60):
            created = graph.post(
                "/users",
                json={
                    "accountEnabled": True,
                    "displayName": f"New Person {i}",
                    "mailNickname": f"newperson{i}",
                    "userPrincipalName": f"newperson{i}@contoso.onmicrosoft.com",
                    "mail": f"newperson{i}@contoso.com",
                    "passwordProfile": {"password": "Passw0rd!Passw0rd!"},
                },
            )
            created.raise_for_status()
            graph.post(
                f"/groups/{SYNC_SCOPE}/members/$ref",
                json={"@odata.id": f"{env.sandbox.url}/v1.0/users/{created.json()['id']}"},
            ).raise_for_status()
        runtime = open_runtime(load_config(env.config), migrate=False)
        try:
            before = _state(env, runtime)
            shown = env.cli("run", "sync", "--dry-run", check=True).stdout

            preview = env.run_json("--dry-run")

            after = _state(env, runtime)
            assert set(after[0]) ^ set(before[0]) == set(), "a dry run changed the SQL state"
            assert after == before, "a dry run changed Redis or the target"
            assert "would invite" in shown
            assert "invited;" not in shown
            real = env.run_json()
            done = runtime.ledger.logs("sync", run_id=real["run_id"])
        finally:
            runtime.close()
        counts = {k: v for k, v in real["counts"].items() if v}
        assert counts == {"create": 60, "update": 150, "delete": 90, "restore": 25}
        assert preview["counts"] == real["counts"]
        assert _actions(preview["planned"]) == _actions(done)
        full_preview = env.run_json("--full", "--dry-run")
        full = env.run_json("--full")
        assert full["counts"] == full_preview["counts"]


def test_a_cycle_run_by_the_worker_task_logs_its_end_once(sync_env: SyncEnv) -> None:
    from structlog.testing import capture_logs

    from worker import tasks
    from worker.celery_app import create_celery
    from worker.config import load_config

    env = sync_env
    env.run_json()  # the state database, migrated as a worker expects it
    celery = create_celery(load_config(env.config))
    try:
        with capture_logs() as logs:
            answer = celery.tasks["tenant_sync.run_job"].apply(
                args=["sync"], kwargs={"mode": "full", "trigger": "manual"}
            )
            result = answer.get()
    finally:
        if tasks._runtime is not None:
            tasks._runtime.close()
            tasks._runtime = None

    assert result["status"] == "success"
    ends = [e for e in logs if e["event"] == "cycle finished"]
    assert len(ends) == 1, ends
    assert (ends[0]["status"], ends[0]["mode"]) == ("success", "full")


def test_two_source_users_sharing_a_mail_are_not_linked_to_one_guest(tmp_path: Path) -> None:
    # Both are invited in the same round of the same page; the sandbox, as Graph does, answers
    # the second invitation of an address with the first one's user.
    seed = build_world_seed(users=8)
    users = seed["tenants"][0]["users"]
    users[3]["mail"] = users[2]["mail"]
    sharing = {users[2]["id"]: users[2], users[3]["id"]: users[3]}
    with sync_world(tmp_path, seed) as env:
        first = env.run_json("--full")

        assert first["counts"]["failure"] == 1
        (guest,) = by_mail(env.target_users())["user2@contoso.com"]
        (winner,) = [u for u in sharing.values() if u["displayName"] == guest["displayName"]]
        (loser,) = [u for u in sharing.values() if u is not winner]
        assert guest["jobTitle"] == winner["jobTitle"] != loser["jobTitle"]
        logs = json.loads(env.cli("logs", "sync", "--json", "--all", check=True).stdout)
        (failed,) = [r for r in logs if r["sourceId"] == loser["id"]]
        assert (failed["status"], failed["errorCode"]) == ("failure", "AmbiguousMatch")
        assert f"target user {guest['id']} is already linked to source user" in failed["reason"]
        assert winner["id"] in failed["reason"]
        assert [r["targetId"] for r in logs if r["status"] == "success"].count(guest["id"]) == 1
        status = json.loads(env.cli("status", "sync", "--json", check=True).stdout)
        assert status["escrows"] == 1

        second = env.run_json("--full")

        assert second["counts"]["failure"] == 1
        (again,) = by_mail(env.target_users())["user2@contoso.com"]
        assert (again["id"], again["displayName"], again["jobTitle"]) == (
            guest["id"],
            winner["displayName"],
            winner["jobTitle"],
        )
        logs = json.loads(env.cli("logs", "sync", "--json", "--all", check=True).stdout)
        assert not [r for r in logs if r["sourceId"] == loser["id"] and r["status"] != "failure"]
