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

import functools
import io
import itertools
import json
import random
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

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


@functools.cache  # called twice a user, on names from the fixed pools above
def _ascii(text: str) -> str:
    """Letters and digits of `text` without accents; other scripts drop out."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self) -> str:
        # What str(uuid.UUID(int=..., version=4)) gives, without making the UUID object.
        return _dashed(f"{self.rng.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}")


# The bits uuid.UUID(version=4) clears and sets: the variant (RFC 4122) and the version.
_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_V4_SET = (0x8000 << 48) | (4 << 76)


def _dashed(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


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
    out = io.StringIO()
    write_seed(shape, out)
    seed: dict[str, Any] = json.loads(out.getvalue())
    return seed


def write_seed(
    shape: Shape, out: TextIO, edit: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Write the shape's seed (the same as `generate`'s) to `out` as JSON, a user at a time, so
    that memory does not grow with the users beyond 16 bytes an id and a byte per member and
    group (a 1,000,000-user seed takes about 20 MB to write, not gigabytes).

    `edit`, if given, may change the seed before it is written: its top level and its tenants'
    own fields (ids, domains, clients, partners), not their `users` and `groups`, which are
    written as they are drawn. Raises ShapeError for a bad shape."""
    shape.check()
    rng = random.Random(shape.random_seed)
    ids = _Ids(rng)
    member_ids = bytearray()  # each member's id, 16 bytes: managers and groups name them
    others = _other_tenants(shape, rng, ids)
    everyone = [CONTOSO, FABRIKAM, *(t["tenant_id"] for t in others)]

    def partners(own: str) -> dict[str, Any]:
        return {
            "partners": [
                {
                    "tenant_id": other,
                    "inbound_auto_redeem": True,
                    "outbound_auto_redeem": True,
                    "is_sync_allowed": True,
                }
                for other in everyone
                if other != own
            ]
        }

    for tenant in others:
        tenant["cross_tenant_access"] = partners(tenant["tenant_id"])
    seed: dict[str, Any] = {
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
                "users": _Lazy(lambda: _source_users(shape, rng, ids, member_ids)),
                "groups": _Lazy(lambda: _source_groups(shape, rng, ids, member_ids)),
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
    if edit is not None:
        edit(seed)
    # Written in the order the users and groups were always drawn from `rng` (contoso's
    # members, guests, groups, then the other tenants' members), so a shape and random_seed
    # give the same seed as before.
    _write(seed, out)


class _Lazy:
    """A JSON array whose items are drawn only while it is written."""

    def __init__(self, items: Callable[[], Iterable[Any]]) -> None:
        self.items = items


# One encoder for every item (json.dumps with options makes a new one per call).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _write(value: Any, out: TextIO) -> None:
    if isinstance(value, _Lazy):
        out.write("[")
        for n, item in enumerate(value.items()):
            out.write(",\n" if n else "\n")
            if isinstance(item, dict) and any(isinstance(v, _Lazy) for v in item.values()):
                _write(item, out)
            else:
                out.write(_ENCODE(item))
        out.write("]")
    elif isinstance(value, dict):
        out.write("{")
        for n, (key, item) in enumerate(value.items()):
            out.write(f"{',' if n else ''}{json.dumps(key)}:")
            _write(item, out)
        out.write("}")
    elif isinstance(value, list):
        out.write("[")
        for n, item in enumerate(value):
            out.write("," if n else "")
            _write(item, out)
        out.write("]")
    else:
        out.write(_ENCODE(value))


def _id_at(member_ids: bytearray, i: int) -> str:
    return _dashed(member_ids[16 * i : 16 * i + 16].hex())


def _source_users(
    shape: Shape, rng: random.Random, ids: _Ids, member_ids: bytearray
) -> Iterator[dict[str, Any]]:
    for i in range(shape.users):
        user = _member(i, shape, rng, ids)
        member_ids += bytes.fromhex(user["id"].replace("-", ""))
        if shape.managers and i:
            user["manager"] = _id_at(member_ids, (i - 1) // MANAGER_FAN_OUT)
        yield user
    for i in range(shape.guests):
        yield {"id": ids.new(), **_guest(i, shape)}


def _source_groups(
    shape: Shape, rng: random.Random, ids: _Ids, member_ids: bytearray
) -> Iterator[dict[str, Any]]:
    """Sync scope (nine in ten members), the security groups, the nested chain under Sync
    scope, Microsoft 365 and dynamic groups. Everything is drawn first, in that order, then
    written: memberships are one byte per member and group."""
    n = shape.users

    def draw(share: float) -> bytearray:
        return bytearray(rng.random() < share for _ in range(n))

    def chosen(flags: bytearray, want: int = 1) -> Iterator[str]:
        return (_id_at(member_ids, i) for i in range(n) if flags[i] == want)

    in_scope = draw(0.9)
    security = []
    for k in range(1, shape.groups):
        flags = draw(0.2)
        security.append((ids.new(), k, flags))
    nested = [ids.new() for _ in range(shape.nested)]
    teams = [(ids.new(), draw(0.2)) for _ in range(shape.m365_groups)]
    dynamic = [ids.new() for _ in range(shape.dynamic_groups)]

    def with_next(members: Iterable[str], depth: int) -> _Lazy:
        # Each level of the chain holds the next one (Sync scope is level 0).
        tail = [nested[depth]] if depth < len(nested) else []
        return _Lazy(lambda: itertools.chain(members, tail))

    yield {"id": SYNC_SCOPE, "displayName": "Sync scope", "members": with_next(chosen(in_scope), 0)}
    for gid, k, flags in security:
        yield {
            "id": gid,
            "displayName": _group_name("Security group", k, shape),
            "members": _Lazy(functools.partial(chosen, flags)),
        }
    for depth, gid in enumerate(nested, start=1):
        # The members outside Sync scope, shared out between the levels.
        outside = itertools.islice(chosen(in_scope, 0), depth - 1, None, shape.nested)
        yield {
            "id": gid,
            "displayName": _group_name("Nested level", depth, shape),
            "members": with_next(outside, depth),
        }
    for k, (gid, flags) in enumerate(teams, start=1):
        yield {
            "id": gid,
            "displayName": _group_name("Team", k, shape),
            "mailNickname": f"team{k}",
            "groupTypes": ["Unified"],
            "members": _Lazy(functools.partial(chosen, flags)),
        }
    for k, gid in enumerate(dynamic, start=1):
        department = DEPARTMENTS[(k - 1) % len(DEPARTMENTS)]
        yield {
            "id": gid,
            "displayName": _group_name(f"{department} (dynamic)", k, shape),
            "mailNickname": f"dynamic{k}",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": f'user.department -eq "{department}"',
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

    def users(name: str) -> _Lazy:
        return _Lazy(lambda: (_member(i, shape, rng, ids, name) for i in range(members)))

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
                "users": users(name),
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
