"""The sandbox as the sign-in authority of an API: real MSAL, the sign-in page over HTTPS, PyJWT.

A console (confidential client) signs seeded users in with the authorization code flow + PKCE;
runbooks get app-only tokens for the API. Every token is validated the way `serve` does it:
PyJWT against the JWKS named by the discovery document (issuer, audience, signature, expiry).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest

from tests.support.sandbox import (
    SandboxHandle,
    auth_response,
    make_seed,
    make_tenant,
    make_user,
    new_id,
    page_error,
    read_form,
    running_sandbox,
)

pytestmark = pytest.mark.integration

DOMAIN = "contoso.onmicrosoft.com"
API = "api://tenant-sync"
API_ID = new_id()
CONSOLE = new_id()
CONSOLE_SECRET = "console-secret"
PUBLIC = new_id()
RUNBOOK, RUNBOOK_SECRET = new_id(), "runbook-secret"
NOBODY, NOBODY_SECRET = new_id(), "nobody-secret"
CALLBACK = "http://127.0.0.1:8080/auth/callback"

OPERATOR = make_user("operator", DOMAIN, displayName="Olga Operator", password="op-pass")
READER = make_user("reader", DOMAIN, displayName="Rami Reader")  # no password
GROUPED = make_user("grouped", DOMAIN, password="gr-pass")
DISABLED = make_user("disabled", DOMAIN, accountEnabled=False, password="x")
READERS_GROUP = {"id": new_id(), "displayName": "Sync readers", "members": [GROUPED["id"]]}

TENANT = make_tenant(DOMAIN, users=[OPERATOR, READER, GROUPED, DISABLED], groups=[READERS_GROUP])
TENANT["clients"] += [
    {
        "client_id": CONSOLE,
        "client_secret": CONSOLE_SECRET,
        "display_name": "tenant-sync console",
        "redirect_uris": [CALLBACK, "https://sync.contoso.test/auth/callback"],
    },
    {"client_id": PUBLIC, "redirect_uris": ["http://localhost/auth/callback"]},
    {"client_id": RUNBOOK, "client_secret": RUNBOOK_SECRET},
    {"client_id": NOBODY, "client_secret": NOBODY_SECRET},
]
TENANT["apis"] = [
    {
        "app_id": API_ID,
        "identifier_uri": API,
        "app_roles": ["TenantSync.Read", "TenantSync.Operate"],
        "scopes": ["access_as_user"],
        "assignments": [
            {"principal": OPERATOR["userPrincipalName"], "role": "TenantSync.Operate"},
            {"principal": READER["id"], "role": "TenantSync.Read"},
            {"principal": READERS_GROUP["id"], "role": "TenantSync.Read"},
            {"principal": RUNBOOK, "role": "TenantSync.Operate"},
        ],
    }
]
TID = TENANT["tenant_id"]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    with running_sandbox(make_seed(TENANT), tmp_path_factory.mktemp("sb")) as handle:
        yield handle


@pytest.fixture(scope="module")
def keys(sb: SandboxHandle) -> jwt.PyJWKClient:
    return sb.jwks_client(TID)


def console(sb: SandboxHandle) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        CONSOLE,
        client_credential=CONSOLE_SECRET,
        authority=f"{sb.url}/{TID}",
        instance_discovery=False,
        http_client=sb.requests_session(),
    )


def validate(sb: SandboxHandle, keys: jwt.PyJWKClient, token: str, audience: str) -> dict[str, Any]:
    """What `serve` does with a bearer token: PyJWT against the authority's JWKS."""
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        audience=audience,
        issuer=f"{sb.url}/{TID}/v2.0",
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    return claims


def signed_in(
    sb: SandboxHandle, user: dict[str, Any], password: str = "", **flow_args: Any
) -> tuple[msal.ConfidentialClientApplication, dict[str, Any], dict[str, str]]:
    app = console(sb)
    flow = app.initiate_auth_code_flow([f"{API}/.default"], redirect_uri=CALLBACK, **flow_args)
    answer = sb.sign_in(flow["auth_uri"], user["userPrincipalName"], password)
    return app, flow, auth_response(answer)


