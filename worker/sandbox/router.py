"""The Graph request model and route table, independent of Starlette.

Handlers are plain synchronous functions `GraphRequest -> GraphResponse`, so the same code
serves direct HTTP calls and `$batch` items, and a handler can never be interrupted halfway
through a mutation by another request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from .state import SandboxState, Tenant


class GraphError(Exception):
    """Answered as an OData error body: {"error": {"code", "message", "innerError"}}."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


@dataclass
class GraphRequest:
    state: SandboxState
    tenant: Tenant
    client_id: str
    method: str
    path: str  # below /v1.0, starting with "/", percent-decoding not applied
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    base_url: str  # https://host:port, from the request's Host
    request_id: str
    params: dict[str, str] = field(default_factory=dict)
    in_batch: bool = False

    def q(self, name: str) -> str | None:
        return self.query.get(name.lower())

    def url(self, path_and_query: str) -> str:
        return f"{self.base_url}/v1.0{path_and_query}"


@dataclass
class GraphResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # plain-text bodies ($count)


Handler = Callable[[GraphRequest], GraphResponse]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    segments: tuple[str, ...]
    handler: Handler
    kind: str  # "read" | "write" | "batch"
    cost: int  # Graph's base resource-unit cost
    invitation: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} /v1.0{self.template}"


def split_path(path: str) -> list[str]:
    return [unquote(seg) for seg in path.strip("/").split("/") if seg != ""]


def parse_query(raw: str) -> dict[str, str]:
    """Query parameters with OData option names lower-cased (`$Select` == `$select`)."""
    out: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        out[key.lower() if key.startswith("$") else key] = value
    return out


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        cost: int = 1,
        invitation: bool = False,
        kind: str | None = None,
    ) -> None:
        segs = tuple(template.strip("/").split("/"))
        route_kind = kind or ("read" if method == "GET" else "write")
        self.routes.append(Route(method, template, segs, handler, route_kind, cost, invitation))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segs = split_path(path)
        allowed = False
        for route in self.routes:
            params = _match(route.segments, segs)
            if params is None:
                continue
            if route.method != method:
                allowed = True
                continue
            return route, params
        if allowed:
            raise GraphError(
                405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed here."
            )
        raise GraphError(
            400,
            "BadRequest",
            f"Resource not found for the segment '{segs[-1] if segs else ''}'.",
        )


def _match(template: tuple[str, ...], segs: list[str]) -> dict[str, str] | None:
    if len(template) != len(segs):
        return None
    params: dict[str, str] = {}
    for t, s in zip(template, segs, strict=True):
        if t.startswith("{") and t.endswith("}"):
            params[t[1:-1]] = s
        elif t.lower() != s.lower():
            return None
    return params
