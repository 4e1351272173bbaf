"""Every router of the service, in one place so create_app stays small."""

from __future__ import annotations

from fastapi import FastAPI


def include(app: FastAPI) -> None:
    """Mount the Graph-shaped API (/v1.0), the extensions (/api) and the console (/)."""
    from . import extensions, graph_jobs, graph_logs

    app.include_router(graph_jobs.router)
    app.include_router(graph_logs.router)
    app.include_router(extensions.router)
