"""The Entra token side: OIDC discovery, the JWKS, the token endpoint, Graph's token check.

Enough of login.microsoftonline.com for MSAL to run unchanged: the discovery document of a
tenant, its signing keys, and `POST /{tenant}/oauth2/v2.0/token` with the grants
`client_credentials` (secret or certificate-signed client assertion), `authorization_code`
(from the sign-in page, see signin.py; redirect URI and PKCE checked, single use) and
`refresh_token`, answering with AADSTS-style errors. Every token is an RS256 JWT signed with the
process's key (signing.py); its claims are built in claims.py. Graph routes verify Graph tokens
on every call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import claims
from .client_auth import authenticate_client
from .entra import (
    NO_STORE,
    base_url,
    find_tenant,
    issuer,
    oauth_error,
    unknown_client_text,
    unknown_tenant,
)
from .grants import AuthCode, RefreshGrant
from .router import GraphError
from .scopes import GRAPH_APP_ID, GRAPH_AUDIENCE, ScopeError, ScopeRequest, parse
from .signing import TokenInvalid, b64url
from .state import Client, SandboxState, Tenant

GRANTS = ("client_credentials", "authorization_code", "refresh_token")
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def openid_configuration(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return unknown_tenant(key)
    base = base_url(request)
    root = f"{base}/{tenant.tenant_id}"
    return JSONResponse(
        {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer(base, tenant.tenant_id),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": base.removeprefix("https://"),
            "rbac_url": "https://pas.windows.net",
        }
    )


def jwks(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return unknown_tenant(key)
    return JSONResponse(state.signer.jwks(issuer(base_url(request), tenant.tenant_id)))


def _missing(name: str) -> JSONResponse:
    return oauth_error(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _scope_error(exc: ScopeError) -> JSONResponse:
    return oauth_error(400, exc.error, exc.code, exc.description)


async def token_endpoint(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return unknown_tenant(key)
    raw = (await request.body()).decode("utf-8", errors="replace")
    form = dict(parse_qsl(raw, keep_blank_values=True))
    client_id = form.get("client_id")
    client_secret = form.get("client_secret")
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip()).decode("utf-8")
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or basic_id
            client_secret = client_secret or basic_secret
        except (ValueError, UnicodeDecodeError):
            return oauth_error(400, "invalid_request", 900144, "Malformed Basic authorization.")

    grant = form.get("grant_type")
    if not grant:
        return _missing("grant_type")
    if grant not in GRANTS:
        return oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'. The sandbox supports "
            f"{', '.join(GRANTS)}.",
        )
    if not client_id:
        return _missing("client_id")
    if grant == "client_credentials" and not form.get("scope"):
        return _missing("scope")
    client = tenant.clients.get(client_id)
    if client is None:
        return oauth_error(
            400, "unauthorized_client", 700016, unknown_client_text(client_id, tenant)
        )
    base = base_url(request)
    audiences = {
        f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
        f"{base}/{key}/oauth2/v2.0/token",
    }
    acr = authenticate_client(client, form, client_secret, audiences)
    if isinstance(acr, JSONResponse):
        return acr
    if grant == "client_credentials":
        return _client_credentials(state, tenant, client, acr, form["scope"], base)
    if grant == "authorization_code":
        return _authorization_code(state, tenant, client, acr, form, base)
    return _refresh_token(state, tenant, client, acr, form, base)


def _token_response(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers=NO_STORE)


def _client_credentials(
    state: SandboxState, tenant: Tenant, client: Client, acr: str, scope: str, base: str
) -> Response:
    if client.public:
        return oauth_error(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'. A public client cannot use the client credentials grant.",
        )
    try:
        asked = parse(tenant, scope, app_only=True)
    except ScopeError as exc:
        return _scope_error(exc)
    lifetime = int(state.access_token_lifetime_s)
    if asked.api is None:
        token_claims = claims.graph_app_token(tenant.tenant_id, client, acr, lifetime)
    else:
        token_claims = claims.api_app_token(
            issuer(base, tenant.tenant_id), tenant, asked, client, acr, lifetime
        )
    return _token_response(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": state.signer.sign(token_claims),
        }
    )


def _invalid_grant(code: int, description: str) -> JSONResponse:
    return oauth_error(400, "invalid_grant", code, description)


def _pkce_ok(found: AuthCode, verifier: str | None) -> bool:
    challenge = found.request.code_challenge
    if challenge is None:
        return True
    if not verifier or not PKCE_VERIFIER.match(verifier):
        return False
    if (found.request.code_challenge_method or "plain") == "S256":
        computed = b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


def _authorization_code(
    state: SandboxState,
    tenant: Tenant,
    client: Client,
    acr: str,
    form: dict[str, str],
    base: str,
) -> Response:
    code = form.get("code")
    if not code:
        return _missing("code")
    found = state.grants.redeem_code(code)
    if found == "redeemed":
        return _invalid_grant(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
            "or use an existing refresh token.",
        )
    if found == "expired":
        return _invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource.",
        )
    if found == "unknown":
        return _invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The authorization code is not "
            "one this sandbox issued (was it restarted or reset?).",
        )
    asked = found.request
    if asked.tenant_id != tenant.tenant_id or asked.client_id != client.client_id:
        return _invalid_grant(
            70000,
            "The provided value for the 'code' parameter is not valid. The code was issued to "
            "another application or tenant.",
        )
    redirect_uri = form.get("redirect_uri")
    if redirect_uri != asked.redirect_uri:
        return _invalid_grant(
            500112,
            f"The reply address '{redirect_uri or ''}' does not match the reply address "
            f"'{asked.redirect_uri}' provided when requesting Authorization code.",
        )
    if not _pkce_ok(found, form.get("code_verifier")):
        return _invalid_grant(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization "
            "request.",
        )
    return _user_tokens(
        state,
        tenant,
        client,
        acr,
        form,
        base,
        user_id=found.user_id,
        scope=form.get("scope") or asked.scope,
        auth_time=found.auth_time,
        session_id=found.session_id,
        nonce=asked.nonce,
    )


def _refresh_token(
    state: SandboxState,
    tenant: Tenant,
    client: Client,
    acr: str,
    form: dict[str, str],
    base: str,
) -> Response:
    token = form.get("refresh_token")
    if not token:
        return _missing("refresh_token")
    grant = state.grants.refresh(token)
    if grant is None:
        return _invalid_grant(
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is not one "
            "this sandbox issued (was it restarted or reset?).",
        )
    if grant.tenant_id != tenant.tenant_id or grant.client_id != client.client_id:
        return _invalid_grant(
            70000,
            "The provided value for the 'refresh_token' parameter is not valid. It was issued "
            "to another application or tenant.",
        )
    return _user_tokens(
        state,
        tenant,
        client,
        acr,
        form,
        base,
        user_id=grant.user_id,
        scope=form.get("scope") or grant.scope,
        auth_time=grant.auth_time,
        session_id=grant.session_id,
        nonce=None,
    )


def client_info(user_id: str, tenant_id: str) -> str:
    """What MSAL asks for with `client_info=1`: the account's home ids, base64url JSON."""
    return b64url(json.dumps({"uid": user_id, "utid": tenant_id}).encode("utf-8"))