def test_discovery_and_jwks(sb: SandboxHandle) -> None:
    doc = sb.http().get(f"{sb.url}/{TID}/v2.0/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{sb.url}/{TID}/v2.0"
    assert doc["jwks_uri"] == f"{sb.url}/{TID}/discovery/v2.0/keys"
    assert doc["authorization_endpoint"] == f"{sb.url}/{TID}/oauth2/v2.0/authorize"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    keys = sb.http().get(doc["jwks_uri"]).json()["keys"]
    assert keys
    assert all(k["kty"] == "RSA" and k["use"] == "sig" and k["kid"] for k in keys)
    assert keys[0]["issuer"] == doc["issuer"]


def test_msal_auth_code_flow_signs_in_the_operator(
    sb: SandboxHandle, keys: jwt.PyJWKClient
) -> None:
    app, flow, answer = signed_in(sb, OPERATOR, "op-pass")
    assert answer["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result

    access = validate(sb, keys, result["access_token"], API)
    assert access["roles"] == ["TenantSync.Operate"]
    assert access["scp"] == "access_as_user"
    assert access["preferred_username"] == OPERATOR["userPrincipalName"]
    assert access["name"] == "Olga Operator"
    assert access["oid"] == OPERATOR["id"]
    assert access["tid"] == TID
    assert access["ver"] == "2.0"
    assert access["azp"] == CONSOLE
    assert jwt.get_unverified_header(result["access_token"])["kid"]

    ident = validate(sb, keys, result["id_token"], CONSOLE)
    assert ident["nonce"] == result["id_token_claims"]["nonce"]  # MSAL checked it is its own
    assert ident["preferred_username"] == OPERATOR["userPrincipalName"]
    assert (ident["oid"], ident["tid"], ident["name"]) == (OPERATOR["id"], TID, "Olga Operator")
    assert result["token_type"] == "Bearer"
    assert result["refresh_token"]
    # client_info made MSAL record the account under Entra's home account id.
    [account] = app.get_accounts()
    assert account["home_account_id"] == f"{OPERATOR['id']}.{TID}"
    assert account["username"] == OPERATOR["userPrincipalName"]
    # and a refresh (the access token is cached, so force it) gives the same roles again.
    again = app.acquire_token_silent([f"{API}/.default"], account, force_refresh=True)
    assert again is not None
    assert "access_token" in again, again
    assert validate(sb, keys, again["access_token"], API)["roles"] == ["TenantSync.Operate"]


def test_roles_come_from_user_and_group_assignments(
    sb: SandboxHandle, keys: jwt.PyJWKClient
) -> None:
    for user, password in ((READER, ""), (GROUPED, "gr-pass")):
        app, flow, answer = signed_in(sb, user, password)
        result = app.acquire_token_by_auth_code_flow(flow, answer)
        assert validate(sb, keys, result["access_token"], API)["roles"] == ["TenantSync.Read"]


def test_form_post_and_any_loopback_port(sb: SandboxHandle, keys: jwt.PyJWKClient) -> None:
    app = console(sb)
    redirect = "http://127.0.0.1:51234/auth/callback"  # registered with port 8080
    flow = app.initiate_auth_code_flow(
        [f"{API}/.default"], redirect_uri=redirect, response_mode="form_post"
    )
    answer = sb.sign_in(flow["auth_uri"], "OPERATOR@contoso.onmicrosoft.com", "op-pass")
    assert answer.status_code == 200
    action, fields = read_form(answer.text)
    assert action == redirect
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert validate(sb, keys, result["access_token"], API)["oid"] == OPERATOR["id"]


def test_public_client_with_pkce(sb: SandboxHandle, keys: jwt.PyJWKClient) -> None:
    app = msal.PublicClientApplication(
        PUBLIC,
        authority=f"{sb.url}/{TID}",
        instance_discovery=False,
        http_client=sb.requests_session(),
    )
    flow = app.initiate_auth_code_flow(
        [f"{API}/access_as_user"], redirect_uri="http://localhost:40000/auth/callback"
    )
    result = app.acquire_token_by_auth_code_flow(
        flow, auth_response(sb.sign_in(flow["auth_uri"], READER["userPrincipalName"]))
    )
    claims = validate(sb, keys, result["access_token"], API)
    assert (claims["azp"], claims["azpacr"], claims["roles"]) == (PUBLIC, "0", ["TenantSync.Read"])


def test_wrong_code_verifier_is_refused(sb: SandboxHandle) -> None:
    app, flow, answer = signed_in(sb, OPERATOR, "op-pass")
    tampered = {**flow, "code_verifier": flow["code_verifier"][::-1]}
    result = app.acquire_token_by_auth_code_flow(tampered, answer)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [501481]
    assert "access_token" not in result


def test_a_code_is_redeemed_once(sb: SandboxHandle) -> None:
    app, flow, answer = signed_in(sb, OPERATOR, "op-pass")
    assert "access_token" in app.acquire_token_by_auth_code_flow(copy.deepcopy(flow), answer)
    second = app.acquire_token_by_auth_code_flow(flow, answer)
    assert second["error"] == "invalid_grant"
    assert "AADSTS54005" in second["error_description"]


def test_redirect_uri_and_secret_are_checked_at_redemption(sb: SandboxHandle) -> None:
    _app, flow, answer = signed_in(sb, OPERATOR, "op-pass")
    form = {
        "grant_type": "authorization_code",
        "client_id": CONSOLE,
        "code": answer["code"],
        "code_verifier": flow["code_verifier"],
    }
    token_url = f"{sb.url}/{TID}/oauth2/v2.0/token"
    bad_secret = sb.http().post(
        token_url, data={**form, "client_secret": "nope", "redirect_uri": CALLBACK}
    )
    assert bad_secret.json()["error_codes"] == [7000215]
    other_uri = sb.http().post(
        token_url,
        data={
            **form,
            "client_secret": CONSOLE_SECRET,
            "redirect_uri": "https://sync.contoso.test/auth/callback",
        },
    )
    assert other_uri.status_code == 400
    assert other_uri.json()["error"] == "invalid_grant"
    assert other_uri.json()["error_codes"] == [500112]


def test_an_expired_code_is_refused(sb: SandboxHandle) -> None:
    sb.admin("PUT", "/_sandbox/auth", json={"code_lifetime_s": 1}).raise_for_status()
    try:
        app, flow, answer = signed_in(sb, OPERATOR, "op-pass")
    finally:
        sb.admin("PUT", "/_sandbox/auth", json={"code_lifetime_s": 600}).raise_for_status()
    time.sleep(1.1)  # past the 1 s lifetime the code was issued with
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [70008]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"redirect_uri": "https://evil.example/auth/callback"}, "AADSTS50011"),
        ({"redirect_uri": "http://127.0.0.1:8080/other"}, "AADSTS50011"),
        ({"client_id": "00000000-0000-0000-0000-00000000dead"}, "AADSTS700016"),
    ],
)
def test_untrusted_requests_get_an_error_page_not_a_redirect(
    sb: SandboxHandle, change: dict[str, str], code: str
) -> None:
    flow = console(sb).initiate_auth_code_flow([f"{API}/.default"], redirect_uri=CALLBACK)
    parts = urlsplit(flow["auth_uri"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    resp = sb.http(follow_redirects=False).get(f"{sb.url}{parts.path}", params={**query, **change})
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert code in page_error(resp.text)


def test_unknown_tenant_page(sb: SandboxHandle) -> None:
    resp = sb.http().get(f"{sb.url}/nowhere.onmicrosoft.com/oauth2/v2.0/authorize")
    assert resp.status_code == 400
    assert "AADSTS90002" in page_error(resp.text)


def test_bad_user_or_password_shows_the_form_again(sb: SandboxHandle) -> None:
    app = console(sb)
    flow = app.initiate_auth_code_flow([f"{API}/.default"], redirect_uri=CALLBACK)
    client = sb.http(follow_redirects=False)
    page = client.get(flow["auth_uri"])
    action, fields = read_form(page.text)
    target = f"{sb.url}{action}"
    for login, password, message in (
        (OPERATOR["userPrincipalName"], "wrong", "Your account or password is incorrect"),
        (OPERATOR["userPrincipalName"], "", "Please enter your password"),
        ("ghost@contoso.onmicrosoft.com", "x", "This username may be incorrect"),
        (DISABLED["userPrincipalName"], "x", "Your account has been locked"),
    ):
        again = client.post(target, data={**fields, "login": login, "passwd": password})
        assert again.status_code == 200
        assert message in page_error(again.text)
        refill = read_form(again.text)[1]
        assert (refill["login"], refill["passwd"]) == (login, "")  # the password is not echoed
    # The same page still signs the right password in.
    done = client.post(
        target, data={**fields, "login": OPERATOR["userPrincipalName"], "passwd": "op-pass"}
    )
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, auth_response(done))


def test_request_errors_go_back_to_the_app(sb: SandboxHandle) -> None:
    flow = console(sb).initiate_auth_code_flow(
        [f"{API}/.default"], redirect_uri=CALLBACK, prompt="none"
    )
    answer = auth_response(sb.http(follow_redirects=False).get(flow["auth_uri"]))
    assert answer["error"] == "login_required"
    assert answer["state"] == flow["state"]
    flow = console(sb).initiate_auth_code_flow([f"{API}/delete_everything"], redirect_uri=CALLBACK)
    answer = auth_response(sb.http(follow_redirects=False).get(flow["auth_uri"]))
    assert answer["error"] == "invalid_scope"
    assert "AADSTS650053" in answer["error_description"]


def test_client_credentials_for_the_api_carry_assigned_roles(
    sb: SandboxHandle, keys: jwt.PyJWKClient
) -> None:
    for scope in (f"{API}/.default", f"{API_ID}/.default"):
        runbook = sb.msal_app(TID, RUNBOOK, RUNBOOK_SECRET).acquire_token_for_client([scope])
        claims = validate(sb, keys, runbook["access_token"], API)
        assert claims["roles"] == ["TenantSync.Operate"]
        assert (claims["azp"], claims["idtyp"], claims["tid"]) == (RUNBOOK, "app", TID)
    nobody = sb.msal_app(TID, NOBODY, NOBODY_SECRET).acquire_token_for_client([f"{API}/.default"])
    claims = validate(sb, keys, nobody["access_token"], API)
    assert "roles" not in claims
    assert claims["azp"] == NOBODY


def test_graph_refuses_api_and_user_tokens(sb: SandboxHandle) -> None:
    runbook = sb.msal_app(TID, RUNBOOK, RUNBOOK_SECRET).acquire_token_for_client(
        [f"{API}/.default"]
    )
    resp = sb.graph_with_token(runbook["access_token"]).get("/users")
    assert resp.status_code == 401
    assert "audience" in resp.json()["error"]["message"]
    app = console(sb)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK)
    answer = auth_response(sb.sign_in(flow["auth_uri"], OPERATOR["userPrincipalName"], "op-pass"))
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    resp = sb.graph_with_token(result["access_token"]).get("/users")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "Authorization_RequestDenied"


def test_key_rotation_keeps_old_tokens_valid(sb: SandboxHandle) -> None:
    before = sb.msal_app(TID, RUNBOOK, RUNBOOK_SECRET).acquire_token_for_client(
        [f"{API}/.default"]
    )["access_token"]
    kids = sb.admin("POST", "/_sandbox/auth/rotate-keys").json()["signing_kids"]
    assert len(kids) == 2
    after = sb.token_result(TID, RUNBOOK, RUNBOOK_SECRET)  # a Graph token, new key
    assert jwt.get_unverified_header(after["access_token"])["kid"] == kids[0]
    fresh = sb.jwks_client(TID)  # a JWKS client that has not cached the old set
    for token in (before,):
        assert validate(sb, fresh, token, API)["roles"] == ["TenantSync.Operate"]
    assert sb.graph_with_token(after["access_token"]).get("/users").status_code == 200
