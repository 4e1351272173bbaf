"""The sandbox's cross-tenant access policy writes, as Graph answers them, over HTTPS: partners
POST (201, 409 when present) / PATCH (204) / GET, identitySynchronization GET (404 until it
exists) / PUT (204), and 403 for a client without Policy.ReadWrite.CrossTenantAccess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    new_id,
    running_sandbox,
)

pytestmark = pytest.mark.integration

PARTNERS = "/policies/crossTenantAccessPolicy/partners"
ADATUM_ID = "44444444-4444-4444-8444-444444444444"
WRITER = make_tenant("writer.onmicrosoft.com")
READER = make_tenant("reader.onmicrosoft.com")
READER["clients"][0]["roles"] = ["User.Read.All", "Policy.Read.All"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    workdir: Path = tmp_path_factory.mktemp("policies")
    with running_sandbox(make_seed(WRITER, READER), workdir) as handle:
        yield handle


def test_a_partner_is_created_patched_and_its_sync_policy_put(sandbox: SandboxHandle) -> None:
    graph = sandbox.graph(*client_of(WRITER))
    assert graph.get(f"{PARTNERS}/{ADATUM_ID}").status_code == 404

    created = graph.post(
        PARTNERS,
        json={
            "tenantId": ADATUM_ID,
            "automaticUserConsentSettings": {"inboundAllowed": True, "outboundAllowed": False},
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["tenantId"] == ADATUM_ID
    again = graph.post(PARTNERS, json={"tenantId": ADATUM_ID})
    assert again.status_code == 409
    assert again.json()["error"]["code"]

    # PATCH merges the complex value member by member and answers 204 without a body.
    patched = graph.patch(
        f"{PARTNERS}/{ADATUM_ID}",
        json={"automaticUserConsentSettings": {"outboundAllowed": True}},
    )
    assert patched.status_code == 204
    entry = graph.get(f"{PARTNERS}/{ADATUM_ID}").json()
    assert entry["automaticUserConsentSettings"] == {
        "inboundAllowed": True,
        "outboundAllowed": True,
    }
    assert [p["tenantId"] for p in graph.get(PARTNERS).json()["value"]] == [ADATUM_ID]

    sync = f"{PARTNERS}/{ADATUM_ID}/identitySynchronization"
    assert graph.get(sync).status_code == 404
    put = graph.put(
        sync, json={"displayName": "Adatum", "userSyncInbound": {"isSyncAllowed": True}}
    )
    assert put.status_code == 204
    policy = graph.get(sync).json()
    assert policy["displayName"] == "Adatum"
    assert policy["userSyncInbound"] == {"isSyncAllowed": True}


def test_bad_bodies_are_refused_as_graph_does(sandbox: SandboxHandle) -> None:
    graph = sandbox.graph(*client_of(WRITER))
    unknown = graph.post(PARTNERS, json={"tenantId": new_id(), "isSyncAllowed": True})
    assert unknown.status_code == 400
    assert "does not exist" in unknown.json()["error"]["message"]
    wrong_type = graph.post(
        PARTNERS,
        json={"tenantId": new_id(), "automaticUserConsentSettings": {"inboundAllowed": "yes"}},
    )
    assert wrong_type.status_code == 400
    missing = graph.put(
        f"{PARTNERS}/{new_id()}/identitySynchronization",
        json={"userSyncInbound": {"isSyncAllowed": True}},
    )
    assert missing.status_code == 404


def test_writing_needs_policy_readwrite_crosstenantaccess(sandbox: SandboxHandle) -> None:
    graph = sandbox.graph(*client_of(READER))
    assert graph.get(PARTNERS).status_code == 200  # Policy.Read.All reads
    refused = graph.post(PARTNERS, json={"tenantId": ADATUM_ID})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"
    assert graph.get(f"{PARTNERS}/{ADATUM_ID}").status_code == 404