def _user_tokens(
    state: SandboxState,
    tenant: Tenant,
    client: Client,
    acr: str,
    form: dict[str, str],
    base: str,
    *,
    user_id: str,
    scope: str,
    auth_time: int,
    session_id: str,
    nonce: str | None,
) -> Response:
    user = tenant.users.get(user_id)
    if user is None or not tenant.is_active(user_id):
        return _invalid_grant(
            50034, f"The user account {user_id} does not exist in the {tenant.domain} directory."
        )
    if user.get("accountEnabled") is False:
        return _invalid_grant(50057, "The user account is disabled.")
    try:
        asked: ScopeRequest = parse(tenant, scope, app_only=False)
    except ScopeError as exc:
        return _scope_error(exc)
    lifetime = int(state.access_token_lifetime_s)
    iss = issuer(base, tenant.tenant_id)
    if asked.api is None:
        access = claims.graph_user_token(
            tenant.tenant_id, client, acr, user, asked.delegated(), lifetime
        )
    else:
        access = claims.api_user_token(iss, tenant, asked, client, acr, user, auth_time, lifetime)
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": asked.granted(),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": state.signer.sign(access),
    }
    if "offline_access" in asked.oidc:
        body["refresh_token"] = state.grants.issue_refresh(
            RefreshGrant(tenant.tenant_id, client.client_id, user_id, scope, auth_time, session_id)
        )
    if "openid" in asked.oidc:
        body["id_token"] = state.signer.sign(
            claims.id_token(
                iss,
                tenant,
                client,
                user,
                nonce=nonce,
                auth_time=auth_time,
                session_id=session_id,
                email="email" in asked.oidc,
                lifetime=lifetime,
            )
        )
    if form.get("client_info") == "1":
        body["client_info"] = client_info(user_id, tenant.tenant_id)
    return _token_response(body)


def _unauthorized(message: str) -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": 'Bearer realm="", '
            'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            f'client_id="{GRAPH_APP_ID}"'
        },
    )


def authenticate(state: SandboxState, authorization: str | None) -> tuple[Tenant, str]:
    """The tenant and client of a Graph call's bearer token, or a 401/403 GraphError."""
    if not authorization:
        raise _unauthorized("Access token is empty.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Access token is empty.")
    try:
        token_claims = state.signer.verify(
            token, (GRAPH_AUDIENCE, GRAPH_AUDIENCE + "/", GRAPH_APP_ID)
        )
    except TokenInvalid as exc:
        raise _unauthorized(f"Access token validation failure. {exc}") from exc
    tenant = state.tenant(str(token_claims.get("tid", "")))
    client_id = str(token_claims.get("appid", ""))
    if tenant is None or client_id not in tenant.clients:
        raise _unauthorized(
            "Access token validation failure. The tenant or application of this token no "
            "longer exists in the sandbox."
        )
    if token_claims.get("idtyp") == "user":
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation. The sandbox's Graph serves "
            "application permissions only; this token was issued to a signed-in user.",
        )
    return tenant, client_id
