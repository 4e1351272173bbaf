"""B2B invitations and cross-tenant access policy on the sandbox over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    make_user,
    partner,
    running_sandbox,
)

pytestmark = pytest.mark.integration

CONTOSO_ID = "11111111-1111-4111-8111-111111111111"
FABRIKAM_ID = "22222222-2222-4222-8222-222222222222"
LONER_ID = "33333333-3333-4333-8333-333333333333"
ANN = make_user("ann", "contoso.onmicrosoft.com", mail="ann@contoso.com")
BOB = make_user("bob", "loner.onmicrosoft.com", mail="bob@loner.com")
EXISTING_GUEST = make_user(
    "old_contoso.com#EXT#",
    "fabrikam.onmicrosoft.com",
    mail="old@contoso.com",
    otherMails=["old.alias@contoso.com"],
    userType="Guest",
)
CONTOSO = make_tenant(
    "contoso.onmicrosoft.com",
    tenant_id=CONTOSO_ID,
    users=[ANN],
    partners=[partner(FABRIKAM_ID)],
)
FABRIKAM = make_tenant(
    "fabrikam.onmicrosoft.com",
    tenant_id=FABRIKAM_ID,
    users=[EXISTING_GUEST],
    partners=[partner(CONTOSO_ID), partner(LONER_ID, auto_redeem=False, sync=False)],
)
LONER = make_tenant("loner.onmicrosoft.com", tenant_id=LONER_ID, users=[BOB])


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    seed = make_seed(CONTOSO, FABRIKAM, LONER)
    with running_sandbox(seed, tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def target(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(FABRIKAM))


def invite(graph: httpx.Client, address: str, **extra: object) -> httpx.Response:
    body = {
        "invitedUserEmailAddress": address,
        "inviteRedirectUrl": "https://myapps.microsoft.com",
        "sendInvitationMessage": False,
        **extra,
    }
    return graph.post("/invitations", json=body)


def test_new_guest_has_graph_shape(target: httpx.Client, sb: SandboxHandle) -> None:
    resp = invite(target, "bob@loner.com", invitedUserDisplayName="Bob B")
    assert resp.status_code == 201, resp.text
    inv = resp.json()
    assert inv["status"] == "PendingAcceptance"  # loner has no auto-redeem with fabrikam
    assert inv["invitedUserEmailAddress"] == "bob@loner.com"
    assert inv["invitedUserType"] == "Guest"
    assert inv["resetRedemption"] is False
    assert inv["inviteRedeemUrl"].startswith("https://")
    for key in ("@odata.context", "id", "invitedUserDisplayName", "invitedUserMessageInfo"):
        assert key in inv
    uid = inv["invitedUser"]["id"]
    user = {u["id"]: u for u in sb.users(FABRIKAM_ID)}[uid]
    assert user["userPrincipalName"] == "bob_loner.com#EXT#@fabrikam.onmicrosoft.com"
    assert user["mail"] == "bob@loner.com"
    assert user["otherMails"] == ["bob@loner.com"]
    assert user["mailNickname"] == "bob_loner.com#EXT#"
    assert user["displayName"] == "Bob B"
    assert user["userType"] == "Guest"
    assert user["accountEnabled"] is True
    assert user["creationType"] == "Invitation"
    assert user["externalUserState"] == "PendingAcceptance"
    assert user["externalUserStateChangeDateTime"].endswith("Z")
    assert user["identities"] == [
        {
            "signInType": "userPrincipalName",
            "issuer": "fabrikam.onmicrosoft.com",
            "issuerAssignedId": user["userPrincipalName"],
        }
    ]
    # findable the way the worker looks for B2B users
    found = target.get(
        "/users", params={"$filter": "otherMails/any(x:x eq 'BOB@loner.com')"}
    ).json()["value"]
    assert [u["id"] for u in found] == [uid]


def test_auto_redeem_between_partners(target: httpx.Client, sb: SandboxHandle) -> None:
    resp = invite(target, "ann@contoso.com", invitedUserType="Member")
    inv = resp.json()
    assert inv["status"] == "Completed"
    user = {u["id"]: u for u in sb.users(FABRIKAM_ID)}[inv["invitedUser"]["id"]]
    assert user["externalUserState"] == "Accepted"
    assert user["userType"] == "Member"
    assert user["displayName"] == "ann"


def test_existing_address_returns_the_same_user(target: httpx.Client, sb: SandboxHandle) -> None:
    first = invite(target, "cy@example.org").json()
    second = invite(target, "CY@example.org").json()
    assert first["invitedUser"]["id"] == second["invitedUser"]["id"]
    by_alias = invite(target, "old.alias@contoso.com").json()
    assert by_alias["invitedUser"]["id"] == EXISTING_GUEST["id"]
    matches = [u for u in sb.users(FABRIKAM_ID) if (u["mail"] or "").lower() == "cy@example.org"]
    assert len(matches) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"inviteRedirectUrl": "https://x"},
        {"invitedUserEmailAddress": "a@b.com"},
        {"invitedUserEmailAddress": "not-an-address", "inviteRedirectUrl": "https://x"},
    ],
)
def test_invalid_invitations(target: httpx.Client, body: dict[str, str]) -> None:
    resp = target.post("/invitations", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadRequest"


def test_cross_tenant_access_partners(target: httpx.Client) -> None:
    base = "/policies/crossTenantAccessPolicy/partners"
    got = target.get(f"{base}/{CONTOSO_ID}").json()
    assert got["tenantId"] == CONTOSO_ID
    assert got["automaticUserConsentSettings"] == {"inboundAllowed": True, "outboundAllowed": True}
    assert got["isServiceProvider"] is False
    sync = target.get(f"{base}/{CONTOSO_ID}/identitySynchronization").json()
    assert sync["tenantId"] == CONTOSO_ID
    assert sync["userSyncInbound"] == {"isSyncAllowed": True}
    assert "displayName" in sync
    loner = target.get(f"{base}/{LONER_ID}/identitySynchronization").json()
    assert loner["userSyncInbound"] == {"isSyncAllowed": False}
    missing = target.get(f"{base}/44444444-4444-4444-8444-444444444444")
    assert missing.status_code == 404
