"""The Graph pipeline: bearer check, injected faults, throttling, dispatch, stats, `$batch`.

`GraphApi.endpoint` is the Starlette endpoint for `/v1.0/...`: it authenticates the caller,
applies the faults of `faults.py` (latency, dropped connection, 5xx, commit-then-drop), then
runs the request. `GraphApi.execute` runs one request (or one `$batch` item) synchronously
through throttling (`throttling.py`) and its handler, and counts it in the stats.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import auth, entra, faults, groups, invitations, throttling, users
from .router import (
    GraphError,
    GraphRequest,
    GraphResponse,
    Route,
    Router,
    bad_request,
    parse_query,
)
from .seed import now_iso
from .state import SandboxState

JSON_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
MAX_BATCH = 20


class GraphApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.router = Router()
        self.router.add("POST", "/$batch", self.batch, kind="batch")
        users.register(self.router)
        groups.register(self.router)
        invitations.register(self.router)

    # ------------------------------------------------------------ HTTP entry

    async def endpoint(self, request: Request) -> Response:
        state = self.state
        request_id = str(request.scope.get("sandbox.request_id") or uuid.uuid4())
        client_request_id = request.headers.get("client-request-id")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("utf-8", errors="replace").split("?", 1)[0]
        path = path[len("/v1.0") :] or "/"
        method = request.method.upper()

        try:
            route, _ = self.router.match(method, path)
            key = route.key
        except GraphError:
            key = f"{method} /v1.0/(unknown)"

        try:
            tenant, client_id = auth.authenticate(state, request.headers.get("authorization"))
        except GraphError as exc:
            state.stats.count_request(key, None)
            state.stats.errors += 1
            return self._render(self._error(exc, request_id, client_request_id), request_id)
        state.stats.count_request(key, tenant.tenant_id)

        plan = faults.plan_request(state.faults, state.fault_rng, key, f"{method} /v1.0{path}")
        latency = float(state.faults.get("latency_ms", 0) or 0)
        if latency > 0:
            state.stats.count_fault("latency")
            await asyncio.sleep(latency / 1000.0)
        if plan.drop_before:
            state.stats.count_fault("drop")
            await faults.drop_connection(request.scope)
            return Response(status_code=500)  # never sent: the connection is gone
        if plan.error_status is not None:
            injected = self._injected(plan.error_status, request_id, client_request_id)
            return self._render(injected, request_id)

        raw_body = await request.body()
        body: Any = None
        if raw_body.strip():
            try:
                body = json.loads(raw_body)
            except (ValueError, UnicodeDecodeError):
                bad_json = GraphError(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload. Please ensure Content-Type header is "
                    "set and payload is of valid JSON format.",
                )
                state.stats.errors += 1
                return self._render(
                    self._error(bad_json, request_id, client_request_id), request_id
                )

        req = GraphRequest(
            state=state,
            tenant=tenant,
            client_id=client_id,
            method=method,
            path=path,
            query=parse_query(request.url.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            base_url=entra.base_url(request),
            request_id=request_id,
        )
        # Everything from here to the response is synchronous: no other request interleaves.
        resp = self.execute(req, client_request_id)
        if plan.drop_after:
            state.stats.count_fault("commit_then_drop")
            await faults.drop_connection(request.scope)
            return Response(status_code=500)  # never sent: the connection is gone
        return self._render(resp, request_id)

    def _injected(
        self, status: int, request_id: str, client_request_id: str | None
    ) -> GraphResponse:
        self.state.stats.count_fault(f"error_{status}")
        self.state.stats.errors += 1
        exc = faults.injected_error(status, int(self.state.faults.get("error_retry_after_s", 1)))
        return self._error(exc, request_id, client_request_id)

    # ------------------------------------------------------------ one request

    def execute(self, req: GraphRequest, client_request_id: str | None) -> GraphResponse:
        stats = self.state.stats
        route: Route | None = None
        quota_headers: dict[str, str] = {}
        try:
            route, params = self.router.match(req.method, req.path)
            req.params = params
            quota_headers = throttling.apply(self.state, req, route)
            resp = route.handler(req)
        except GraphError as exc:
            resp = self._error(exc, req.request_id, client_request_id)
        if resp.status == 429:
            stats.throttled += 1
        elif resp.status >= 400:
            stats.errors += 1
        elif route is not None and route.kind == "write":
            stats.count_write(req.tenant.tenant_id)
        for name, value in quota_headers.items():
            resp.headers.setdefault(name, value)
        resp.headers.setdefault("request-id", req.request_id)
        if client_request_id:
            resp.headers.setdefault("client-request-id", client_request_id)
        return resp

    def _error(
        self, exc: GraphError, request_id: str, client_request_id: str | None
    ) -> GraphResponse:
        body = {
            "error": {
                "code": exc.code,
                "message": exc.message,
                "innerError": {
                    "date": now_iso(),
                    "request-id": request_id,
                    "client-request-id": client_request_id or request_id,
                },
            }
        }
        return GraphResponse(exc.status, body, headers=dict(exc.headers))

    def _render(self, resp: GraphResponse, request_id: str) -> Response:
        headers = dict(resp.headers)
        headers.setdefault("request-id", request_id)
        if resp.status == 204 or (resp.body is None and resp.text is None):
            headers.pop("Content-Type", None)
            return Response(status_code=resp.status, headers=headers)
        if resp.text is not None:
            media = headers.pop("Content-Type", "text/plain")
            return Response(resp.text, status_code=resp.status, headers=headers, media_type=media)
        content = json.dumps(resp.body, separators=(",", ":"))
        return Response(content, status_code=resp.status, headers=headers, media_type=JSON_TYPE)

    # ------------------------------------------------------------ $batch

    def batch(self, req: GraphRequest) -> GraphResponse:
        if req.in_batch:
            raise bad_request("A $batch request cannot contain another $batch.")
        if not isinstance(req.body, dict) or not isinstance(req.body.get("requests"), list):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        items: list[Any] = req.body["requests"]
        if len(items) > MAX_BATCH:
            raise bad_request(f"Number of batch request steps exceeds the maximum of {MAX_BATCH}.")
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            rid = item.get("id")
            if not isinstance(rid, str | int) or str(rid) in seen:
                raise bad_request("Each batch request needs a unique 'id'.")
            if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
                raise bad_request(f"Batch request '{rid}' needs a 'method' and a 'url'.")
            deps = item.get("dependsOn") or []
            if not isinstance(deps, list) or any(str(d) not in seen for d in deps):
                raise bad_request(
                    f"Batch request '{rid}' depends on an id that does not precede it."
                )
            seen.add(str(rid))

        results: dict[str, GraphResponse] = {}
        out: list[dict[str, Any]] = []
        for item in items:
            rid = str(item["id"])
            item_headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            crid = item_headers.get("client-request-id")
            failed = [str(d) for d in item.get("dependsOn") or [] if results[str(d)].status >= 400]
            sub_id = str(uuid.uuid4())
            if failed:
                resp = self._error(
                    GraphError(
                        424,
                        "FailedDependency",
                        f"The request depends on request(s) {', '.join(failed)} that failed.",
                    ),
                    sub_id,
                    crid,
                )
            else:
                resp = self._batch_item(req, item, item_headers, sub_id, crid)
            results[rid] = resp
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "request-id"}
            body: Any = resp.body if resp.text is None else resp.text
            if body is not None and resp.text is None:
                headers.setdefault("Content-Type", JSON_TYPE)
            out.append({"id": rid, "status": resp.status, "headers": headers, "body": body})
        return GraphResponse(200, {"responses": out})

    def _batch_item(
        self,
        outer: GraphRequest,
        item: dict[str, Any],
        item_headers: dict[str, str],
        sub_id: str,
        crid: str | None,
    ) -> GraphResponse:
        url = str(item["url"]).strip()
        if "://" in url:
            url = "/" + url.split("://", 1)[1].split("/", 1)[-1]
        if not url.startswith("/"):
            url = "/" + url
        for prefix in ("/v1.0/", "/beta/"):
            if url.lower().startswith(prefix):
                url = url[len(prefix) - 1 :]
        path, _, query = url.partition("?")
        method = str(item["method"]).upper()
        sub = GraphRequest(
            state=outer.state,
            tenant=outer.tenant,
            client_id=outer.client_id,
            method=method,
            path=path,
            query=parse_query(query),
            headers=item_headers,
            body=item.get("body"),
            base_url=outer.base_url,
            request_id=sub_id,
            in_batch=True,
        )
        stats = self.state.stats
        stats.batch_items += 1
        try:
            route, _ = self.router.match(method, path)
            key = route.key
        except GraphError:
            key = f"{method} /v1.0/(unknown)"
        stats.by_method_path[key] = stats.by_method_path.get(key, 0) + 1
        status = faults.plan_batch_item(self.state.faults, self.state.fault_rng)
        if status is not None:
            return self._injected(status, sub_id, crid)
        return self.execute(sub, crid)
