"""Every router of the service, in one place so create_app stays small."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.security import HTTPBearer

# Documents the bearer token in the OpenAPI document (Reader/Operator do the checking).
_BEARER = Depends(
    HTTPBearer(
        auto_error=False,
        scheme_name="bearer",
        description="An Entra ID access token for api.auth.audience, or a static token of "
        "api.auth.tokens. Roles: TenantSync.Read (GET), TenantSync.Operate (POST).",
    )
)


def include(app: FastAPI) -> None:
    """Mount the Graph-shaped API (/v1.0), the extensions (/api) and the console (/)."""
    from . import audit_routes, extensions, graph_jobs, graph_logs

    routers = (graph_jobs.router, graph_logs.router, extensions.router, audit_routes.router)
    for router in routers:
        app.include_router(router, dependencies=[_BEARER])
    from .console import mount as mount_console

    mount_console(app)
