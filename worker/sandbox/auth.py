"""The Entra side: OIDC discovery, the client-credentials token endpoint, access-token checks.

Enough of login.microsoftonline.com for MSAL to run unchanged: the discovery document of a
tenant, `POST /{tenant}/oauth2/v2.0/token` with a client secret or a certificate-signed client
assertion (RS256/PS256), and AADSTS-style errors. Access tokens are HS256 JWTs signed with a
per-process key; Graph routes verify them on every call.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import jwtlite
from .router import GraphError
from .state import Client, SandboxState, Tenant

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = frozenset(
    {
        "https://graph.microsoft.com/.default",
        "https://graph.microsoft.com//.default",
        f"{GRAPH_APP_ID}/.default",
    }
)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_S = 300


def base_url(request: Request) -> str:
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 443)
        h, p = server[0], server[1]
        host = f"[{h}]:{p}" if ":" in str(h) else f"{h}:{p}"
    return f"https://{host}"


def find_tenant(state: SandboxState, key: str) -> Tenant | None:
    """A tenant by GUID or by its domain, as the Entra authority path accepts both."""
    tenant = state.tenant(key)
    if tenant is not None:
        return tenant
    for t in state.tenants.values():
        if t.domain.lower() == key.lower():
            return t
    return None


def _trace() -> tuple[str, str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4()), time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())


def oauth_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    trace_id, correlation_id, stamp = _trace()
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        status_code=status,
    )


def _unknown_tenant(key: str) -> JSONResponse:
    return oauth_error(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def openid_configuration(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return _unknown_tenant(key)
    base = base_url(request)
    tid = tenant.tenant_id
    root = f"{base}/{tid}"
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
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver", "oid"],
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
    if find_tenant(state, key) is None:
        return _unknown_tenant(key)
    # Access tokens are only meaningful to the sandbox itself (like Graph's), so none are listed.
    return JSONResponse({"keys": []})


def _thumbprints(cert: x509.Certificate) -> set[str]:
    return {
        jwtlite.b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - x5t is SHA-1 by spec
        jwtlite.b64url(cert.fingerprint(hashes.SHA256())),
    }


def _check_assertion(
    client: Client, assertion: str, audiences: set[str], tenant: Tenant
) -> JSONResponse | None:
    if not client.certificates:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., "
            f"Thumbprint of key used by client: 'unknown'.] The application '{client.client_id}' "
            "has no certificate credentials in the sandbox seed.",
        )
    try:
        header, _, _, _ = jwtlite.split(assertion)
    except jwtlite.JwtError as exc:
        return oauth_error(
            400, "invalid_request", 50027, f"JWT token is invalid or malformed: {exc}."
        )
    # MSAL pads its x5t with "=", the RFC does not: compare without padding.
    wanted = {str(header[k]).rstrip("=") for k in ("x5t", "x5t#S256") if k in header}
    certs = [c for c in client.certificates if not wanted or wanted & _thumbprints(c)]
    if not certs:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{', '.join(sorted(wanted))}'.]",
        )
    claims: dict[str, Any] | None = None
    for cert in certs:
        try:
            _, claims = jwtlite.verify_with_certificate(assertion, cert)
            break
        except jwtlite.JwtError:
            continue
    if claims is None:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature "
            "value did not match the expected signature value.]",
        )
    if claims.get("aud") not in audiences:
        return oauth_error(
            400,
            "invalid_client",
            700027,
            "Client assertion audience claim does not match Realm issuer. Review the "
            "documentation at https://aka.ms/certCredentials. Expected one of "
            f"{sorted(audiences)}.",
        )
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        return oauth_error(
            400,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    now = time.time()
    exp = claims.get("exp")
    nbf = claims.get("nbf")
    if (
        not isinstance(exp, int | float)
        or exp <= now
        or (isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW_S)
    ):
        return oauth_error(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        )
    return None


async def token_endpoint(state: SandboxState, request: Request) -> Response:
    key = request.path_params["tenant"]
    tenant = find_tenant(state, key)
    if tenant is None:
        return _unknown_tenant(key)
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
        return oauth_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    if grant != "client_credentials":
        return oauth_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant}'. The sandbox only "
            "supports client_credentials.",
        )
    if not client_id:
        return oauth_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    scope = form.get("scope")
    if not scope:
        return oauth_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
    if len(scopes) != 1 or scopes[0] not in GRAPH_SCOPES:
        return oauth_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI); the sandbox serves https://graph.microsoft.com/.default.",
        )
    client = tenant.clients.get(client_id)
    if client is None:
        return oauth_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.domain}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You "
            "may have sent your authentication request to the wrong tenant.",
        )
    assertion = form.get("client_assertion")
    if assertion:
        if form.get("client_assertion_type") != JWT_BEARER:
            return oauth_error(
                400,
                "invalid_request",
                50027,
                f"client_assertion_type must be '{JWT_BEARER}'.",
            )
        base = base_url(request)
        audiences = {
            f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
            f"{base}/{key}/oauth2/v2.0/token",
        }
        problem = _check_assertion(client, assertion, audiences, tenant)
        if problem is not None:
            return problem
    elif client_secret:
        if client.secret is None or not hmac.compare_digest(
            client.secret.encode("utf-8"), client_secret.encode("utf-8")
        ):
            return oauth_error(
                400,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client.client_id}'.",
            )
    else:
        return oauth_error(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )

    lifetime = int(state.access_token_lifetime_s)
    token = issue_access_token(state, tenant.tenant_id, client, lifetime)
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        },
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


def issue_access_token(state: SandboxState, tenant_id: str, client: Client, lifetime: int) -> str:
    client_id = client.client_id
    now = int(time.time())
    service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client_id}"))
    claims = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "appidacr": "1",
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": service_principal,
        "sub": service_principal,
        "roles": list(client.roles),
        "tid": tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }
    return jwtlite.sign_hs256(claims, state.token_key, kid="sandbox")


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
    """The tenant and client of a Graph call's bearer token, or a 401 GraphError."""
    if not authorization:
        raise _unauthorized("Access token is empty.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Access token is empty.")
    try:
        claims = jwtlite.verify_hs256(token, state.token_key)
    except jwtlite.JwtError as exc:
        raise _unauthorized(f"Access token validation failure. {exc}") from exc
    if claims.get("aud") not in (GRAPH_AUDIENCE, GRAPH_AUDIENCE + "/", GRAPH_APP_ID):
        raise _unauthorized("Access token validation failure. Invalid audience.")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        raise _unauthorized("Lifetime validation failed, the token is expired.")
    tenant = state.tenant(str(claims.get("tid", "")))
    client_id = str(claims.get("appid", ""))
    if tenant is None or client_id not in tenant.clients:
        raise _unauthorized(
            "Access token validation failure. The tenant or application of this token no "
            "longer exists in the sandbox."
        )
    return tenant, client_id
