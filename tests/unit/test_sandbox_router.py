"""The sandbox's route matching answers exactly as a scan of the whole route table does.

`Router.match` only looks at the routes a path can match (same segment count and first segment)
and compiles each template once; these tests hold it to the plain scan it replaced, over every
route of the sandbox's Graph, with ids, casts, key segments, case changes, wrong methods and
unknown segments.
"""

from __future__ import annotations

import itertools
import random

import pytest

from tenant_sync_sandbox.default_seed import default_seed
from tenant_sync_sandbox.graph import GraphApi
from tenant_sync_sandbox.router import (
    GraphError,
    Router,
    _segment_matches,
    cast_type,
    split_path,
)
from tenant_sync_sandbox.router import _key_value as key_value
from tenant_sync_sandbox.seed import validate_seed
from tenant_sync_sandbox.state import SandboxState

pytestmark = pytest.mark.unit

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def scan(router: Router, method: str, path: str) -> tuple[str, str, dict[str, str]] | str:
    """The reference: every route in table order, segment by segment."""
    segs = split_path(path)
    allowed = False
    for route in router.routes:
        if len(route.segments) != len(segs):
            continue
        params: dict[str, str] | None = {}
        for t, s in zip(route.segments, segs, strict=True):
            if not _segment_matches(t, s):
                params = None
                break
            assert params is not None
            key = key_value(t, s)
            if key is not None:
                params[key[0]] = key[1]
            elif t == "{type}":
                params["type"] = str(cast_type(s))
            elif t.startswith("{") and t.endswith("}"):
                params[t[1:-1]] = s
        if params is None:
            continue
        if route.method != method:
            allowed = True
            continue
        return route.method, route.template, params
    if allowed:
        return "405 Specified HTTP method is not allowed for the request target."
    return f"400 Resource not found for the segment '{router._unknown(segs)}'."


def fast(router: Router, method: str, path: str) -> tuple[str, str, dict[str, str]] | str:
    try:
        route, params = router.match(method, path)
    except GraphError as exc:
        return f"{exc.status} {exc.message}"
    return route.method, route.template, params


ID = "c1000000-0000-4000-8000-000000000001"


def paths_for(template: str) -> list[str]:
    """Concrete paths for a template: each segment filled rightly or wrongly (an id, a cast
    where an id goes, a key segment, an unknown literal), and the whole path upper-cased."""
    choices: list[tuple[str, ...]] = []
    for seg in template.strip("/").split("/"):
        if seg == "{type}":
            choices.append(("Microsoft.Graph.user", ID))
        elif seg.startswith("{") and seg.endswith("}"):
            choices.append((ID, "graph.group"))
        elif "={" in seg:
            name, _, rest = seg.partition("(")
            param = rest.split("=")[0]
            choices.append((f"{name}({param}='o''brien')", f"{name}(x='1')"))
        else:
            choices.append((seg, "nope"))
    out = ["/" + "/".join(combo) for combo in itertools.product(*choices)]
    return out + [p.upper() for p in out]


def test_match_answers_as_the_full_scan_over_every_route() -> None:
    router = GraphApi(SandboxState(validate_seed(default_seed()))).router
    paths = {p for route in router.routes for p in paths_for(route.template)}
    paths |= {"/", "/v1.0/users", "/users/", "//users//x", "/unknown/thing", "/users/a%2Fb"}
    assert len(paths) > 500
    # A fixed sample keeps the test fast (the full set takes seconds).
    sample = random.Random(16).sample(sorted(paths), 500)
    for path, method in itertools.product(sample, METHODS):
        assert fast(router, method, path) == scan(router, method, path), (method, path)


def test_a_route_added_later_is_found() -> None:
    router = Router()
    router.add("GET", "/things/{id}", lambda req: None)  # type: ignore[arg-type,return-value]
    assert router.match("GET", "/things/1")[1] == {"id": "1"}
    router.add("GET", "/things/{id}/parts", lambda req: None)  # type: ignore[arg-type,return-value]
    assert router.match("GET", "/Things/1/PARTS")[0].template == "/things/{id}/parts"
