"""Organisations through the CLI against the sandbox over HTTPS: a three-tenant mesh whose jobs
all run twice (no user is synced onward from the tenant it was synced into), and a five-tenant
mesh of 20 jobs that validates, runs and reports its status grouped by source and target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    make_user,
    partner,
    running_sandbox,
)
from tests.support.sdk import SdkClient
from tests.support.serve import READ_TOKEN, add_api_section, running_service
from tests.support.world import ROOMY_LIMITS
from worker.adapters.state.embedded_redis import EmbeddedRedis
from worker.bootstrap import open_runtime
from worker.config import load_config

pytestmark = pytest.mark.integration

NAMES = ("contoso", "fabrikam", "adatum", "northwind", "tailspin")


@dataclass
class Org:
    sandbox: SandboxHandle
    config: Path
    tenants: dict[str, dict[str, Any]]  # name -> seed tenant
    members: dict[str, list[dict[str, Any]]]  # name -> its own members, as seeded

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "COLUMNS": "200"},
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, f"tenant-sync {' '.join(args)}:\n{result.stderr}"
        return json.loads(result.stdout)

    def run(self, job: str) -> dict[str, Any]:
        summary: dict[str, Any] = self.json("run", job)
        assert summary["counts"]["failure"] == 0, summary
        return summary

    def users(self, name: str) -> list[dict[str, Any]]:
        tenant_id = self.tenants[name]["tenant_id"]
        return [u for u in self.sandbox.users(tenant_id) if not u.get("deletedDateTime")]


def _tenant_block(tenant: dict[str, Any], sandbox: SandboxHandle) -> dict[str, Any]:
    tenant_id, client_id, secret = client_of(tenant)
    return {
        "tenant_id": tenant_id,
        "client_id": client_id,
        "client_secret": secret,
        "authority_host": sandbox.url,
        "graph_url": sandbox.url,
        "ca_bundle": str(sandbox.ca_path),
        "limits": dict(ROOMY_LIMITS),
    }


@contextmanager
def organization(tmp_path: Path, count: int, members: int) -> Iterator[Org]:
    """`count` partner tenants with `members` members and one guest each, a mesh of them."""
    names = NAMES[:count]
    own = {
        name: [make_user(f"{name[:3]}{i}", f"{name}.onmicrosoft.com") for i in range(members)]
        for name in names
    }
    guests = {
        name: make_user(
            "visitor_example.com#EXT#",
            f"{name}.onmicrosoft.com",
            mail=f"visitor@{name}.example.com",
            userType="Guest",
            creationType="Invitation",
            externalUserState="Accepted",
        )
        for name in names
    }
    tenants = {
        name: make_tenant(f"{name}.onmicrosoft.com", users=[*own[name], guests[name]])
        for name in names
    }
    for name, tenant in tenants.items():
        tenant["cross_tenant_access"]["partners"] = [
            partner(other["tenant_id"]) for o, other in tenants.items() if o != name
        ]
    with running_sandbox(make_seed(*tenants.values()), tmp_path / "sandbox") as sandbox:
        state_dir = tmp_path / "state"
        config = {
            "state": {
                "redis_url": "embedded",
                "database_url": f"sqlite:///{state_dir / 'state.db'}",
                "state_dir": str(state_dir),
            },
            "logging": {"format": "json", "level": "WARNING"},
            "tenants": {name: _tenant_block(t, sandbox) for name, t in tenants.items()},
            "organization": {
                "tenants": list(names),
                "topology": "mesh",
                "job_defaults": {"schedule": {"interval": "40m"}, "scope": {"users": "all"}},
            },
        }
        path = tmp_path / "tenant-sync.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        try:
            yield Org(sandbox, path, tenants, own)
        finally:
            EmbeddedRedis(state_dir).stop()


def assert_each_target_has_exactly_the_others_members(org: Org) -> None:
    for name in org.tenants:
        users = org.users(name)
        own_ids = {u["id"] for u in org.members[name]}
        b2b = [u for u in users if u["id"] not in own_ids and "visitor" not in u["mail"]]
        expected = Counter(
            m["mail"].lower() for other, ms in org.members.items() if other != name for m in ms
        )
        # One B2B user per member of every other tenant, and nothing else: no guest of a guest
        # (a user synced into this tenant from A and back from B, or synced out and returned).
        assert Counter(u["mail"].lower() for u in b2b) == expected, name
        for user in b2b:
            assert user["userPrincipalName"].count("#EXT#") == 1, user["userPrincipalName"]
            assert user["creationType"] == "Invitation"
        # This tenant's own members were never synced back into it.
        assert not {m["mail"].lower() for m in org.members[name]} & set(expected)


def test_a_three_tenant_mesh_syncs_members_and_never_guests_of_guests(tmp_path: Path) -> None:
    with organization(tmp_path, count=3, members=3) as org:
        listed = org.json("validate")
        jobs = sorted(listed["jobs"])
        assert len(jobs) == 6
        assert {j["origin"] for j in listed["jobs"].values()} == {"organization"}
        # An order that would chain them if B2B users were in scope: a job into a tenant first,
        # then the job out of it; the second round (incremental) in the opposite order.
        order = [
            "contoso-to-fabrikam",
            "fabrikam-to-adatum",
            "adatum-to-contoso",
            "contoso-to-adatum",
            "adatum-to-fabrikam",
            "fabrikam-to-contoso",
        ]
        assert sorted(order) == jobs
        for job in order:
            summary = org.run(job)
            assert summary["mode"] == "full"
            assert summary["counts"]["create"] == 3, (job, summary)
        assert_each_target_has_exactly_the_others_members(org)
        # The next rounds in one process (the runtime `run` and the workers use), to save six
        # interpreters' start-up each: incremental in the opposite order (each source's delta
        # now holds the B2B users the first round made in it), then full (every user read).
        runtime = open_runtime(load_config(org.config))
        try:
            rounds = (("auto", "incremental", order[::-1]), ("full", "full", order))
            for asked, mode, jobs_in_order in rounds:
                for job in jobs_in_order:
                    result = runtime.cycle(job).run(mode=asked, trigger="manual")
                    assert result.mode == mode
                    assert result.status == "success", (job, result.error)
                    assert result.counts["create"] == result.counts["failure"] == 0, (
                        job,
                        result.counts,
                    )
                assert_each_target_has_exactly_the_others_members(org)
        finally:
            runtime.close()
        # The logs say why the B2B users of a source were left out.
        skipped = org.json("logs", "fabrikam-to-adatum", "--action", "skip", "--all")
        from_contoso = {m["mail"].lower() for m in org.members["contoso"]}
        b2b_rows = [r for r in skipped if (r["sourceMail"] or "").lower() in from_contoso]
        assert b2b_rows, skipped
        assert {r["reason"] for r in b2b_rows} == {
            "NotInScope: not an internal member of the source (a guest or B2B user)"
        }

        # Microsoft's Graph SDK reads adatum as an admin would: each contoso member once, as B2B.
        sdk = SdkClient.connect(org.sandbox, *client_of(org.tenants["adatum"]))
        try:
            conf: RequestConfiguration[Any] = RequestConfiguration()
            conf.query_parameters = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                select=["mail", "userType", "creationType", "externalUserState"],
                filter="creationType eq 'Invitation'",
            )
            page = sdk.run(sdk.graph.users.get(conf))
        finally:
            sdk.close()
        assert page is not None
        assert page.value is not None
        mails = sorted(str(u.mail).lower() for u in page.value if "visitor" not in str(u.mail))
        assert mails == sorted(
            m["mail"].lower() for t in ("contoso", "fabrikam") for m in org.members[t]
        )


def test_a_five_tenant_mesh_of_twenty_jobs_validates_runs_and_reports(tmp_path: Path) -> None:
    with organization(tmp_path, count=5, members=2) as org:
        listed = org.json("validate")
        assert len(listed["jobs"]) == 20
        assert listed["organization"]["topology"] == "mesh"
        assert sorted(listed["organization"]["jobs"]) == sorted(listed["jobs"])
        text = org.cli("validate").stdout
        assert "organization: mesh of 5 tenants, 20 jobs" in text
        assert "tailspin-to-contoso: tailspin → contoso" in text

        # The 20 cycles in one process (the runtime `run` and the Celery workers use): twenty
        # interpreters starting would cost most of this test's time.
        runtime = open_runtime(load_config(org.config))
        try:
            for job in listed["jobs"]:
                result = runtime.cycle(job).run(mode="full", trigger="manual")
                assert (result.status, result.counts["failure"]) == ("success", 0), job
                assert result.counts["create"] == 2, (job, result.counts)
        finally:
            runtime.close()
        for name in org.tenants:
            assert len(org.users(name)) == 2 + 1 + 4 * 2  # own, its guest, 2 from each other

        statuses = org.json("status")
        assert len(statuses) == 20
        pairs = [(s["source"], s["target"]) for s in statuses]
        assert pairs == sorted(pairs)  # grouped by source, then target
        assert {s["origin"] for s in statuses} == {"organization"}
        assert all(s["lastExecution"]["state"] == "Succeeded" for s in statuses)
        table = org.cli("status").stdout
        assert "adatum → contoso" in table
        assert "contoso-to-tailspin [org]" in table

        # The operator service's Graph API lists every job, seven to a page.
        add_api_section(org.config)
        with running_service(org.config, tmp_path / "serve") as service:
            client = service.client(READ_TOKEN)
            seen: list[str] = []
            url: str | None = "/v1.0/servicePrincipals?$top=7"
            while url:
                page = client.get(url)
                assert page.status_code == 200, page.text
                seen += [sp["id"] for sp in page.json()["value"]]
                url = page.json().get("@odata.nextLink")
            assert sorted(seen) == sorted(listed["jobs"])
            job = client.get("/v1.0/servicePrincipals/adatum-to-tailspin/synchronization/jobs")
            assert job.status_code == 200, job.text
