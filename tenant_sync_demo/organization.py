"""The demo's second part: a small organisation of three tenants in a mesh.

contoso, fabrikam and adatum, each with a few members, in an `organization:` mesh (six jobs). Their
cross-tenant access starts unconfigured: `check --fix --yes` onboards every pair. contoso has a
manager chain and a group, Engineering, with a nested group, Platform: the jobs from contoso
provision Engineering with Platform's members flattened into it, and sync the manager reference.
Every job's full cycle runs, then the source changes (a manager moves, a member leaves the nested
group) and every job's incremental cycle runs. Then the tenants are checked against what the
organisation implies: one B2B user per member of each other tenant and no guest of a guest, the
manager chain mirrored, the group's members flattened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

from tenant_sync_demo.demo import all_items as _all
from worker.adapters.graph.client import GraphClient
from worker.bootstrap import graph_client
from worker.config import load_config

# name -> (tenant id, client id); secrets are "<name>-demo-secret".
TENANTS = {
    "contoso": ("0b1c7a3e-0000-4000-8000-0000000a0001", "5e6f0000-0000-4000-8000-0000000a0001"),
    "fabrikam": ("0b1c7a3e-0000-4000-8000-0000000a0002", "5e6f0000-0000-4000-8000-0000000a0002"),
    "adatum": ("0b1c7a3e-0000-4000-8000-0000000a0003", "5e6f0000-0000-4000-8000-0000000a0003"),
}
ENGINEERING = "9a0b0000-0000-4000-8000-0000000b0001"
PLATFORM = "9a0b0000-0000-4000-8000-0000000b0002"
# contoso's people: alias -> (display name, manager alias).
CONTOSO = {
    "ada": ("Ada Lind", None),
    "bo": ("Bo Strand", "ada"),
    "cy": ("Cy Berg", "bo"),
    "di": ("Di Holm", "bo"),
    "ed": ("Ed Vik", "ada"),
}
OTHERS = {
    "fabrikam": ("fay", "gus", "hal"),
    "adatum": ("ivy", "jon"),
}


def _user_id(tenant: str, alias: str) -> str:
    number = list(TENANTS).index(tenant) + 1
    index = (list(CONTOSO) if tenant == "contoso" else list(OTHERS[tenant])).index(alias) + 1
    return f"c0000000-0000-4000-8000-00000{number:02d}0{index:03d}"


def _user(tenant: str, alias: str, name: str, manager: str | None) -> dict[str, Any]:
    given, _, family = name.partition(" ")
    user: dict[str, Any] = {
        "id": _user_id(tenant, alias),
        "userPrincipalName": f"{alias}@{tenant}.onmicrosoft.com",
        "mail": f"{alias}@{tenant}.com",
        "mailNickname": alias,
        "displayName": name,
        "givenName": given,
        "surname": family,
        "department": "Engineering",
        "accountEnabled": True,
        "userType": "Member",
    }
    if manager is not None:
        user["manager"] = _user_id(tenant, manager)
    return user


def build_org_seed() -> dict[str, Any]:
    """Three tenants, no partner settings yet (check --fix writes them)."""
    tenants = []
    for name, (tenant_id, client_id) in TENANTS.items():
        if name == "contoso":
            users = [_user(name, a, n, m) for a, (n, m) in CONTOSO.items()]
            groups = [
                {
                    "id": ENGINEERING,
                    "displayName": "Engineering",
                    "description": "Everyone who builds things",
                    "mailNickname": "engineering",
                    "groupTypes": ["Unified"],
                    "members": [_user_id(name, "bo"), PLATFORM],
                },
                {
                    "id": PLATFORM,
                    "displayName": "Platform",
                    "members": [_user_id(name, "cy"), _user_id(name, "di")],
                },
            ]
        else:
            users = [_user(name, a, a.title() + " " + name.title(), None) for a in OTHERS[name]]
            groups = []
        tenants.append(
            {
                "tenant_id": tenant_id,
                "domain": f"{name}.onmicrosoft.com",
                "clients": [{"client_id": client_id, "client_secret": f"{name}-demo-secret"}],
                "users": users,
                "groups": groups,
                "cross_tenant_access": {"partners": []},
            }
        )
    return {"tenants": tenants, "faults": {"error_rate": 0.0, "latency_ms": 0}}


def build_org_config(workdir: Path, url: str, ca: Path) -> str:
    state = workdir / "state"
    tenants = "".join(
        f"""  {name}:
    tenant_id: {tenant_id}
    client_id: {client_id}
    client_secret: {name}-demo-secret
    authority_host: {url}
    graph_url: {url}
    ca_bundle: {ca}
