"""The Starlette application: Entra endpoints (tokens, keys, sign-in page), Graph under `/v1.0`,
admin under `/_sandbox`.

`asgi_app(state)` is what the server runs: the application inside `faults.ConnectionControl`,
which lets fault injection drop a request's connection.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import admin, auth, faults, signin
from .graph import GraphApi
from .ids import new_guid
from .seed import now_iso
from .state import SandboxState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestIdMiddleware:
    """Gives every request an id and every response a `request-id` header (as Graph does)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_guid()
        scope["sandbox.request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"request-id" for name, _ in headers):
                    headers.append((b"request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            raise


def create_app(state: SandboxState) -> Starlette:
    graph = GraphApi(state)

    async def discovery(request: Request) -> Response:
        return auth.openid_configuration(state, request)

    async def keys(request: Request) -> Response:
        return auth.jwks(state, request)

    async def token(request: Request) -> Response:
        return await auth.token_endpoint(state, request)

    async def authorize(request: Request) -> Response:
        return await signin.authorize(state, request)

    async def logout(request: Request) -> Response:
        return await signin.logout(state, request)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {
                "error": {
                    "code": "NotFound",
                    "message": f"The sandbox has no endpoint at {request.url.path}.",
                }
            },
            status_code=404,
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        rid = str(request.scope.get("sandbox.request_id", ""))
        return JSONResponse(
            {
                "error": {
                    "code": "InternalServerError",
                    "message": f"Sandbox error: {type(exc).__name__}: {exc}",
                    "innerError": {"date": now_iso(), "request-id": rid, "client-request-id": rid},
                }
            },
            status_code=500,
        )

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    routes = [
        Route("/v1.0/{path:path}", graph.endpoint, methods=methods),
        *admin.routes(state),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/logout", logout, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 500: server_error},
    )
    app.add_middleware(RequestIdMiddleware)
    app.state.sandbox = state
    app.state.graph = graph
    return app


def asgi_app(state: SandboxState) -> ASGIApp:
    """The application as served: `create_app` wrapped so that faults can drop connections."""
    return faults.ConnectionControl(create_app(state))
