"""`tenant-sync demo`: a real sync between two sandbox tenants, through Celery, Redis and SQL.

It starts the embedded Redis server, the sandbox with two seeded tenants and a Celery worker
process; runs a full cycle through Celery; changes the source over the sandbox's Graph API
(rename, move out of scope, unassign, disable, delete, add); runs an incremental cycle; restores
the deleted user and runs again; then checks the target against what scope and mappings imply.
Then a second part (`organization.py`): three tenants in an `organization:` mesh, onboarded
by `check --fix`, with a provisioned group (a nested group flattened into it) and a manager chain.
Everything it starts is stopped again; its state stays in the work directory for inspection.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from tenant_sync_sandbox.default_seed import operator_service_apps
from worker.adapters.graph.client import GraphClient
from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.bootstrap import graph_client
from worker.config import load_config

JOB = "contoso-to-fabrikam"
SOURCE_TENANT = "0b1c7a3e-0000-4000-8000-00000000c0de"
TARGET_TENANT = "fab71ca0-0000-4000-8000-00000000fab0"
SOURCE_CLIENT = "5e6f0000-0000-4000-8000-000000000001"
TARGET_CLIENT = "5e6f0000-0000-4000-8000-000000000002"
SYNC_GROUP = "9a0b0000-0000-4000-8000-00000000a001"
DEPARTMENTS = ("Sales", "Engineering", "Finance", "Marketing", "Support", "Legal")
GIVEN = (
    "Ann",
    "Ben",
    "Chloé",
    "Dmitri",
    "Eva",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Oskar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
)
FAMILY = (
    "Adams",
    "Björk",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "López",
    "Müller",
    "Novak",
    "O'Brien",
    "Petrov",
    "Rossi",
    "Silva",
)
DEADLINE_S = 120.0


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_seed(users: int = 240, seed: int = 7) -> dict[str, Any]:
    """Two tenants: a source with `users` members (most in the Sync group), guests and a
    contractor, and a target that already holds one of them as a B2B user."""
    rng = random.Random(seed)
    source_users: list[dict[str, Any]] = []
    for i in range(users):
        given, family = GIVEN[i % len(GIVEN)], FAMILY[(i // len(GIVEN)) % len(FAMILY)]
        alias = f"{given}.{family}{i}".lower().replace("'", "")
        alias = alias.encode("ascii", "ignore").decode() or f"user{i}"
        source_users.append(
            {
                "id": _uid(rng),
                "userPrincipalName": f"{alias}@contoso.onmicrosoft.com",
                "mail": f"{alias}@contoso.com",
                "mailNickname": alias,
                "displayName": f"{given} {family}",
                "givenName": given,
                "surname": family,
                "jobTitle": rng.choice(("Analyst", "Engineer", "Manager", "Director", None)),
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "companyName": "Contoso",
                "employeeId": f"E{10000 + i}",
                "city": rng.choice(("Oslo", "Lyon", "Porto", "Graz")),
                "country": rng.choice(("NO", "FR", "PT", "AT")),
                "businessPhones": [f"+47 2200 {1000 + i}"],
                "accountEnabled": True,
                "userType": "Member",
            }
        )
    # Two members without mail (the invitation falls back to the UPN) and one never assigned.
    source_users[5]["mail"] = None
    source_users[6]["mail"] = None
    guests = [
        {
            "id": _uid(rng),
            "userPrincipalName": f"guest{i}_example.com#EXT#@contoso.onmicrosoft.com",
            "mail": f"guest{i}@example.com",
            "displayName": f"Guest {i}",
            "userType": "Guest",
            "accountEnabled": True,
        }
        for i in range(3)
    ]
    assigned = [u["id"] for u in source_users[:-10]] + [g["id"] for g in guests]
    existing = source_users[0]
    address = str(existing["mail"])
    prior_b2b = {
        "id": _uid(rng),
        "userPrincipalName": address.replace("@", "_") + "#EXT#@fabrikam.onmicrosoft.com",
        "mail": address,
        "otherMails": [address],
        "displayName": f"{existing['displayName']} (invited by hand)",
        "userType": "Guest",
        "creationType": "Invitation",
        "externalUserState": "Accepted",
        "accountEnabled": True,
    }
    # Who signs in to `tenant-sync serve` (docs/operator-service.md, "Who may call"): not
    # members of the Sync group.
    operator = operator_service_apps("contoso.onmicrosoft.com")
    return {
        "tenants": [
            {
                "tenant_id": SOURCE_TENANT,
                "domain": "contoso.onmicrosoft.com",
                "clients": [
                    {"client_id": SOURCE_CLIENT, "client_secret": "contoso-demo-secret"},
                    *operator["clients"],
                ],
                "users": source_users + guests + operator["users"],
                "apis": operator["apis"],
                "groups": [
                    {"id": SYNC_GROUP, "displayName": "Sync to Fabrikam", "members": assigned}
                ],
                "cross_tenant_access": {
                    "partners": [
                        {
                            "tenant_id": TARGET_TENANT,
                            "inbound_auto_redeem": False,
                            "outbound_auto_redeem": True,
                            "is_sync_allowed": False,
                        }
                    ]
                },
            },
            {
                "tenant_id": TARGET_TENANT,
                "domain": "fabrikam.onmicrosoft.com",
                "clients": [{"client_id": TARGET_CLIENT, "client_secret": "fabrikam-demo-secret"}],
                "users": [prior_b2b],
                "groups": [],
                "cross_tenant_access": {
                    "partners": [
                        {
                            "tenant_id": SOURCE_TENANT,
                            "inbound_auto_redeem": True,
                            "outbound_auto_redeem": False,
                            "is_sync_allowed": True,
                        }
                    ]
                },
            },
        ],
        # Ten times Graph's published quotas (the config says the same), so the demo never waits.
        "limits": {
            "write_per_150s": 30_000,
            "resource_units_per_10s": 80_000,
            "invitations_per_5s": 1_500,
        },
        "faults": {"error_rate": 0.0, "latency_ms": 0},
    }


def build_config(workdir: Path, url: str, ca: Path) -> str:
    state = workdir / "state"
    return f"""# Written by `tenant-sync demo`: the sandbox's two tenants and one job between them.