"""
        for name, (tenant_id, client_id) in TENANTS.items()
    )
    contoso_job = f"""    scope: {{users: all, groups: [{ENGINEERING}], nested_groups: true}}
    groups: {{provision: true, nested: flatten}}
"""
    jobs = "".join(f"  contoso-to-{other}:\n{contoso_job}" for other in ("fabrikam", "adatum"))
    return f"""# Written by `tenant-sync demo`: an organisation of three sandbox tenants in a mesh.
state:
  redis_url: embedded
  database_url: sqlite:///{state / "state.db"}
  state_dir: {state}
logging:
  format: json
  level: WARNING
tenants:
{tenants}organization:
  tenants: [contoso, fabrikam, adatum]
  topology: mesh
  job_defaults:
    schedule: {{interval: 40m}}
    scope: {{users: all}}
    user_type: Member
    mappings:
      - {{target: manager, source: manager}}
jobs:
{jobs}"""


class OrganizationDemo:
    """Runs the organisation part against its own sandbox; `run` says whether every check held."""

    def __init__(self, workdir: Path, console: Console) -> None:
        self.workdir = workdir
        self.console = console
        self.config_file = workdir / "tenant-sync.yaml"

    def say(self, text: str) -> None:
        self.console.print(text, markup=False)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args, "--config", str(self.config_file)],
            capture_output=True,
            text=True,
            timeout=300,
        )

    def run(self, sandbox: Callable[[Path, Path, Path], Any]) -> bool:
        from worker.adapters.state.embedded_redis import EmbeddedRedis

        (self.workdir / "state").mkdir(parents=True)
        seed_file = self.workdir / "seed.json"
        seed_file.write_text(json.dumps(build_org_seed(), indent=1))
        with ExitStack() as stack:
            redis = EmbeddedRedis(self.workdir / "state")
            stack.callback(redis.stop)
            url, ca = stack.enter_context(
                sandbox(seed_file, self.workdir / "sandbox-tls", self.workdir / "sandbox.log")
            )
            self.config_file.write_text(build_org_config(self.workdir, url, ca))
            config = load_config(self.config_file)
            jobs = list(config.jobs)
            self.say(
                f"\n• an organisation: contoso, fabrikam and adatum in a mesh make {len(jobs)} "
                f"jobs ({', '.join(jobs)})"
            )
            fixed = self.cli("check", "--fix", "--yes", "--json")
            onboarded = fixed.returncode == 0
            writes = len(json.loads(fixed.stdout or "{}").get("results", []))
            self.say(
                f"• check --fix --yes: {writes} cross-tenant access writes onboarded every pair"
                if onboarded
                else f"• check --fix failed: {fixed.stdout[-400:]}{fixed.stderr[-400:]}"
            )
            ran = self._cycles(jobs, "--full", "full cycles")
            clients = {name: graph_client(config.tenants[name]) for name in TENANTS}
            for client in clients.values():
                stack.callback(client.close)
            self._change(clients["contoso"])
            ran = self._cycles(jobs, None, "incremental cycles") and ran
            checks = [
                ("check --fix onboarded every pair", onboarded),
                ("every cycle succeeded", ran),
            ]
            checks += self._checks(clients)
            self.say("")
            for text, passed in checks:
                self.say(f"  {'✓' if passed else '✗'} {text}")
            return all(passed for _, passed in checks)

    def _cycles(self, jobs: list[str], mode: str | None, what: str) -> bool:
        counts: dict[str, int] = {}
        ok = True
        for job in jobs:
            result = self.cli("run", job, "--json", *([mode] if mode else []))
            if result.returncode != 0:
                self.say(f"  {job}: failed: {(result.stdout + result.stderr)[-400:]}")
                ok = False
                continue
            for key, value in json.loads(result.stdout)["counts"].items():
                counts[key] = counts.get(key, 0) + value
        done = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no changes"
        self.say(f"• {len(jobs)} {what}: {done}")
        return ok

    def _change(self, contoso: GraphClient) -> None:
        cy, ed = _user_id("contoso", "cy"), _user_id("contoso", "ed")
        contoso.request(
            "PUT",
            f"/users/{cy}/manager/$ref",
            json={"@odata.id": f"https://graph.microsoft.com/v1.0/users/{ed}"},
        )
        contoso.request("DELETE", f"/groups/{PLATFORM}/members/{_user_id('contoso', 'di')}/$ref")
        self.say("• in contoso: Cy Berg now reports to Ed Vik; Di Holm left Platform")

    def _checks(self, clients: dict[str, GraphClient]) -> list[tuple[str, bool]]:
        people = {
            tenant: _all(client, "/users?$select=id,mail,userPrincipalName")
            for tenant, client in clients.items()
        }
        own = {
            t: [u for u in users if "#EXT#" not in u["userPrincipalName"]]
            for t, users in people.items()
        }
        mesh_ok = True
        for tenant, users in people.items():
            invited = sorted(u["mail"] for u in users if "#EXT#" in u["userPrincipalName"])
            expected = sorted(u["mail"] for t, us in own.items() if t != tenant for u in us)
            mesh_ok = mesh_ok and bool(invited) and invited == expected
        checks = [
            (
                "each tenant holds exactly one B2B user per member of the other two, "
                "and no B2B user of a B2B user",
                mesh_ok,
            )
        ]
        for target in ("fabrikam", "adatum"):
            client = clients[target]
            by_mail = {
                u["mail"]: u["id"] for u in people[target] if "#EXT#" in u["userPrincipalName"]
            }
            chain = {"bo": "ada", "cy": "ed", "di": "bo", "ed": "ada", "ada": None}
            mirrored = all(
                _manager_mail(client, by_mail.get(f"{alias}@contoso.com"))
                == (f"{boss}@contoso.com" if boss else None)
                for alias, boss in chain.items()
            )
            checks.append(
                (
                    f"{target}: contoso's manager chain mirrored (Cy's new manager included)",
                    mirrored,
                )
            )
            groups = [
                g
                for g in _all(client, "/groups")
                if g.get("displayName") in ("Engineering", "Platform")
            ]
            engineering = [g for g in groups if g["displayName"] == "Engineering"]
            members: list[str] = []
            if len(engineering) == 1:
                members = sorted(
                    m.get("mail") or ""
                    for m in _all(client, f"/groups/{engineering[0]['id']}/members")
                )
            kind_ok = len(engineering) == 1 and (
                engineering[0].get("securityEnabled") is True
                and engineering[0].get("mailEnabled") is False
                and not engineering[0].get("groupTypes")
            )
            checks.append(
                (
                    f"{target}: one Engineering security group (Microsoft 365 in contoso), "
                    "Platform not provisioned",
                    kind_ok and len(groups) == 1,
                )
            )
            checks.append(
                (
                    f"{target}: Engineering's members are Bo and, flattened from Platform, Cy "
                    "(Di left)",
                    members == ["bo@contoso.com", "cy@contoso.com"],
                )
            )
        return checks


def _manager_mail(client: GraphClient, user_id: str | None) -> str | None:
    if user_id is None:
        return "(no such user)"
    from worker.domain.errors import NotFound

    try:
        manager = client.get_json(f"/users/{user_id}/manager")
    except NotFound:
        return None
    mail = manager.get("mail")
    return str(mail) if mail else None
