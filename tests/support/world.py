"""A small two-tenant world for sync tests: its seed, and a config file pointing at the sandbox."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TenantInfo:
    name: str
    tenant_id: str
    domain: str
    client_id: str
    secret: str


SOURCE = TenantInfo(
    "contoso",
    "11111111-1111-4111-8111-111111111111",
    "contoso.onmicrosoft.com",
    "aaaaaaaa-0000-4000-8000-000000000001",
    "source-secret",
)
TARGET = TenantInfo(
    "fabrikam",
    "22222222-2222-4222-8222-222222222222",
    "fabrikam.onmicrosoft.com",
    "aaaaaaaa-0000-4000-8000-000000000002",
    "target-secret",
)
# The counts of `run --json`, as docs/contracts.md (section 3) lists them (every one present, 0 when none).
RUN_JSON_COUNT_KEYS = frozenset(
    ("create", "update", "delete", "disable", "restore", "staged_delete", "skip", "failure")
)
GROUP = "33333333-3333-4333-8333-333333333333"
DEPARTMENTS = ("Sales", "Engineering", "Finance", "Legal")


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def partner(tenant: TenantInfo, *, inbound: bool, outbound: bool, sync: bool) -> dict[str, Any]:
    return {
        "tenant_id": tenant.tenant_id,
        "inbound_auto_redeem": inbound,
        "outbound_auto_redeem": outbound,
        "is_sync_allowed": sync,
    }


def build_world_seed(
    users: int = 24, seed: int = 11, prior_b2b: bool = True, partners: bool = False
) -> dict[str, Any]:
    """`users` source members (all but the last 4 in GROUP), a guest, one member without mail,
    and, in the target, a B2B user that already stands for source user 0."""
    rng = random.Random(seed)
    members = [
        {
            "id": _id(rng),
            "userPrincipalName": f"user{i}@{SOURCE.domain}",
            "mail": f"user{i}@contoso.com",
            "mailNickname": f"user{i}",
            "displayName": f"User {i}",
            "givenName": "User",
            "surname": str(i),
            "jobTitle": "Engineer" if i % 2 else "Analyst",
            "department": DEPARTMENTS[i % len(DEPARTMENTS)],
            "employeeId": f"E{i:04d}",
            "businessPhones": [f"+47 555 {i:04d}"],
            "accountEnabled": True,
            "userType": "Member",
        }
        for i in range(users)
    ]
    members[1]["mail"] = None
    guest = {
        "id": _id(rng),
        "userPrincipalName": f"visitor_example.com#EXT#@{SOURCE.domain}",
        "mail": "visitor@example.com",
        "displayName": "Visitor",
        "userType": "Guest",
        "accountEnabled": True,
    }
    target_users = []
    if prior_b2b:
        target_users.append(
            {
                "id": _id(rng),
                "userPrincipalName": f"user0_contoso.com#EXT#@{TARGET.domain}",
                "mail": "user0@contoso.com",
                "otherMails": ["user0@contoso.com"],
                "displayName": "Hand-invited User 0",
                "userType": "Guest",
                "creationType": "Invitation",
                "accountEnabled": True,
            }
        )
    world: dict[str, Any] = {
        "tenants": [
            {
                "tenant_id": SOURCE.tenant_id,
                "domain": SOURCE.domain,
                "clients": [{"client_id": SOURCE.client_id, "client_secret": SOURCE.secret}],
                "users": [*members, guest],
                "groups": [
                    {
                        "id": GROUP,
                        "displayName": "Sync",
                        "members": [m["id"] for m in members[:-4]] + [guest["id"]],
                    }
                ],
            },
            {
                "tenant_id": TARGET.tenant_id,
                "domain": TARGET.domain,
                "clients": [{"client_id": TARGET.client_id, "client_secret": TARGET.secret}],
                "users": target_users,
                "groups": [],
            },
        ]
    }
    if partners:
        world["tenants"][0]["cross_tenant_access"] = {
            "partners": [partner(TARGET, inbound=False, outbound=True, sync=False)]
        }
        world["tenants"][1]["cross_tenant_access"] = {
            "partners": [partner(SOURCE, inbound=True, outbound=False, sync=True)]
        }
    return world


# Tests are about behaviour, not pace: the worker's own quotas are set out of the way (the
# pacer has tests of its own, and make bench measures pacing at Graph's real quotas).
ROOMY_LIMITS = {"write_per_150s": 10_000_000, "invitations_per_5s": 1_000_000}


def tenant_block(info: TenantInfo, url: str, ca: Path) -> dict[str, Any]:
    return {
        "tenant_id": info.tenant_id,
        "client_id": info.client_id,
        "client_secret": info.secret,
        "domain": info.domain,
        "authority_host": url,
        "graph_url": url,
        "ca_bundle": str(ca),
        "limits": dict(ROOMY_LIMITS),
    }


def write_config(
    path: Path,
    sandbox: Any,
    state_dir: Path,
    *,
    job: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Path:
    """A config (docs/contracts.md, section 1) with one job `sync` from SOURCE to TARGET; the SQL state is a
    SQLite file in state_dir unless `database_url` says otherwise."""
    job_block: dict[str, Any] = {
        "source": SOURCE.name,
        "target": TARGET.name,
        "schedule": {"interval": "40m"},
        "scope": {"users": "assigned", "groups": [GROUP]},
    }
    job_block.update(job or {})
    config = {
        "state": {
            "redis_url": "embedded",
            "database_url": database_url or f"sqlite:///{state_dir / 'state.db'}",
            "state_dir": str(state_dir),
        },
        "logging": {"format": "json", "level": "WARNING"},
        "tenants": {
            SOURCE.name: tenant_block(SOURCE, sandbox.url, Path(sandbox.ca_path)),
            TARGET.name: tenant_block(TARGET, sandbox.url, Path(sandbox.ca_path)),
        },
        "jobs": {"sync": job_block},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
