"""Seed validation and normalisation, invitation naming rules, throttling windows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tenant_sync_sandbox.invitations import guest_mail_nickname, guest_upn, is_email_address
from tenant_sync_sandbox.limits import Charge, Limiter
from tenant_sync_sandbox.seed import (
    DEFAULT_FAULTS,
    DEFAULT_LIMITS,
    SeedError,
    load_seed,
    validate_seed,
)

pytestmark = pytest.mark.unit

TID = "0b1c2d3e-0000-4000-8000-000000000001"


def tenant(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant_id": TID,
        "domain": "contoso.onmicrosoft.com",
        "clients": [{"client_id": "c1", "client_secret": "s"}],
        "users": [{"userPrincipalName": "ann@contoso.onmicrosoft.com", "displayName": "Ann"}],
    }
    base.update(over)
    return base


def test_normalises_users_and_defaults() -> None:
    seed = validate_seed({"tenants": [tenant()]})
    user = seed["tenants"][0]["users"][0]
    assert len(user["id"]) == 36
    assert user["userType"] == "Member"
    assert user["accountEnabled"] is True
    assert user["creationType"] is None
    assert user["createdDateTime"].endswith("Z")
    assert seed["limits"] == DEFAULT_LIMITS
    assert seed["faults"] == DEFAULT_FAULTS
    assert seed["faults"]["error_rate"] == 0.0
    assert seed["faults"]["latency_ms"] == 0
    assert seed["delta"] == {"token_max_age_s": 7 * 24 * 3600, "lag_s": 0.0}


def test_accepts_any_user_property_and_b2b_users() -> None:
    users = [
        {
            "userPrincipalName": "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            "userType": "Guest",
            "mail": "bob@fabrikam.com",
            "businessPhones": ["+1 555"],
            "otherMails": ["bob@fabrikam.com"],
            "employeeId": "42",
            "companyName": "Fabrikam",
        }
    ]
    seed = validate_seed({"tenants": [tenant(users=users)]})
    assert seed["tenants"][0]["users"][0]["businessPhones"] == ["+1 555"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "'tenants' must be a non-empty list"),
        ({"tenants": [{"domain": "x.com"}]}, "missing 'tenant_id'"),
        ({"tenants": [tenant(tenant_id="nope")]}, "must be a GUID"),
        ({"tenants": [tenant(), tenant()]}, "duplicate"),
        (
            {"tenants": [tenant(users=[{"id": "u1", "userPrincipalName": "a@x.com"}] * 2)]},
            "duplicate id u1",
        ),
        (
            {
                "tenants": [
                    tenant(
                        users=[
                            {"userPrincipalName": "a@x.com"},
                            {"userPrincipalName": "A@X.com"},
                        ]
                    )
                ]
            },
            "duplicate userPrincipalName",
        ),
        ({"tenants": [tenant(users=[{"displayName": "x"}])]}, "userPrincipalName"),
        (
            {"tenants": [tenant(users=[{"userPrincipalName": "a@x.com", "departement": "x"}])]},
            "'departement' does not exist",
        ),
        (
            {"tenants": [tenant(users=[{"userPrincipalName": "a@x.com", "accountEnabled": "y"}])]},
            "accountEnabled",
        ),
        ({"tenants": [tenant(groups=[{"members": ["ghost"]}])]}, "not a user or group"),
        ({"tenants": [tenant(clients=[{"client_id": "c"}])]}, "client_secret"),
        ({"tenants": [tenant(clients=[{"client_id": "c", "certificate": "junk"}])]}, "PEM"),
        ({"tenants": [tenant()], "limits": {"writes": 1}}, "not a known limit"),
        ({"tenants": [tenant()], "faults": {"error_rate": 2}}, "between 0 and 1"),
    ],
)
def test_bad_seeds(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError, match=None) as info:
        validate_seed(data)
    assert fragment in str(info.value)


def test_load_seed_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeedError) as info:
        load_seed(bad)
    assert str(bad) in str(info.value)
    assert "not valid JSON" in str(info.value)
    with pytest.raises(SeedError) as info:
        load_seed(tmp_path / "missing.json")
    assert "cannot be read" in str(info.value)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"tenants": [tenant()]}))
    assert load_seed(good)["tenants"][0]["tenant_id"] == TID


def test_guest_naming_rules() -> None:
    assert guest_upn("ann@contoso.com", "fabrikam.onmicrosoft.com") == (
        "ann_contoso.com#EXT#@fabrikam.onmicrosoft.com"
    )
    assert guest_upn("ann@contoso.com", "f.com", "1") == "ann_contoso.com1#EXT#@f.com"
    assert guest_mail_nickname("ann.lee@contoso.co.uk") == "ann.lee_contoso.co.uk#EXT#"
    assert is_email_address("ann@contoso.com")
    for bad in ("ann", "ann@", "@x.com", "a b@x.com", "ann@localhost", "a@b@c.com"):
        assert not is_email_address(bad), bad


def test_limiter_refuses_over_quota_and_recovers() -> None:
    limiter = Limiter()
    charge = [Charge(("w", "t"), 1, 3, 10.0, "WriteLimitExceeded")]
    for _ in range(3):
        assert limiter.try_charge(charge, now=100.0) is None
    refused = limiter.try_charge(charge, now=101.0)
    assert refused == (9, "WriteLimitExceeded")
    assert limiter.try_charge(charge, now=110.5) is None


def test_limiter_is_all_or_nothing() -> None:
    limiter = Limiter()
    small = Charge(("a",), 1, 1, 5.0, "A")
    big = Charge(("b",), 1, 100, 5.0, "B")
    assert limiter.try_charge([small, big], now=0.0) is None
    assert limiter.try_charge([small, big], now=1.0) is not None
    # "b" was not charged by the refused request
    assert limiter.try_charge([Charge(("b",), 99, 100, 5.0, "B")], now=1.0) is None


# ---------------------------------------------------------------- groups and managers

ANN = {"id": "ann", "userPrincipalName": "ann@contoso.onmicrosoft.com", "department": "Sales"}
BOB = {"id": "bob", "userPrincipalName": "bob@contoso.onmicrosoft.com", "manager": "ann"}


def test_group_kinds_get_entras_defaults() -> None:
    groups = [
        {"id": "sec", "displayName": "Sec", "members": ["ann"]},
        {"id": "m365", "displayName": "Team One", "groupTypes": ["Unified"]},
        {
            "id": "dyn",
            "displayName": "Sales",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": 'user.department -eq "Sales"',
        },
    ]
    seed = validate_seed({"tenants": [tenant(users=[ANN, BOB], groups=groups)]})
    sec, m365, dyn = seed["tenants"][0]["groups"]
    assert (sec["securityEnabled"], sec["mailEnabled"], sec["groupTypes"]) == (True, False, [])
    assert (m365["securityEnabled"], m365["mailEnabled"]) == (False, True)
    assert m365["mail"] == "TeamOne@contoso.onmicrosoft.com"
    assert dyn["membershipRuleProcessingState"] == "On"
    assert seed["tenants"][0]["users"][1]["manager"] == "ann"


@pytest.mark.parametrize(
    ("users", "groups", "fragment"),
    [
        ([ANN, {**BOB, "manager": "nobody"}], [], "users[1].manager: 'nobody' is not another user"),
        ([{**ANN, "manager": "ann"}], [], "users[0].manager: 'ann' is not another user"),
        ([ANN, {**BOB, "manager": "g"}], [{"id": "g"}], "is a group, not a user"),
        (
            [ANN],
            [
                {
                    "groupTypes": ["DynamicMembership"],
                    "membershipRule": 'user.x -eq "1"',
                    "members": [],
                }
            ],
            "membershipRule: user.x is not a property of users",
        ),
        (
            [ANN],
            [{"groupTypes": ["DynamicMembership"], "membershipRule": "user.department -eq"}],
            "membershipRule: the rule ends where a value was expected",
        ),
        (
            [ANN],
            [
                {
                    "groupTypes": ["DynamicMembership"],
                    "membershipRule": 'user.department -eq "Sales"',
                    "members": ["ann"],
                }
            ],
            "a dynamic group's members come from its membershipRule",
        ),
        ([ANN], [{"groupTypes": ["Distribution"]}], "'Distribution' is not one of"),
        ([ANN], [{"groupTypes": ["DynamicMembership"]}], "needs a 'membershipRule'"),
    ],
)
def test_bad_groups_and_managers(
    users: list[dict[str, Any]], groups: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(SeedError) as caught:
        validate_seed({"tenants": [tenant(users=users, groups=groups)]})
    assert fragment in str(caught.value)
