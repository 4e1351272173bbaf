"""Seeds of chosen shapes (`tenant-sync sandbox seed`): valid, reproducible, the shape asked for."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tenant_sync_sandbox import generate as gen
from tenant_sync_sandbox.seed import validate_seed
from tenant_sync_sandbox.state import SandboxState

pytestmark = pytest.mark.unit


def test_shape_and_validity() -> None:
    shape = gen.Shape(users=40, groups=3, nested=2, guests=4, m365_groups=2, dynamic_groups=2)
    seed = gen.generate(shape)
    state = SandboxState(validate_seed(seed))
    source = state.tenants[gen.CONTOSO]
    members = [u for u in source.users.values() if u["userType"] == "Member"]
    guests = [u for u in source.users.values() if u["userType"] == "Guest"]
    assert (len(members), len(guests)) == (40, 4)
    assert all("#EXT#" in g["userPrincipalName"] for g in guests)
    kinds = [tuple(g.get("groupTypes") or ()) for g in source.groups.values()]
    assert kinds.count(()) == 5  # 3 security + 2 nested
    assert kinds.count(("Unified",)) == 2
    assert kinds.count(("DynamicMembership",)) == 2
    scope = source.groups[gen.SYNC_SCOPE]
    assert scope["displayName"] == "Sync scope"
    # A chain two deep under Sync scope, each level with members of its own.
    level1 = [m for m in source.members[gen.SYNC_SCOPE] if m in source.groups]
    assert len(level1) == 1
    level2 = [m for m in source.members[level1[0]] if m in source.groups]
    assert len(level2) == 1
    assert source.members[level2[0]]
    direct = {m for m in source.members[gen.SYNC_SCOPE] if m in source.users}
    assert set(source.transitive_members(gen.SYNC_SCOPE)) > direct
    # Dynamic groups hold the users of their department.
    for gid in source.rules:
        department = source.groups[gid]["membershipRule"].split('"')[1]
        assert {source.users[m]["department"] for m in source.members[gid]} == {department}
    # A manager tree: everyone but the first has an earlier user as manager.
    ids = [u["id"] for u in seed["tenants"][0]["users"][:40]]
    assert source.manager_of(ids[0]) is None
    assert all(ids.index(str(source.manager_of(u))) < ids.index(u) for u in ids[1:])


def test_the_shipped_config_ids() -> None:
    seed = gen.generate(gen.Shape(users=3))
    contoso, fabrikam = seed["tenants"]
    assert contoso["tenant_id"] == "11111111-1111-4111-8111-111111111111"
    assert contoso["clients"] == [
        {"client_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "client_secret": "contoso-secret"}
    ]
    assert fabrikam["clients"][0]["client_secret"] == "fabrikam-secret"
    assert contoso["groups"][0]["id"] == "c1000000-0000-4000-8000-000000000001"


def test_unicode_names_and_ascii_addresses() -> None:
    seed = gen.generate(gen.Shape(users=30, guests=3, unicode=True))
    users = seed["tenants"][0]["users"]
    assert any(not u["displayName"].isascii() for u in users)
    assert any("'" in u["displayName"] for u in users)
    for user in users:
        assert user["userPrincipalName"].isascii()
        assert user["mail"].isascii()
    validate_seed(seed)


def test_reproducible() -> None:
    shape = gen.Shape(users=25, groups=2, guests=2)
    assert gen.generate(shape) == gen.generate(shape)
    assert gen.generate(shape) != gen.generate(
        gen.Shape(users=25, groups=2, guests=2, random_seed=2)
    )


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (gen.Shape(groups=0), "--groups must be at least 1"),
        (gen.Shape(users=-1), "--users must be 0 or more"),
        (gen.Shape(m365_groups=-2), "--m365-groups must be 0 or more"),
        (gen.Shape(tenants=1), "--tenants must be 2 to 100"),
        (gen.Shape(tenants=101), "--tenants must be 2 to 100"),
    ],
)
def test_bad_shapes(shape: gen.Shape, message: str) -> None:
    with pytest.raises(gen.ShapeError) as caught:
        gen.generate(shape)
    assert message in str(caught.value)


def test_an_organisation_of_five_partner_tenants() -> None:
    two = gen.generate(gen.Shape(users=30))
    seed = gen.generate(gen.Shape(users=30, tenants=5))
    validate_seed(seed)
    assert seed["tenants"][0]["users"] == two["tenants"][0]["users"]
    names = [t["domain"].split(".")[0] for t in seed["tenants"]]
    assert names == gen.org_tenant_names(5) == [
        "contoso", "fabrikam", "adatum", "northwind", "tailspin"
    ]  # fmt: skip
    ids = [t["tenant_id"] for t in seed["tenants"]]
    assert ids[2] == "00000003-3333-4333-8333-000000000003"
    for tenant in seed["tenants"]:
        partners = {p["tenant_id"] for p in tenant["cross_tenant_access"]["partners"]}
        assert partners == set(ids) - {tenant["tenant_id"]}
    adatum = seed["tenants"][2]
    assert len(adatum["users"]) == 3
    assert adatum["users"][0]["userPrincipalName"].endswith("@adatum.onmicrosoft.com")
    assert adatum["clients"][0]["client_secret"] == "adatum-secret"
    assert "--tenants 5" in seed["$comment"]
    assert "adatum: 3 members" in gen.summary(seed)
    assert len(gen.org_tenant_names(100)) == 100


def test_the_same_seed_as_before_the_generator_streamed() -> None:
    # A fingerprint of this shape's seed from the generator that built it whole in memory: the
    # streaming one draws in the same order, so people's random_seed keeps giving their seed.
    shape = gen.Shape(users=40, groups=3, nested=2, guests=4, m365_groups=2, dynamic_groups=2)
    seed = gen.generate(dataclasses.replace(shape, tenants=3))
    digest = hashlib.sha256(json.dumps(seed, sort_keys=True).encode()).hexdigest()
    assert digest == "c75e3d127bd9349ffd01685e377e028e20ae5377f01f93d649715be426539977"


def test_write_seed_streams_a_large_seed_and_applies_the_edit(tmp_path: Path) -> None:
    def edit(seed: dict[str, Any]) -> None:
        seed["tenants"][0]["domain"] = "source.example.com"
        seed["limits"] = {"write_per_150s": 10**9}

    path = tmp_path / "seed.json"
    tracemalloc.start()
    try:
        with path.open("w", encoding="utf-8") as out:
            gen.write_seed(gen.Shape(users=3_000, groups=2, nested=1), out, edit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Whole, these 3,000 users are about 6 MB of objects; written one at a time, the
    # generator keeps 16 bytes an id and a byte per member and group (under 0.1 MB).
    assert peak < 500_000, peak
    seed = json.loads(path.read_text("utf-8"))
    assert seed["tenants"][0]["domain"] == "source.example.com"
    assert seed["limits"] == {"write_per_150s": 10**9}
    unedited = gen.generate(gen.Shape(users=3_000, groups=2, nested=1))
    assert seed["tenants"][0]["users"] == unedited["tenants"][0]["users"]
    assert seed["tenants"][0]["groups"] == unedited["tenants"][0]["groups"]
