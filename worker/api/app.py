"""The ASGI application of `tenant-sync serve`: routes, error shapes, request logging.

`create_app` wires the pieces: the state runtime (SQL + Redis, opened at start-up), the
Authenticator, the Operations every route shares, and the routers of the API and the console.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from worker.bootstrap import Runtime, open_runtime
from worker.config import ROLE_OPERATE, ROLE_READ, Config

from .auth import Authenticator, Principal
from .operations import Operations

log = structlog.get_logger("tenant_sync.serve")


class Services:
    """What every request handler may use; one per process, on `app.state.services`."""

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        tenant = config.tenants.get(config.api.auth.tenant or "")
        self.authenticator = Authenticator(config.api.auth, tenant)
        self._celery: Any = None
        self.operations = Operations(config, runtime, self.celery)

    def celery(self) -> Any:
        if self._celery is None:
            from worker.celery_app import create_celery

            self._celery = create_celery(self.config)
        return self._celery


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def principal(request: Request) -> Principal:
    """The caller of this request: a bearer token, or (console) a signed-in session."""
    svc = services(request)
    header = request.headers.get("authorization")
    session_principal: Callable[[Request], Principal | None] | None = getattr(
        request.app.state, "session_principal", None
    )
    if not header and session_principal is not None:
        found = session_principal(request)
        if found is not None:
            return found
    return svc.authenticator.from_header(header)


def reader(request: Request) -> Principal:
    who = principal(request)
    who.require(ROLE_READ)
    return who


def operator(request: Request) -> Principal:
    who = principal(request)
    who.require(ROLE_OPERATE)
    return who


Reader = Depends(reader)
Operator = Depends(operator)


def create_app(config: Config, runtime: Runtime | None = None) -> FastAPI:
    """The service for `config`; `runtime` is opened at start-up unless given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = runtime or open_runtime(config)
        app.state.services = Services(config, opened)
        try:
            yield
        finally:
            if runtime is None:
                opened.close()

    from .errors import install_error_handlers

    app = FastAPI(
        title="tenant-sync",
        summary="Cross-tenant synchronization: operator API in Graph's synchronization shape",
        version="2",
        lifespan=lifespan,
        # Served by worker/api/extensions.py behind a token, like every route but /healthz.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def _log_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # The path only: query strings can carry sign-in codes and state.
        started = time.perf_counter()
        response = await call_next(request)
        # Health probes come every few seconds from every orchestrator: not worth a line each.
        emit = log.debug if request.url.path == "/healthz" else log.info
        emit(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    from . import routes

    routes.include(app)
    return app
