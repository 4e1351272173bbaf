"""Every router of the service, in one place so create_app stays small."""

from __future__ import annotations

from fastapi import FastAPI


def include(app: FastAPI) -> None:
    """Mount the Graph-shaped API (/v1.0), the extensions (/api) and the console (/)."""
    from . import audit_routes
    from .console import mount as mount_console

    app.include_router(audit_routes.router)
    mount_console(app)
