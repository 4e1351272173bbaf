"""Graph's identity-and-access throttling for one request: its cost, its quotas, 429s, headers.

Costs follow Microsoft's published table: a route's base cost (e.g. GET /users 2,
GET /groups/{id}/members 3, transitiveMembers 5, anything else 1), `$select` -1, `$expand` +1,
`$top` under 20 -1, never below 1. Every request charges the app + tenant resource-unit quota
(`resource_units_per_10s`); writes also charge `write_per_150s` (cost 1) and `/invitations`
the per-tenant `invitations_per_5s`. The limits come from the seed's `limits` (see `seed.py`);
`window_scale` multiplies every window length (tests use tiny windows instead of waiting).

Admitted requests get `x-ms-resource-unit` and, once a quota is more than 80 % used,
`x-ms-throttle-limit-percentage` (0.8 to 1.8). Refused ones get 429 with `Retry-After`
(whole seconds, enough for the same request to be admitted), `x-ms-throttle-scope`
(`<Scope>/<Limit>/<ApplicationId>/<TenantId>`) and `x-ms-throttle-information` (the quota).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING

from .limits import Charge
from .router import GraphError, GraphRequest, Route

if TYPE_CHECKING:
    from .state import SandboxState

WINDOWS_S = {"resource_units_per_10s": 10.0, "write_per_150s": 150.0, "invitations_per_5s": 5.0}
WARN_RATIO = 0.8
MAX_RATIO = 1.8
monotonic = time.monotonic  # the quota clock (tests replace it)


def request_cost(req: GraphRequest, route: Route) -> int:
    cost = route.cost
    if req.q("$select") is not None:
        cost -= 1
    if req.q("$expand") is not None:
        cost += 1
    top = req.q("$top")
    if top is not None and top.isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1)


def charges_for(req: GraphRequest, route: Route, limits: dict[str, float]) -> tuple[Charge, ...]:
    return _charges(
        req.tenant.tenant_id,
        req.client_id,
        request_cost(req, route),
        route.kind == "write",
        route.invitation,
        limits["resource_units_per_10s"],
        limits["write_per_150s"],
        limits["invitations_per_5s"],
        float(limits.get("window_scale", 1.0) or 1.0),
    )


@lru_cache(maxsize=1024)
def _charges(
    tid: str,
    app: str,
    cost: int,
    write: bool,
    invitation: bool,
    ru_limit: float,
    write_limit: float,
    invite_limit: float,
    scale: float,
) -> tuple[Charge, ...]:
    """The charges of one kind of request (the same few for every request of a client: built
    once, not per request; a change of the limits is a new cache key)."""

    def window(name: str) -> float:
        return WINDOWS_S[name] * scale

    out = [
        Charge(
            ("ru", tid, app),
            cost,
            ru_limit,
            window("resource_units_per_10s"),
            "ResourceUnitLimitExceeded",
            f"Tenant_Application/ReadWrite/{app}/{tid}",
        )
    ]
    if write:
        out.append(
            Charge(
                ("write", tid, app),
                1,
                write_limit,
                window("write_per_150s"),
                "WriteLimitExceeded",
                f"Tenant_Application/Write/{app}/{tid}",
            )
        )
    if invitation:
        out.append(
            Charge(
                ("invite", tid),
                1,
                invite_limit,
                window("invitations_per_5s"),
                "InvitationLimitExceeded",
                f"Tenant/ReadWrite/{app}/{tid}",
            )
        )
    return tuple(out)


def _percentage(ratio: float) -> str:
    return f"{min(ratio, MAX_RATIO):.2f}"


def apply(state: SandboxState, req: GraphRequest, route: Route) -> dict[str, str]:
    """Charge the request's quotas: the headers for its response, or a 429 GraphError."""
    if route.kind == "batch":
        return {}
    charges = charges_for(req, route, state.limits)
    now = monotonic()
    refused = state.limiter.try_charge(charges, now)
    if refused is not None:
        retry_after, reason = refused
        charge = next(c for c in charges if c.name == reason)
        ratio = (state.limiter.used(charge.key, now, charge.window_s) + charge.cost) / charge.limit
        raise GraphError(
            429,
            "TooManyRequests",
            f"Too many requests ({reason}). Retry after {retry_after} seconds.",
            headers={
                "Retry-After": str(retry_after),
                "x-ms-throttle-information": reason,
                "x-ms-throttle-scope": charge.scope,
                "x-ms-throttle-limit-percentage": _percentage(ratio),
            },
        )
    headers = {"x-ms-resource-unit": str(int(charges[0].cost))}
    ratio = 0.0  # the fullest quota's share (a loop: this runs for every request)
    for c in charges:
        share = state.limiter.used(c.key, now, c.window_s) / c.limit
        if share > ratio:
            ratio = share
    if ratio > WARN_RATIO:
        headers["x-ms-throttle-limit-percentage"] = _percentage(ratio)
    return headers
