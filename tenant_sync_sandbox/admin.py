"""The sandbox's own control API under `/_sandbox/` (not Graph). No auth; loopback only.

GET  /_sandbox/health                    {"status": "ok"}
POST /_sandbox/reset                     back to the loaded seed (data, limits, faults, delta)
POST /_sandbox/seed                      load another seed (body: a seed, see seed.py)
GET  /_sandbox/stats                     requests.{total,by_tenant,by_method_path,batch_items},
                                         writes.<tenant>, throttled, errors, faults_injected,
                                         faults_by_kind.{latency,drop,commit_then_drop,
                                         commit_then_error,error_5xx}
POST /_sandbox/stats/reset
GET|PUT /_sandbox/faults                 merge into the fault settings (keys: seed.py); a
                                         "seed" key in the body restarts the fault RNG
GET|PUT /_sandbox/limits                 merge into the limits (incl. "window_scale")
GET|PUT /_sandbox/delta                  {"token_max_age_s": N, "lag_s": L}
POST /_sandbox/delta-tokens/age          {"seconds": N, "max_age_s": M?}: ages every token
GET|PUT /_sandbox/auth                   {"token_lifetime_s": N, "code_lifetime_s": N}
                                         (answers also "signing_kids", newest first)
POST /_sandbox/auth/rotate-keys          a new signing key; the previous one stays in the JWKS
GET  /_sandbox/tenants, /_sandbox/tenants/{id}/users|groups[?include_deleted=true]
                                         (users carry "manager": id or null; groups "members")
GET  /_sandbox/snapshot                  the directory as it is now, as a seed (no deleted objects)
POST /_sandbox/tenants/{id}/users/{user_id}/redeem
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import schema
from .seed import (
    SeedError,
    now_iso,
    validate_delta,
    validate_faults,
    validate_limits,
    validate_seed,
)
from .state import SandboxState, Stats, Tenant

Endpoint = Callable[[Request], Awaitable[Response]]


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith(("127.", "::ffff:127."))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SeedError(f"request body is not valid JSON: {exc}") from exc


def _full(obj: dict[str, Any], type_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: schema.default_value(p) for name, p in schema.properties(type_name).items()
    }
    out.update(copy.deepcopy(obj))
    profile = out.get("passwordProfile")
    if isinstance(profile, dict):
        profile.pop("password", None)
    return out


def routes(state: SandboxState) -> list[Route]:
    def guard(fn: Callable[[Request], Awaitable[Response]]) -> Endpoint:
        async def wrapped(request: Request) -> Response:
            if not _is_loopback(request):
                return _error(403, "the sandbox admin API only answers loopback clients")
            try:
                return await fn(request)
            except SeedError as exc:
                return _error(400, str(exc))

        return wrapped

    def tenant_or_404(request: Request) -> Tenant | Response:
        tenant = state.tenant(request.path_params["tenant_id"])
        if tenant is None:
            return _error(404, f"no tenant {request.path_params['tenant_id']} in the sandbox")
        return tenant

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"status": "reset"})

    async def reseed(request: Request) -> Response:
        data = await _json(request)
        state.load(validate_seed(data), owned=True)
        return JSONResponse({"status": "seeded", "tenants": sorted(state.tenants)})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats.as_json())

    async def stats_reset(request: Request) -> Response:
        state.stats = Stats()
        return JSONResponse(state.stats.as_json())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json(request) or {}
            if not isinstance(body, dict):
                return _error(400, "faults must be a JSON object")
            merged = {**state.faults, **body}
            state.set_faults(validate_faults(merged), reseed="seed" in body)
        return JSONResponse(state.faults)

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json(request) or {}
            if not isinstance(body, dict):
                return _error(400, "limits must be a JSON object")
            state.limits = validate_limits({**state.limits, **body})
        return JSONResponse(state.limits)

    async def delta_settings(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json(request) or {}
            if not isinstance(body, dict):
                return _error(400, "delta settings must be a JSON object")
            current = {"token_max_age_s": state.delta_max_age_s, "lag_s": state.delta_lag_s}
            settings = validate_delta({**current, **body})
            state.delta_max_age_s = float(settings["token_max_age_s"])
            state.delta_lag_s = float(settings["lag_s"])
        return JSONResponse(
            {
                "token_max_age_s": state.delta_max_age_s,
                "lag_s": state.delta_lag_s,
                "age_offset_s": state.token_age_offset,
            }
        )

    def auth_view() -> dict[str, Any]:
        return {
            "token_lifetime_s": state.access_token_lifetime_s,
            "code_lifetime_s": state.grants.code_lifetime_s,
            "signing_kids": [k.kid for k in state.signer.keys],
        }

    async def auth_settings(request: Request) -> Response:
        if request.method == "PUT":
            body = await _json(request) or {}
            if not isinstance(body, dict):
                return _error(400, "auth settings must be a JSON object")
            unknown = sorted(set(body) - {"token_lifetime_s", "code_lifetime_s"})
            if unknown:
                return _error(400, f"unknown auth settings {unknown}")
            values: dict[str, int] = {}
            for name in ("token_lifetime_s", "code_lifetime_s"):
                value = body.get(name)
                if value is None:
                    continue
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    return _error(400, f"{name} must be a positive integer")
                values[name] = value
            if "token_lifetime_s" in values:
                state.access_token_lifetime_s = values["token_lifetime_s"]
            if "code_lifetime_s" in values:
                state.grants.code_lifetime_s = values["code_lifetime_s"]
        return JSONResponse(auth_view())

    async def rotate_keys(request: Request) -> Response:
        state.signer.rotate()
        return JSONResponse(auth_view())

    async def age_tokens(request: Request) -> Response:
        body = await _json(request) or {}
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return _error(400, 'body must be {"seconds": N} with N >= 0')
        state.token_age_offset += float(seconds)
        if isinstance(body, dict) and "max_age_s" in body:
            max_age = body["max_age_s"]
            if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
                return _error(400, "max_age_s must be a positive number")
            state.delta_max_age_s = float(max_age)
        return JSONResponse(
            {"age_offset_s": state.token_age_offset, "max_age_s": state.delta_max_age_s}
        )

    async def snapshot(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def tenants(request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "tenant_id": t.tenant_id,
                    "domain": t.domain,
                    "users": len(t.active_user_ids),
                    "groups": sum(1 for g in t.groups if t.is_active(g)),
                    "seq": t.seq,
                }
                for t in state.tenants.values()
            ]
        )

    async def dump_users(request: Request) -> Response:
        found = tenant_or_404(request)
        if isinstance(found, Response):
            return found
        include_deleted = request.query_params.get("include_deleted", "").lower() in (
            "1",
            "true",
            "yes",
        )
        out = []
        for uid, u in sorted(found.users.items()):
            if include_deleted or u.get("deletedDateTime") is None:
                item = _full(u, schema.USER)
                item["manager"] = found.managers.get(uid)  # the manager's id, or null
                out.append(item)
        return JSONResponse(out)

    async def dump_groups(request: Request) -> Response:
        found = tenant_or_404(request)
        if isinstance(found, Response):
            return found
        include_deleted = request.query_params.get("include_deleted", "").lower() in (
            "1",
            "true",
            "yes",
        )
        out = []
        for gid, g in sorted(found.groups.items()):
            if not include_deleted and g.get("deletedDateTime") is not None:
                continue
            item = _full(g, schema.GROUP)
            item["members"] = found.effective_members(gid)
            out.append(item)
        return JSONResponse(out)

    async def redeem(request: Request) -> Response:
        found = tenant_or_404(request)
        if isinstance(found, Response):
            return found
        user = found.active_user(request.path_params["user_id"])
        if user is None:
            return _error(404, f"no active user {request.path_params['user_id']}")
        found.update_user(
            user["id"],
            {"externalUserState": "Accepted", "externalUserStateChangeDateTime": now_iso()},
        )
        return JSONResponse(_full(user, schema.USER))

    return [
        Route("/_sandbox/health", guard(health), methods=["GET"]),
        Route("/_sandbox/reset", guard(reset), methods=["POST"]),
        Route("/_sandbox/seed", guard(reseed), methods=["POST"]),
        Route("/_sandbox/stats", guard(stats), methods=["GET"]),
        Route("/_sandbox/stats/reset", guard(stats_reset), methods=["POST"]),
        Route("/_sandbox/faults", guard(faults), methods=["GET", "PUT"]),
        Route("/_sandbox/limits", guard(limits), methods=["GET", "PUT"]),
        Route("/_sandbox/delta", guard(delta_settings), methods=["GET", "PUT"]),
        Route("/_sandbox/auth", guard(auth_settings), methods=["GET", "PUT"]),
        Route("/_sandbox/auth/rotate-keys", guard(rotate_keys), methods=["POST"]),
        Route("/_sandbox/delta-tokens/age", guard(age_tokens), methods=["POST"]),
        Route("/_sandbox/tenants", guard(tenants), methods=["GET"]),
        Route("/_sandbox/snapshot", guard(snapshot), methods=["GET"]),
        Route("/_sandbox/tenants/{tenant_id}/users", guard(dump_users), methods=["GET"]),
        Route("/_sandbox/tenants/{tenant_id}/groups", guard(dump_groups), methods=["GET"]),
        Route(
            "/_sandbox/tenants/{tenant_id}/users/{user_id}/redeem",
            guard(redeem),
            methods=["POST"],
        ),
    ]
