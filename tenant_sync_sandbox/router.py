"""The Graph request model and route table, independent of Starlette.

Handlers are plain synchronous functions `GraphRequest -> GraphResponse`, so the same code
serves direct HTTP calls and `$batch` items, and a handler can never be interrupted halfway
through a mutation by another request.

Templates are `/`-separated segments; `{name}` matches any segment except an OData type cast,
and `{type}` matches only a type cast: `microsoft.graph.user` or the short `graph.user` (the
CSDL declares the alias `graph` for the `microsoft.graph` namespace, and the SDKs' typed
request builders use it). The cast reaches the handler as `params["type"]`, the bare type name.
"""

from __future__ import annotations

import re
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
    permissions: tuple[str, ...] = ()  # any one of these application permissions lets a caller in

    @property
    def key(self) -> str:
        return f"{self.method} /v1.0{self.template}"


_CAST = re.compile(r"^(?:microsoft\.)?graph\.([A-Za-z]+)$", re.IGNORECASE)


def cast_type(segment: str) -> str | None:
    """`graph.user` / `microsoft.graph.user` -> `user`; None for anything else."""
    m = _CAST.match(segment)
    if m is None:
        return None
    name = m.group(1)
    return name[0].lower() + name[1:]


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
        permissions: tuple[str, ...] = (),
    ) -> None:
        segs = tuple(template.strip("/").split("/"))
        route_kind = kind or ("read" if method == "GET" else "write")
        self.routes.append(
            Route(method, template, segs, handler, route_kind, cost, invitation, permissions)
        )

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
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        raise GraphError(
            400, "BadRequest", f"Resource not found for the segment '{self._unknown(segs)}'."
        )

    def _unknown(self, segs: list[str]) -> str:
        """The first segment no route goes through (Graph names that one, e.g. 'v1.0')."""
        depth = 0
        for route in self.routes:
            n = 0
            for t, s in zip(route.segments, segs, strict=False):
                if not _segment_matches(t, s):
                    break
                n += 1
            depth = max(depth, n)
        if not segs:
            return ""
        return segs[min(depth, len(segs) - 1)]


# A key segment: `groups(uniqueName={key})` in a template matches `groups(uniqueName='x')`.
_KEY_TEMPLATE = re.compile(r"^(\w+)\((\w+)=\{(\w+)\}\)$")


def _key_value(template: str, seg: str) -> tuple[str, str] | None:
    """(parameter, value) when `seg` fills the key template, else None."""
    t = _KEY_TEMPLATE.match(template)
    if t is None:
        return None
    m = re.match(rf"^{t.group(1)}\({t.group(2)}='((?:[^']|'')*)'\)$", seg, re.IGNORECASE)
    return None if m is None else (t.group(3), m.group(1).replace("''", "'"))


def _segment_matches(template: str, seg: str) -> bool:
    if _KEY_TEMPLATE.match(template):
        return _key_value(template, seg) is not None
    if template == "{type}":
        return cast_type(seg) is not None
    if template.startswith("{") and template.endswith("}"):
        return cast_type(seg) is None
    return template.lower() == seg.lower()


def _match(template: tuple[str, ...], segs: list[str]) -> dict[str, str] | None:
    if len(template) != len(segs):
        return None
    params: dict[str, str] = {}
    for t, s in zip(template, segs, strict=True):
        if not _segment_matches(t, s):
            return None
        key = _key_value(t, s)
        if key is not None:
            params[key[0]] = key[1]
        elif t == "{type}":
            params["type"] = str(cast_type(s))
        elif t.startswith("{") and t.endswith("}"):
            params[t[1:-1]] = s
    return params
