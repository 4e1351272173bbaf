"""The sandbox's Entra side over real HTTPS with real MSAL: discovery, secrets, certificates."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certs import self_signed
from tests.support.sandbox import (
    SandboxHandle,
    client_of,
    make_seed,
    make_tenant,
    make_user,
    running_sandbox,
)

pytestmark = pytest.mark.integration


KEY_PEM, CERT_PEM, THUMBPRINT = self_signed()
CONTOSO = make_tenant(
    "contoso.onmicrosoft.com",
    users=[make_user("ann", "contoso.onmicrosoft.com")],
    certificate=CERT_PEM,
)
FABRIKAM = make_tenant(
    "fabrikam.onmicrosoft.com", users=[make_user("zed", "fabrikam.onmicrosoft.com")]
)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(CONTOSO, FABRIKAM), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


def test_discovery_document(sb: SandboxHandle) -> None:
    tid = CONTOSO["tenant_id"]
    resp = sb.http().get(f"{sb.url}/{tid}/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["issuer"] == f"{sb.url}/{tid}/v2.0"
    assert doc["token_endpoint"] == f"{sb.url}/{tid}/oauth2/v2.0/token"
    for key in (
        "authorization_endpoint",
        "jwks_uri",
        "device_authorization_endpoint",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
        "tenant_region_scope",
    ):
        assert key in doc
    assert resp.headers["request-id"]


def test_discovery_unknown_tenant(sb: SandboxHandle) -> None:
    resp = sb.http().get(
        f"{sb.url}/99999999-9999-4999-8999-999999999999/v2.0/.well-known/openid-configuration"
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_tenant"
    assert "AADSTS90002" in resp.json()["error_description"]


def test_msal_secret_token_and_graph_call(sb: SandboxHandle) -> None:
    tid, cid, secret = client_of(CONTOSO)
    graph = sb.graph(tid, cid, secret)
    users = graph.get("/users").json()["value"]
    assert [u["userPrincipalName"] for u in users] == ["ann@contoso.onmicrosoft.com"]


def test_msal_bad_secret(sb: SandboxHandle) -> None:
    tid, cid, _ = client_of(CONTOSO)
    result = sb.token_result(tid, cid, "wrong")
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]
    assert result["error_codes"] == [7000215]


def test_unknown_client_and_bad_scope(sb: SandboxHandle) -> None:
    tid = CONTOSO["tenant_id"]
    result = sb.token_result(tid, "00000000-0000-0000-0000-00000000dead", "x")
    assert "AADSTS700016" in result["error_description"]
    _, cid, secret = client_of(CONTOSO)
    resp = sb.http().post(
        f"{sb.url}/{tid}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cid,
            "client_secret": secret,
            "scope": "https://management.azure.com/.default",
        },
    )
    assert resp.status_code == 400
    # A resource the tenant does not have: Entra's AADSTS500011.
    assert resp.json()["error"] == "invalid_resource"
    assert "AADSTS500011" in resp.json()["error_description"]


def test_token_shape(sb: SandboxHandle) -> None:
    tid, cid, secret = client_of(CONTOSO)
    resp = sb.http().post(
        f"{sb.url}/{tid}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cid,
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["ext_expires_in"] == 3599
    claims_part = body["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_part + "=" * (-len(claims_part) % 4)))
    assert claims["tid"] == tid
    assert claims["appid"] == cid
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["exp"] > claims["iat"]


def test_msal_certificate_credential(sb: SandboxHandle) -> None:
    tid = CONTOSO["tenant_id"]
    cert_client = CONTOSO["clients"][1]["client_id"]
    credential = {"private_key": KEY_PEM, "thumbprint": THUMBPRINT}
    graph = sb.graph(tid, cert_client, credential)
    assert graph.get("/users").status_code == 200
    # With the public certificate MSAL signs PS256 with x5t#S256: accepted too.
    with_cert = {"private_key": KEY_PEM, "public_certificate": CERT_PEM}
    assert "access_token" in sb.token_result(tid, cert_client, with_cert)


def test_wrong_certificate_is_refused(sb: SandboxHandle) -> None:
    other_key, _, other_thumb = self_signed()
    tid = CONTOSO["tenant_id"]
    cert_client = CONTOSO["clients"][1]["client_id"]
    result = sb.token_result(tid, cert_client, {"private_key": other_key, "thumbprint": THUMBPRINT})
    assert result["error"] == "invalid_client"
    assert "AADSTS700027" in result["error_description"]
    result = sb.token_result(
        tid, cert_client, {"private_key": other_key, "thumbprint": other_thumb}
    )
    assert "AADSTS700027" in result["error_description"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic abc"}],
)
def test_graph_requires_a_valid_token(sb: SandboxHandle, headers: dict[str, str]) -> None:
    resp = sb.http().get(f"{sb.url}/v1.0/users", headers=headers)
    assert resp.status_code == 401
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["innerError"]["request-id"] == resp.headers["request-id"]


def test_token_selects_the_tenant(sb: SandboxHandle) -> None:
    tid, cid, secret = client_of(FABRIKAM)
    users = sb.graph(tid, cid, secret).get("/users").json()["value"]
    assert [u["userPrincipalName"] for u in users] == ["zed@fabrikam.onmicrosoft.com"]


def test_expired_access_token(sb: SandboxHandle) -> None:
    tid, cid, secret = client_of(FABRIKAM)
    sb.admin("PUT", "/_sandbox/auth", json={"token_lifetime_s": 1}).raise_for_status()
    try:
        token = sb.token_result(tid, cid, secret)["access_token"]
    finally:
        sb.admin("PUT", "/_sandbox/auth", json={"token_lifetime_s": 3599})
    client = httpx.Client(verify=sb.ssl_context(), trust_env=False)
    with client:
        deadline = time.monotonic() + 10
        while True:
            resp = client.get(f"{sb.url}/v1.0/users", headers={"Authorization": f"Bearer {token}"})
            if resp.status_code == 401 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert resp.status_code == 401
    assert "expired" in resp.json()["error"]["message"]


def test_ca_is_reused_across_restarts(sb: SandboxHandle, tmp_path: Path) -> None:
    seed = make_seed(make_tenant("solo.onmicrosoft.com"))
    with running_sandbox(seed, tmp_path) as first:
        ca_before = first.ca_path.read_bytes()
    with running_sandbox(seed, tmp_path) as second:
        assert second.ca_path.read_bytes() == ca_before
        assert second.admin("GET", "/_sandbox/health").json() == {"status": "ok"}
