"""The claims of each token the sandbox issues, in Entra's shapes.

- Graph access tokens keep the shape Entra gives Microsoft Graph's tokens (v1.0: issuer
  `https://sts.windows.net/{tid}/`, `appid`, `ver` "1.0"): Graph accepts only v1 tokens, and only
  the sandbox itself reads them.
- Tokens for a seeded API and ID tokens are v2.0: issuer `https://HOST:PORT/{tid}/v2.0` (the
  discovery document's), `ver` "2.0", `azp`/`azpacr`. App-only tokens (client credentials) carry
  `roles` = the client's assignments and `idtyp` "app"; a user's carry `roles` = the user's
  assignments (direct or through a group they are a direct member of, as Entra counts group
  assignments), `scp`, `name`, `preferred_username` and `idtyp` "user". With no assignment the
  `roles` claim is left out, as Entra does. `aud` is the API's identifier URI.
- ID tokens: `aud` = the client id, `nonce` echoed, `sub` pairwise per client (as Entra's).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

from .scopes import GRAPH_APP_ID, ScopeRequest
from .signing import b64url
from .state import Client, Tenant

# azpacr / appidacr: how the client proved itself (0 public, 1 secret, 2 certificate).
PUBLIC, SECRET, CERTIFICATE = "0", "1", "2"


def service_principal_id(tenant_id: str, client_id: str) -> str:
    """A client's service principal object id: stable, so `oid` of app tokens is too."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client_id}"))


def pairwise_sub(tenant_id: str, app_id: str, object_id: str) -> str:
    return b64url(hashlib.sha256(f"{tenant_id}:{app_id}:{object_id}".encode()).digest())


def _times(lifetime: int) -> dict[str, int]:
    now = int(time.time())
    return {"iat": now, "nbf": now, "exp": now + lifetime}


def graph_app_token(tenant_id: str, client: Client, acr: str, lifetime: int) -> dict[str, Any]:
    sp = service_principal_id(tenant_id, client.client_id)
    return {
        "aud": "https://graph.microsoft.com",
        "iss": f"https://sts.windows.net/{tenant_id}/",
        **_times(lifetime),
        "appid": client.client_id,
        "appidacr": acr,
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": sp,
        "sub": sp,
        "roles": list(client.roles),
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }


def graph_user_token(
    tenant_id: str, client: Client, acr: str, user: dict[str, Any], scp: list[str], lifetime: int
) -> dict[str, Any]:
    return {
        "aud": GRAPH_APP_ID,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        **_times(lifetime),
        "appid": client.client_id,
        "appidacr": acr,
        "idtyp": "user",
        "name": user.get("displayName"),
        "oid": user["id"],
        "scp": " ".join(scp),
        "sub": pairwise_sub(tenant_id, GRAPH_APP_ID, user["id"]),
        "tid": tenant_id,
        "unique_name": user["userPrincipalName"],
        "upn": user["userPrincipalName"],
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }


def api_app_token(
    issuer: str, tenant: Tenant, request: ScopeRequest, client: Client, acr: str, lifetime: int
) -> dict[str, Any]:
    assert request.api is not None
    sp = service_principal_id(tenant.tenant_id, client.client_id)
    claims: dict[str, Any] = {
        "aud": request.api.identifier_uri,
        "iss": issuer,
        **_times(lifetime),
        "azp": client.client_id,
        "azpacr": acr,
        "idtyp": "app",
        "oid": sp,
        "sub": sp,
        "tid": tenant.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    roles = request.api.roles_of({client.client_id})
    if roles:
        claims["roles"] = roles
    return claims


def user_principals(tenant: Tenant, user_id: str) -> set[str]:
    """The user and the active groups it is a direct member of (Entra does not nest them)."""
    groups = {g for g in tenant.member_of.get(user_id) if tenant.is_active(g)}
    return {user_id, *groups}


def api_user_token(
    issuer: str,
    tenant: Tenant,
    request: ScopeRequest,
    client: Client,
    acr: str,
    user: dict[str, Any],
    auth_time: int,
    lifetime: int,
) -> dict[str, Any]:
    api = request.api
    assert api is not None
    claims: dict[str, Any] = {
        "aud": api.identifier_uri,
        "iss": issuer,
        **_times(lifetime),
        "auth_time": auth_time,
        "azp": client.client_id,
        "azpacr": acr,
        "idtyp": "user",
        "name": user.get("displayName"),
        "oid": user["id"],
        "preferred_username": user["userPrincipalName"],
        "sub": pairwise_sub(tenant.tenant_id, api.app_id, user["id"]),
        "tid": tenant.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    roles = api.roles_of(user_principals(tenant, user["id"]))
    if roles:
        claims["roles"] = roles
    scp = request.delegated()
    if scp:
        claims["scp"] = " ".join(scp)
    return claims


def id_token(
    issuer: str,
    tenant: Tenant,
    client: Client,
    user: dict[str, Any],
    *,
    nonce: str | None,
    auth_time: int,
    session_id: str,
    email: bool,
    lifetime: int,
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "aud": client.client_id,
        "iss": issuer,
        **_times(lifetime),
        "auth_time": auth_time,
        "name": user.get("displayName"),
        "oid": user["id"],
        "preferred_username": user["userPrincipalName"],
        "sid": session_id,
        "sub": pairwise_sub(tenant.tenant_id, client.client_id, user["id"]),
        "tid": tenant.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if email and user.get("mail"):
        claims["email"] = user["mail"]
    return claims
