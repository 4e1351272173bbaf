"""Contract tests: every Graph response of the sandbox fits the CSDL types (tests/support/csdl.py).

Users, groups, members, invitations, deleted items, delta pages (with `@removed` and
`members@delta`) and the cross-tenant access policy, over HTTPS; also the request bodies the
sandbox accepts are valid request bodies for the validator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.csdl import structural_properties, validate_collection, validate_entity
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
DOMAIN = "fabrikam.onmicrosoft.com"
ANN = make_user(
    "ann",
    DOMAIN,
    id="a0000000-0000-4000-8000-000000000001",
    givenName="Ann",
    surname="Lee",
    department="Sales",
    businessPhones=["+47 555 0100"],
    otherMails=["ann@example.org"],
    employeeOrgData={"division": "R&D", "costCenter": "42"},
    onPremisesExtensionAttributes={"extensionAttribute1": "x"},
    identities=[{"signInType": "emailAddress", "issuer": DOMAIN, "issuerAssignedId": "ann@x"}],
)
BOB = make_user("bob", DOMAIN, id="b0000000-0000-4000-8000-000000000002")
GUEST = make_user(
    "zed_contoso.com#EXT#",
    DOMAIN,
    id="c0000000-0000-4000-8000-000000000003",
    userType="Guest",
    mail="zed@contoso.com",
    creationType="Invitation",
    externalUserState="PendingAcceptance",
)
GROUP_ID = "d0000000-0000-4000-8000-000000000004"
INNER_ID = "d0000000-0000-4000-8000-000000000005"
FABRIKAM = make_tenant(
    DOMAIN,
    tenant_id=FABRIKAM_ID,
    users=[ANN, BOB, GUEST],
    groups=[
        {"id": GROUP_ID, "displayName": "Sync", "members": [ANN["id"], INNER_ID]},
        {"id": INNER_ID, "displayName": "Inner", "members": [BOB["id"]], "description": "n"},
    ],
    partners=[partner(CONTOSO_ID)],
)
CONTOSO = make_tenant(
    "contoso.onmicrosoft.com",
    tenant_id=CONTOSO_ID,
    users=[make_user("cy", "contoso.onmicrosoft.com", mail="cy@contoso.com")],
    partners=[partner(FABRIKAM_ID)],
)
ALL_USER_PROPS = ",".join(p for p in structural_properties("user") if p != "passwordProfile")
ALL_GROUP_PROPS = ",".join(structural_properties("group"))


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    seed = make_seed(FABRIKAM, CONTOSO)
    with running_sandbox(seed, tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture
def graph(sb: SandboxHandle) -> httpx.Client:
    sb.reset()
    return sb.graph(*client_of(FABRIKAM))


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 300, resp.text
    return resp.json()


def all_pages(graph: httpx.Client, url: str, type_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while url:
        body = ok(graph.get(url))
        assert validate_collection(type_name, body) == []
        items += body["value"]
        url = body.get("@odata.nextLink") or ""
    return items


def test_users(graph: httpx.Client) -> None:
    assert len(all_pages(graph, "/users?$top=2", "user")) == 3
    full = all_pages(graph, f"/users?$select={ALL_USER_PROPS}", "user")
    assert {u["id"] for u in full} == {ANN["id"], BOB["id"], GUEST["id"]}
    one = ok(graph.get(f"/users/{ANN['id']}", params={"$select": ALL_USER_PROPS}))
    assert validate_entity("user", one) == []
    assert one["employeeOrgData"] == {"division": "R&D", "costCenter": "42"}
    assert validate_entity("user", ok(graph.get(f"/users/{ANN['id']}"))) == []
    groups = ok(graph.get(f"/users/{BOB['id']}/transitiveMemberOf"))
    assert validate_collection("directoryObject", groups) == []
    assert len(groups["value"]) == 2


def test_user_writes_echo_valid_users(graph: httpx.Client) -> None:
    body = {
        "accountEnabled": True,
        "displayName": "New",
        "mailNickname": "new",
        "userPrincipalName": f"new@{DOMAIN}",
        "passwordProfile": {"password": "P@ss-w0rd!", "forceChangePasswordNextSignIn": True},
        "usageLocation": "NO",
        "employeeHireDate": "2024-01-01T00:00:00Z",
        "businessPhones": [],
    }
    assert validate_entity("user", body, request_body=True) == []
    created = ok(graph.post("/users", json=body))
    assert validate_entity("user", created) == []
    patch = {"jobTitle": "Lead", "department": None, "showInAddressList": False}
    assert validate_entity("user", patch, request_body=True) == []
    assert graph.patch(f"/users/{created['id']}", json=patch).status_code == 204
    assert graph.delete(f"/users/{created['id']}").status_code == 204
    deleted = ok(graph.get("/directory/deletedItems/microsoft.graph.user"))
    assert validate_collection("user", deleted) == []
    one = ok(graph.get(f"/directory/deletedItems/{created['id']}"))
    assert validate_entity("directoryObject", one) == []
    restored = ok(graph.post(f"/directory/deletedItems/{created['id']}/restore"))
    assert validate_entity("directoryObject", restored) == []


def test_groups_and_members(graph: httpx.Client) -> None:
    groups = all_pages(graph, f"/groups?$select={ALL_GROUP_PROPS}", "group")
    assert len(groups) == 2
    assert validate_entity("group", ok(graph.get(f"/groups/{GROUP_ID}"))) == []
    members = all_pages(graph, f"/groups/{GROUP_ID}/members", "directoryObject")
    assert {m["@odata.type"] for m in members} == {
        "#microsoft.graph.user",
        "#microsoft.graph.group",
    }
    assert len(all_pages(graph, f"/groups/{GROUP_ID}/transitiveMembers", "directoryObject")) == 3
    body = {
        "displayName": "New group",
        "mailNickname": "newgroup",
        "mailEnabled": False,
        "securityEnabled": True,
        "members@odata.bind": [f"https://graph.microsoft.com/v1.0/users/{BOB['id']}"],
    }
    assert validate_entity("group", body, request_body=True) == []
    assert validate_entity("group", ok(graph.post("/groups", json=body))) == []


def test_invitations(graph: httpx.Client, sb: SandboxHandle) -> None:
    body = {
        "invitedUserEmailAddress": "cy@contoso.com",
        "inviteRedirectUrl": "https://myapps.microsoft.com",
        "invitedUserDisplayName": "Cy",
        "sendInvitationMessage": False,
        "invitedUserMessageInfo": {"customizedMessageBody": "Hi"},
    }
    assert validate_entity("invitation", body, request_body=True) == []
    accepted = ok(graph.post("/invitations", json=body))
    assert validate_entity("invitation", accepted) == []
    assert accepted["status"] == "Completed"  # contoso and fabrikam auto-redeem both ways
    pending = ok(graph.post("/invitations", json={**body, "invitedUserEmailAddress": "q@x.org"}))
    assert validate_entity("invitation", pending) == []
    assert pending["status"] == "PendingAcceptance"
    guest = ok(graph.get(f"/users/{pending['invitedUser']['id']}?$select={ALL_USER_PROPS}"))
    assert validate_entity("user", guest) == []
    assert guest["externalUserState"] == "PendingAcceptance"
    assert guest["creationType"] == "Invitation"


def test_cross_tenant_access_policy(graph: httpx.Client) -> None:
    base = "/policies/crossTenantAccessPolicy/partners"
    listed = ok(graph.get(base))
    assert validate_collection("crossTenantAccessPolicyConfigurationPartner", listed) == []
    one = ok(graph.get(f"{base}/{CONTOSO_ID}"))
    assert validate_entity("crossTenantAccessPolicyConfigurationPartner", one) == []
    assert one["automaticUserConsentSettings"] == {"inboundAllowed": True, "outboundAllowed": True}
    sync = ok(graph.get(f"{base}/{CONTOSO_ID}/identitySynchronization"))
    assert validate_entity("crossTenantIdentitySyncPolicyPartner", sync) == []
    assert sync["userSyncInbound"] == {"isSyncAllowed": True}


def delta_round(graph: httpx.Client, url: str, type_name: str) -> tuple[list[Any], str]:
    items: list[Any] = []
    while True:
        body = ok(graph.get(url))
        assert validate_collection(type_name, body) == []
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_delta_pages(graph: httpx.Client) -> None:
    users, user_link = delta_round(graph, f"/users/delta?$select={ALL_USER_PROPS}&$top=2", "user")
    assert len(users) == 3
    groups, group_link = delta_round(graph, "/groups/delta?$select=displayName,members", "group")
    assert all("members@delta" in g for g in groups)
    graph.patch(f"/users/{ANN['id']}", json={"department": None, "jobTitle": "Lead"})
    graph.delete(f"/users/{BOB['id']}")
    graph.delete(f"/users/{GUEST['id']}")
    graph.delete(f"/directory/deletedItems/{GUEST['id']}")
    graph.delete(f"/groups/{GROUP_ID}/members/{INNER_ID}/$ref")
    users, _ = delta_round(graph, user_link, "user")
    removed = {u["id"]: u["@removed"]["reason"] for u in users if "@removed" in u}
    assert removed == {BOB["id"]: "changed", GUEST["id"]: "deleted"}
    groups, _ = delta_round(graph, group_link, "group")
    changed = {g["id"]: g for g in groups}
    assert changed[GROUP_ID]["members@delta"] == [
        {"@odata.type": "#microsoft.graph.group", "id": INNER_ID, "@removed": {"reason": "deleted"}}
    ]