state:
  redis_url: embedded
  database_url: sqlite:///{state / "state.db"}
  state_dir: {state}
logging:
  format: json
tenants:
  contoso:
    tenant_id: {SOURCE_TENANT}
    domain: contoso.onmicrosoft.com
    client_id: {SOURCE_CLIENT}
    client_secret: ${{CONTOSO_SECRET:-contoso-demo-secret}}
    authority_host: {url}
    graph_url: {url}
    ca_bundle: {ca}
  fabrikam:
    tenant_id: {TARGET_TENANT}
    domain: fabrikam.onmicrosoft.com
    client_id: {TARGET_CLIENT}
    client_secret: ${{FABRIKAM_SECRET:-fabrikam-demo-secret}}
    authority_host: {url}
    graph_url: {url}
    ca_bundle: {ca}
    limits: {{write_per_150s: 30000, invitations_per_5s: 1500}}   # the sandbox's: 10x Graph's
jobs:
  {JOB}:
    source: contoso
    target: fabrikam
    schedule: {{interval: 40m}}
    scope:
      users: assigned
      groups: [{SYNC_GROUP}]
      filters:
        - - {{attribute: department, operator: NOT EQUALS, value: Contractors}}
    user_type: Member
    deprovision: soft_delete
"""


def wait_for(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll `check` until it returns something truthy, or fail after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def background(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the block, stopped with SIGTERM (then SIGKILL) afterwards."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def sandbox_process(seed_file: Path, tls: Path, log: Path) -> Iterator[tuple[str, Path]]:
    """The sandbox serving `seed_file` on a free port for the block: (its URL, its CA file)."""
    (tls / "sandbox.json").unlink(missing_ok=True)  # a previous run's address is no answer
    command = [sys.executable, "-m", "worker", "sandbox", "serve", "--seed", str(seed_file)]
    with background([*command, "--port", "0", "--tls-dir", str(tls)], log):
        info = wait_for(lambda: read_json(tls / "sandbox.json"), "the sandbox to listen")
        yield info["url"], Path(info["ca"])


class Demo:
    def __init__(self, workdir: Path, users: int, console: Console) -> None:
        self.workdir = workdir.resolve()
        self.users = users
        self.console = console
        self.seed = build_seed(users)

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def run(self) -> int:
        if self.workdir.exists():
            EmbeddedRedis(self.workdir / "state").stop()
            shutil.rmtree(self.workdir)
        (self.workdir / "state").mkdir(parents=True)
        seed_file = self.workdir / "seed.json"
        seed_file.write_text(json.dumps(self.seed, indent=1))
        redis = EmbeddedRedis(self.workdir / "state")
        with ExitStack() as stack:
            stack.callback(redis.stop)
            self.say(f"• embedded Redis at {redis.ensure_running()}")
            tls = self.workdir / "sandbox-tls"
            url, ca = stack.enter_context(
                sandbox_process(seed_file, tls, self.workdir / "sandbox.log")
            )
            self.say(f"• sandbox tenants contoso (source) and fabrikam (target) at {url}")
            config_file = self.workdir / "tenant-sync.yaml"
            config_file.write_text(build_config(self.workdir, url, ca))
            env = {**os.environ, "TENANT_SYNC_CONFIG": str(config_file)}
            stack.enter_context(
                background(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "worker.celery_app",
                        "worker",
                        "--loglevel",
                        "INFO",
                        "--concurrency",
                        "2",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-n",
                        "demo@%h",
                    ],
                    self.workdir / "worker.log",
                    env=env,
                )
            )
            config = load_config(config_file)
            from worker.celery_app import RUN_JOB_TASK, create_celery

            celery = create_celery(config)
            wait_for(lambda: celery.control.ping(timeout=0.5), "the Celery worker to start")
            self.say("• Celery worker process started (2 slots)\n")
            source = _client(config, "contoso")
            target = _client(config, "fabrikam")
            stack.callback(source.close)
            stack.callback(target.close)

            def cycle(title: str, mode: str) -> dict[str, Any]:
                task = celery.send_task(
                    RUN_JOB_TASK, args=[JOB], kwargs={"mode": mode, "trigger": "demo"}
                )
                result: dict[str, Any] = task.get(timeout=DEADLINE_S)
                self._print_cycle(title, result, config)
                return result

            first = cycle("1. initial full cycle (through Celery)", "full")
            changes = self._change_source(source)
            second = cycle("2. incremental cycle after the source changes", "auto")
            deleted_target = self._target_of(config, changes["deleted"])
            source.request("POST", f"/directory/deletedItems/{changes['deleted']}/restore")
            self.say(f"\n• restored the deleted source user {changes['deleted']}")
            third = cycle("3. incremental cycle after the restore", "auto")
            ok = self._verify(config, source, target, changes, deleted_target)
            ok = ok and all(r.get("status") == "success" for r in (first, second, third))
            command = _command()
            # The console's sandbox starts from the directory as the demo left it.
            snapshot = httpx.get(f"{url}/_sandbox/snapshot", verify=str(ca), timeout=30)
            snapshot.raise_for_status()
            (self.workdir / "console-seed.json").write_text(snapshot.text)
            workdir = _shown(self.workdir)
            self.say(
                "\nWhere to look:\n"
                f"  provisioning log  {command} logs {JOB} --config {config_file}\n"
                f"  job status        {command} status --config {config_file}\n"
                f"  worker log        {self.workdir / 'worker.log'}\n"
                f"  state database    {self.workdir / 'state' / 'state.db'}\n"
                "\nThe console on this state (sign in as the seeded operator; Ctrl-C ends it):\n"
                f"  {command} demo --console"
                + ("" if workdir == ".tenant-sync-demo" else f" --workdir {workdir}")
            )
        from tenant_sync_demo.organization import OrganizationDemo

        self.say("\nPart 2: an organisation of three tenants")
        organization = OrganizationDemo(self.workdir / "organization", self.console)
        ok = organization.run(sandbox_process) and ok
        self.say(
            "  its config and state: "
            f"{_shown(self.workdir / 'organization' / 'tenant-sync.yaml')} (status, logs, "
            "validate take --config)"
        )
        self.say("\ndemo " + ("succeeded" if ok else "FAILED"))
        return 0 if ok else 1

    def _print_cycle(self, title: str, result: dict[str, Any], config: Any) -> None:
        from worker.bootstrap import open_database

        self.say("")
        table = Table(title=f"{title} — {result.get('mode')} run {result.get('run_id')}")
        counts = result.get("counts", {})
        for key in counts:
            table.add_column(key, justify="right")
        table.add_row(*(str(v) for v in counts.values()))
        self.console.print(table)
        engine, ledger = open_database(config, migrate=False)
        try:
            rows = [
                r for r in ledger.logs(JOB, run_id=result.get("run_id")) if r["status"] != "skipped"
            ]
        finally:
            engine.dispose()
        if rows:
            detail = Table(show_header=True)
            for column in ("user", "action", "status", "changed / reason"):
                detail.add_column(column)
            shown = rows if len(rows) <= 12 else rows[:8]
            for row in shown:
                changed = ", ".join(
                    f"{k}: {v['old']} → {v['new']}" for k, v in row["modifiedProperties"].items()
                )
                if row["action"] == "create":
                    changed = f"{len(row['modifiedProperties'])} attributes written"
                detail.add_row(
                    row["sourceIdentity"],
                    row["action"],
                    row["status"],
                    changed[:90] or row["reason"],
                )
            self.console.print(detail)
            if len(rows) > len(shown):
                self.say(f"  … and {len(rows) - len(shown)} more rows like these")
        self.say(f"  {result.get('status')} in {result.get('duration_s')}s")

    def _change_source(self, source: GraphClient) -> dict[str, str]:
        users = self.seed["tenants"][0]["users"]
        renamed, moved, unassigned, disabled, deleted = (
            users[i]["id"] for i in (10, 11, 12, 13, 14)
        )
        source.request(
            "PATCH",
            f"/users/{renamed}",
            json={"displayName": "Renamed Person", "surname": "Renamed"},
        )
        source.request("PATCH", f"/users/{moved}", json={"department": "Contractors"})
        source.request("DELETE", f"/groups/{SYNC_GROUP}/members/{unassigned}/$ref")
        source.request("PATCH", f"/users/{disabled}", json={"accountEnabled": False})
        source.request("DELETE", f"/users/{deleted}")
        created = source.request(
            "POST",
            "/users",
            json={
                "accountEnabled": True,
                "displayName": "Nadia New",
                "givenName": "Nadia",
                "surname": "New",
                "mailNickname": "nadia.new",
                "userPrincipalName": "nadia.new@contoso.onmicrosoft.com",
                "mail": "nadia.new@contoso.com",
                "department": "Sales",
                "passwordProfile": {
                    "password": "Demo-Only-1!",
                    "forceChangePasswordNextSignIn": True,
                },
            },
        ).json()
        source.request(
            "POST",
            f"/groups/{SYNC_GROUP}/members/$ref",
            json={
                "@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{created['id']}"
            },
        )
        self.say(
            "\n• source changes through the sandbox's Graph API: renamed one user, moved one out "
            "of "
            "scope (department Contractors), removed one from the Sync group, disabled one, "
            "deleted one, added Nadia New to the Sync group"
        )
        return {
            "renamed": renamed,
            "moved": moved,
            "unassigned": unassigned,
            "disabled": disabled,
            "deleted": deleted,
            "created": created["id"],
        }

    def _target_of(self, config: Any, source_id: str) -> str | None:
        from worker.bootstrap import open_database

        engine, ledger = open_database(config, migrate=False)
        try:
            link = ledger.links_for(JOB, [source_id]).get(source_id)
        finally:
            engine.dispose()
        return link.target_id if link else None

    def _verify(
        self,
        config: Any,
        source: GraphClient,
        target: GraphClient,
        changes: dict[str, str],
        deleted_target: str | None,
    ) -> bool:
        """Compare the target with what the scope and mappings imply."""
        members = {m["id"] for m in all_items(source, f"/groups/{SYNC_GROUP}/members?$select=id")}
        in_scope = [
            u
            for u in all_items(
                source,
                "/users?$select=id,mail,userPrincipalName,userType,department,displayName,accountEnabled",
            )
            if u["id"] in members
            and u.get("userType") != "Guest"
            and u.get("department") != "Contractors"
        ]
        b2b = all_items(
            target, "/users?$select=id,mail,otherMails,displayName,accountEnabled,userType"
        )
        by_address: dict[str, list[dict[str, Any]]] = {}
        for user in b2b:
            by_address.setdefault((user.get("mail") or "").lower(), []).append(user)
        missing = [
            u
            for u in in_scope
            if not by_address.get((u.get("mail") or u["userPrincipalName"]).lower())
        ]
        duplicates = [a for a, found in by_address.items() if len(found) > 1]
        wrong_names = [
            u["id"]
            for u in in_scope
            if (found := by_address.get((u.get("mail") or u["userPrincipalName"]).lower()))
            and found[0].get("displayName") != u.get("displayName")
        ]
        disabled = next((u for u in in_scope if u["id"] == changes["disabled"]), None)
        disabled_ok = disabled is not None and all(
            t.get("accountEnabled") is False for t in by_address.get(disabled["mail"].lower(), [])
        )
        restored = deleted_target is not None and any(t["id"] == deleted_target for t in b2b)
        checks = [
            (
                f"{len(in_scope)} in-scope source users, each with exactly one B2B user "
                "in the target",
                not missing and not duplicates,
            ),
            (
                "the pre-existing B2B user was matched, not duplicated",
                len(by_address.get(self.seed["tenants"][1]["users"][0]["mail"].lower(), [])) == 1,
            ),
            ("display names flowed (including the rename)", not wrong_names),
            ("the disabled source user is disabled in the target", disabled_ok),
            ("the restored user came back with the same target object id", restored),
            (
                "users out of scope are soft-deleted in the target",
                not any(
                    by_address.get(_address_of(source, changes[k]), [])
                    for k in ("moved", "unassigned")
                ),
            ),
        ]
        self.say("")
        for text, passed in checks:
            self.say(f"  {'✓' if passed else '✗'} {text}")
        return all(passed for _, passed in checks)


def _address_of(source: GraphClient, user_id: str) -> str:
    user = source.get_json(f"/users/{user_id}", {"$select": "mail,userPrincipalName"})
    return str(user.get("mail") or user.get("userPrincipalName")).lower()


def all_items(client: GraphClient, path: str) -> list[dict[str, Any]]:
    """Every item of a Graph collection, following @odata.nextLink."""
    items: list[dict[str, Any]] = []
    url: str | None = path
    while url:
        data = client.get_json(url)
        items.extend(data.get("value", []))
        url = data.get("@odata.nextLink")
    return items


def _client(config: Any, tenant_name: str) -> GraphClient:
    return graph_client(config.tenants[tenant_name])


def _command() -> str:
    """How to call tenant-sync from here: plainly if it is on PATH, else by its path."""
    if shutil.which("tenant-sync"):
        return "tenant-sync"
    script = Path(sys.executable).parent / "tenant-sync"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def run_demo(workdir: Path, *, users: int = 240, console: Console | None = None) -> int:
    return Demo(workdir, users, console or Console()).run()
