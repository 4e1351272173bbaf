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
from functools import cached_property, lru_cache
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

    @cached_property
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
    for pair in raw.split("&"):
        if pair:
            key, value = _parse_pair(pair)
            out[key] = value
    return out


@lru_cache(maxsize=4096)
def _parse_pair(pair: str) -> tuple[str, str]:
    """One `name=value` of a query, decoded as `parse_qsl(keep_blank_values=True)` decodes it.
    Cached: most pairs (`$select=...`, `$top=...`) repeat from one request to the next."""
    ((key, value),) = parse_qsl(pair, keep_blank_values=True)
    return (key.lower() if key.startswith("$") else key), value


class Router:
    """The route table. Matching answers as a scan of the table in registration order would
    (the first route of the request's method wins; 405 when only other methods match), but
    it only looks at routes with the path's number of segments and first segment, and each
    template segment is compiled once (`_Segment`), not re-parsed per request."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._compiled: list[tuple[Route, tuple[_Segment, ...]]] = []
        # (segment count, first segment folded, or "" for "any") -> candidates, in table order
        self._buckets: dict[tuple[int, str], list[tuple[Route, tuple[_Segment, ...]]]] = {}
        self._first_literals: set[str] = set()

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
        route = Route(method, template, segs, handler, route_kind, cost, invitation, permissions)
        self.routes.append(route)
        compiled = tuple(_Segment.of(t) for t in segs)
        self._compiled.append((route, compiled))
        if compiled[0].literal is not None:
            self._first_literals.add(compiled[0].literal)
        self._buckets.clear()

    def _candidates(self, count: int, first: str) -> list[tuple[Route, tuple[_Segment, ...]]]:
        """The routes that can match a path of `count` segments starting with `first`
        (folded); a first segment no template names shares the "any" list."""
        key = (count, first if first in self._first_literals else "")
        found = self._buckets.get(key)
        if found is None:
            found = [
                (route, compiled)
                for route, compiled in self._compiled
                if len(compiled) == count
                and (compiled[0].literal is None or compiled[0].literal == key[1])
            ]
            self._buckets[key] = found
        return found

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segs = split_path(path)
        folded = [s.lower() for s in segs]
        casts: dict[int, str | None] = {}  # segment index -> its cast type, computed once
        allowed = False
        for route, compiled in self._candidates(len(segs), folded[0] if segs else ""):
            params = _match_compiled(compiled, segs, folded, casts)
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


@dataclass(frozen=True)
class _Segment:
    """One template segment, classified once: a literal (folded), `{type}`, `{name}`, or a key
    segment `name(param={key})` with its compiled pattern."""

    literal: str | None = None
    param: str | None = None  # `{name}`: the parameter's name
    cast: bool = False  # `{type}`
    key: tuple[re.Pattern[str], str] | None = None  # (pattern, parameter name)

    @staticmethod
    def of(template: str) -> _Segment:
        t = _KEY_TEMPLATE.match(template)
        if t is not None:
            pattern = re.compile(rf"^{t.group(1)}\({t.group(2)}='((?:[^']|'')*)'\)$", re.IGNORECASE)
            return _Segment(key=(pattern, t.group(3)))
        if template == "{type}":
            return _Segment(cast=True)
        if template.startswith("{") and template.endswith("}"):
            return _Segment(param=template[1:-1])
        return _Segment(literal=template.lower())


def _match_compiled(
    compiled: tuple[_Segment, ...],
    segs: list[str],
    folded: list[str],
    casts: dict[int, str | None],
) -> dict[str, str] | None:
    """`_match` for a compiled template of the path's length (same answers)."""
    params: dict[str, str] = {}
    for i, seg in enumerate(compiled):
        if seg.literal is not None:
            if seg.literal != folded[i]:
                return None
            continue
        if seg.key is not None:
            m = seg.key[0].match(segs[i])
            if m is None:
                return None
            params[seg.key[1]] = m.group(1).replace("''", "'")
            continue
        if i in casts:
            cast = casts[i]
        else:
            cast = casts[i] = cast_type(segs[i])
        if seg.cast:
            if cast is None:
                return None
            params["type"] = cast
        else:
            if cast is not None:
                return None
            params[str(seg.param)] = segs[i]
    return params
