"""What every Entra endpoint of the sandbox shares: the base URL, tenant lookup, AADSTS errors.

The issuer of a tenant is `https://HOST:PORT/{tenant_id}/v2.0`, HOST:PORT being what the caller
used to reach the sandbox (its `Host` header), as the discovery document names it.
"""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse

from .state import SandboxState, Tenant

NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def base_url(request: Request) -> str:
    host = request.headers.get("host")
    if not host:
        server = request.scope.get("server") or ("127.0.0.1", 443)
        h, p = server[0], server[1]
        host = f"[{h}]:{p}" if ":" in str(h) else f"{h}:{p}"
    return f"https://{host}"


def issuer(base: str, tenant_id: str) -> str:
    return f"{base}/{tenant_id}/v2.0"


def find_tenant(state: SandboxState, key: str) -> Tenant | None:
    """A tenant by GUID or by its domain, as the Entra authority path accepts both."""
    tenant = state.tenant(key)
    if tenant is not None:
        return tenant
    for t in state.tenants.values():
        if t.domain.lower() == key.lower():
            return t
    return None


def trace() -> tuple[str, str, str]:
    """A trace id, a correlation id and a timestamp, as every Entra error carries."""
    return str(uuid.uuid4()), str(uuid.uuid4()), time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())


def aadsts(code: int, description: str) -> str:
    trace_id, correlation_id, stamp = trace()
    return (
        f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
        f"Timestamp: {stamp}"
    )


def oauth_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    trace_id, correlation_id, stamp = trace()
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
        headers=NO_STORE,
    )


def tenant_not_found_text(key: str) -> str:
    return (
        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant."
    )


def unknown_tenant(key: str) -> JSONResponse:
    return oauth_error(400, "invalid_tenant", 90002, tenant_not_found_text(key))


def unknown_client_text(client_id: str, tenant: Tenant) -> str:
    return (
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant.domain}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant."
    )
