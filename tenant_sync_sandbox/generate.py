"""Seed files of chosen shapes, for people who rehearse with their own (`tenant-sync sandbox seed`).

`generate(Shape(...))` returns a seed (docs/sandbox-seed.md) of two partner tenants that keeps the
default seed's tenant ids, client ids, secrets and "Sync scope" group id, so the shipped
`config/tenant-sync.yaml` runs against it unchanged:

- contoso (the source): `users` members with the attributes the default mappings read, a
  manager tree (each user's manager is an earlier user, five reports each), cost centres in
  `onPremisesExtensionAttributes`, about one in fifty disabled; `guests` B2B guests; `groups`
  security groups, the first being "Sync scope" (nine in ten members), the others a random fifth
  of the members each; `nested` groups nested in a chain under "Sync scope", each with its own
  members; `m365_groups` Microsoft 365 groups and `dynamic_groups` dynamic groups (one rule per
  department);
- fabrikam (the target): one admin user, and both tenants' partner settings allowing automatic
  redemption and user sync.

With `unicode`, names carry accents, other scripts, apostrophes and hyphens (user principal names
and mail stay ASCII, as Entra requires of them). The same shape and `random_seed` give the same
file.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from .default_seed import CONTOSO, CONTOSO_CLIENT, FABRIKAM, FABRIKAM_CLIENT

SYNC_SCOPE = "c1000000-0000-4000-8000-000000000001"
SOURCE_DOMAIN = "contoso.onmicrosoft.com"
TARGET_DOMAIN = "fabrikam.onmicrosoft.com"
DEPARTMENTS = ("Sales", "Engineering", "Finance", "Legal", "Marketing", "Operations")
TITLES = ("Analyst", "Engineer", "Specialist", "Manager", "Director", "Consultant")
CITIES = (("Oslo", "NO"), ("Paris", "FR"), ("Seattle", "US"), ("Berlin", "DE"), ("Tokyo", "JP"))
GIVEN = ("Ann", "Bob", "Cyd", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lea")
SURNAMES = ("Lee", "Stone", "Moreau", "Okafor", "Berg", "Silva", "Novak", "Kaur", "Ito", "Ruiz")
GIVEN_UNICODE = (
    "Zoë", "José", "Łukasz", "Ærin", "Ørjan", "Şule", "Håkon", "Chloé",
    "Σοφία", "Ольга", "李娜", "さくら", "محمد", "Nguyễn Văn", "Dvořák", "Þóra",
)  # fmt: skip
SURNAMES_UNICODE = (
    "O'Brien", "Müller", "García-López", "Ødegård", "Çelik", "Nowak-Wiśniewska",
    "Παπαδόπουλος", "Иванова", "王", "佐藤", "الفارسي", "Trần", "D'Angelo", "Ólafsdóttir",
)  # fmt: skip
MANAGER_FAN_OUT = 5
# An organisation's tenants beyond contoso and fabrikam (`--tenants N`), then tenant11, ...
ORG_NAMES = ("adatum", "northwind", "tailspin", "litware", "woodgrove", "wingtip", "relecloud")
MAX_TENANTS = 100


class ShapeError(ValueError):
    """A shape that cannot make a seed; the message names the option."""


@dataclass(frozen=True)
class Shape:
    users: int = 100
    groups: int = 1
    nested: int = 0
    guests: int = 0
    m365_groups: int = 0
    dynamic_groups: int = 0
    unicode: bool = False
    managers: bool = True
    random_seed: int = 1
    tenants: int = 2  # beyond contoso and fabrikam: an organisation's other tenants

    def check(self) -> None:
        for name in ("users", "guests", "nested", "m365_groups", "dynamic_groups"):
            if getattr(self, name) < 0:
                raise ShapeError(f"--{name.replace('_', '-')} must be 0 or more")
        if self.groups < 1:
            raise ShapeError(
                "--groups must be at least 1: the first is 'Sync scope', the group the shipped "
                "config/tenant-sync.yaml syncs"
            )
        if self.users > 1_000_000:
            raise ShapeError("--users must be at most 1000000")
        if not 2 <= self.tenants <= MAX_TENANTS:
            raise ShapeError(f"--tenants must be 2 to {MAX_TENANTS} (Entra's organisations)")


def _ascii(text: str) -> str:
    """Letters and digits of `text` without accents; other scripts drop out."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _member(
    i: int, shape: Shape, rng: random.Random, ids: _Ids, name: str = "contoso"
) -> dict[str, Any]:
    pool_given = GIVEN_UNICODE if shape.unicode and i % 2 else GIVEN
    pool_surnames = SURNAMES_UNICODE if shape.unicode and i % 3 else SURNAMES
    given = pool_given[i % len(pool_given)]
    surname = pool_surnames[(i // len(pool_given)) % len(pool_surnames)]
    local = f"{_ascii(given) or 'user'}.{_ascii(surname) or 'person'}.{i}"
    department = DEPARTMENTS[i % len(DEPARTMENTS)]
    city, country = CITIES[i % len(CITIES)]
    return {
        "id": ids.new(),
        "userPrincipalName": f"{local}@{name}.onmicrosoft.com",
        "mail": f"{local}@{name}.com",
        "mailNickname": local,
        "displayName": f"{given} {surname}",
        "givenName": given,
        "surname": surname,
        "department": department,
        "jobTitle": TITLES[rng.randrange(len(TITLES))],
        "companyName": name.capitalize(),
        "employeeId": f"E{i:06d}",
        "city": city,
        "country": country,
        "usageLocation": country,
        "businessPhones": [f"+1 555 {i % 10_000:04d}"],
        "accountEnabled": rng.random() >= 0.02,
        "userType": "Member",
        "onPremisesExtensionAttributes": {"extensionAttribute1": f"CC-{100 + i % 40}"},
    }


def _guest(i: int, shape: Shape) -> dict[str, Any]:
    name = GIVEN_UNICODE[i % len(GIVEN_UNICODE)] if shape.unicode else GIVEN[i % len(GIVEN)]
    address = f"{_ascii(name) or 'guest'}.{i}@partner{i % 3}.example"
    upn = f"{address.replace('@', '_')}#EXT#@{SOURCE_DOMAIN}"
    return {
        "userPrincipalName": upn,
        "mail": address,
        "otherMails": [address],
        "mailNickname": address.replace("@", "_") + "#EXT#",
        "displayName": f"{name} (Guest)",
        "userType": "Guest",
        "creationType": "Invitation",
        "externalUserState": "Accepted",
        "accountEnabled": True,
    }


def _group_name(base: str, k: int, shape: Shape) -> str:
    return f"{base} {k} · équipe" if shape.unicode else f"{base} {k}"


def generate(shape: Shape) -> dict[str, Any]:
    """The seed of the shape (see the module doc). Raises ShapeError for a bad shape."""
    shape.check()
    rng = random.Random(shape.random_seed)
    ids = _Ids(rng)
    members = [_member(i, shape, rng, ids) for i in range(shape.users)]
    if shape.managers:
        for i, user in enumerate(members[1:], start=1):
            user["manager"] = members[(i - 1) // MANAGER_FAN_OUT]["id"]
    guests = [{"id": ids.new(), **_guest(i, shape)} for i in range(shape.guests)]
    member_ids = [u["id"] for u in members]

    in_scope = [uid for uid in member_ids if rng.random() < 0.9]
    groups: list[dict[str, Any]] = [
        {"id": SYNC_SCOPE, "displayName": "Sync scope", "members": in_scope}
    ]
    for k in range(1, shape.groups):
        chosen = [uid for uid in member_ids if rng.random() < 0.2]
        groups.append(
            {
                "id": ids.new(),
                "displayName": _group_name("Security group", k, shape),
                "members": chosen,
            }
        )
    parent = groups[0]
    scoped = set(in_scope)
    outside = [uid for uid in member_ids if uid not in scoped]
    for depth in range(1, shape.nested + 1):
        own = outside[depth - 1 :: shape.nested]  # the members outside "Sync scope", shared out
        nested = {
            "id": ids.new(),
            "displayName": _group_name("Nested level", depth, shape),
            "members": own,
        }
        parent["members"] = [*parent["members"], nested["id"]]
        groups.append(nested)
        parent = nested
    for k in range(1, shape.m365_groups + 1):
        groups.append(
            {
                "id": ids.new(),
                "displayName": _group_name("Team", k, shape),
                "mailNickname": f"team{k}",
                "groupTypes": ["Unified"],
                "members": [uid for uid in member_ids if rng.random() < 0.2],
            }
        )
    for k in range(1, shape.dynamic_groups + 1):
        department = DEPARTMENTS[(k - 1) % len(DEPARTMENTS)]
        groups.append(
            {
                "id": ids.new(),
                "displayName": _group_name(f"{department} (dynamic)", k, shape),
                "mailNickname": f"dynamic{k}",
                "groupTypes": ["DynamicMembership"],
                "membershipRule": f'user.department -eq "{department}"',
            }
        )

    def partner(other: str) -> dict[str, Any]:
        return {
            "tenant_id": other,
            "inbound_auto_redeem": True,
            "outbound_auto_redeem": True,
            "is_sync_allowed": True,
        }

    others = _other_tenants(shape, rng, ids)
    everyone = [CONTOSO, FABRIKAM, *(t["tenant_id"] for t in others)]

    def partners(own: str) -> dict[str, Any]:
        return {"partners": [partner(other) for other in everyone if other != own]}

    for tenant in others:
        tenant["cross_tenant_access"] = partners(tenant["tenant_id"])
    return {
        "$comment": (
            f"tenant-sync sandbox seed --users {shape.users} --groups {shape.groups} "
            f"--nested {shape.nested} --guests {shape.guests} --m365-groups "
            f"{shape.m365_groups} --dynamic-groups {shape.dynamic_groups}"
            + (" --unicode" if shape.unicode else "")
            + ("" if shape.managers else " --no-managers")
            + f" --random-seed {shape.random_seed}"
            + (f" --tenants {shape.tenants}" if shape.tenants != 2 else "")
        ),
        "tenants": [
            {
                "tenant_id": CONTOSO,
                "domain": SOURCE_DOMAIN,
                "display_name": "Contoso",
                "clients": [{"client_id": CONTOSO_CLIENT, "client_secret": "contoso-secret"}],
                "users": members + guests,
                "groups": groups,
                "cross_tenant_access": partners(CONTOSO),
            },
            {
                "tenant_id": FABRIKAM,
                "domain": TARGET_DOMAIN,
                "display_name": "Fabrikam",
                "clients": [{"client_id": FABRIKAM_CLIENT, "client_secret": "fabrikam-secret"}],
                "users": [
                    {
                        "id": "f0000000-0000-4000-8000-000000000001",
                        "userPrincipalName": f"admin@{TARGET_DOMAIN}",
                        "displayName": "Fabrikam Admin",
                        "mail": "admin@fabrikam.com",
                    }
                ],
                "cross_tenant_access": partners(FABRIKAM),
            },
            *others,
        ],
    }


def org_tenant_names(count: int) -> list[str]:
    """The names of an organisation of `count` tenants: contoso, fabrikam, then ORG_NAMES."""
    extra = [*ORG_NAMES, *(f"tenant{k}" for k in range(len(ORG_NAMES) + 3, MAX_TENANTS + 1))]
    return ["contoso", "fabrikam", *extra[: count - 2]]


def _other_tenants(shape: Shape, rng: random.Random, ids: _Ids) -> list[dict[str, Any]]:
    """Tenants 3..N of an organisation: a tenth of `users` members each (at least one), fixed
    ids (tenant `0000000k-3333-4333-8333-00000000000k`, client `cccccccc-000k-...`) and the
    secret `{name}-secret`; partner settings are added by the caller."""
    members = max(1, shape.users // 10)
    tenants = []
    for k, name in enumerate(org_tenant_names(shape.tenants)[2:], start=3):
        tenants.append(
            {
                "tenant_id": f"{k:08d}-3333-4333-8333-{k:012d}",
                "domain": f"{name}.onmicrosoft.com",
                "display_name": name.capitalize(),
                "clients": [
                    {
                        "client_id": f"cccccccc-{k:04d}-4ccc-8ccc-{k:012d}",
                        "client_secret": f"{name}-secret",
                    }
                ],
                "users": [_member(i, shape, rng, ids, name) for i in range(members)],
            }
        )
    return tenants


def summary(seed: dict[str, Any]) -> str:
    """One line describing a generated seed's source tenant."""
    source = seed["tenants"][0]
    users = source["users"]
    guests = sum(1 for u in users if u.get("userType") == "Guest")
    kinds = {"security": 0, "Microsoft 365": 0, "dynamic": 0}
    for g in source["groups"]:
        types = g.get("groupTypes") or []
        kinds["Microsoft 365" if "Unified" in types else "dynamic" if types else "security"] += 1
    groups = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
    others = "".join(
        f"; {t['display_name'].lower()}: {len(t['users'])} members" for t in seed["tenants"][2:]
    )
    return (
        f"contoso: {len(users) - guests} members, {guests} guests, groups: {groups}; "
        f"fabrikam: 1 user{others}; tenant and client ids as config/tenant-sync.yaml expects"
    )
