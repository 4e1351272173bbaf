"""The Graph pipeline: bearer check, injected faults, throttling, dispatch, stats, `$batch`.

`GraphApi.endpoint` is the Starlette endpoint for `/v1.0/...`: it authenticates the caller,
applies the faults of `faults.py` (latency, dropped connection, 5xx, commit-then-drop), then
runs the request. `GraphApi.execute` runs one request (or one `$batch` item) synchronously
through throttling (`throttling.py`) and its handler, and counts it in the stats.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import auth, entra, faults, groups, invitations, permissions, policies, throttling, users
from .ids import new_guid
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
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT"})
Matched = tuple[Route, dict[str, str]] | GraphError  # a request's route and parameters

# One encoder for every answer (json.dumps with options makes a new one per call).
_ENCODE_JSON = json.JSONEncoder(separators=(",", ":")).encode


def _not_sequential() -> GraphError:
    return GraphError(
        400, "BadRequest", "Batch should be either fully sequential or fully parallel"
    )


class GraphApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.router = Router()
        self.router.add("POST", "/$batch", self.batch, kind="batch")
        users.register(self.router)
        groups.register(self.router)
        invitations.register(self.router)
        policies.register(self.router)

    # ------------------------------------------------------------ HTTP entry

    async def endpoint(self, request: Request) -> Response:
        state = self.state
        request_id = str(request.scope.get("sandbox.request_id") or new_guid())
        client_request_id = request.headers.get("client-request-id")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("utf-8", errors="replace").split("?", 1)[0]
        path = path[len("/v1.0") :] or "/"
        method = request.method.upper()

        matched = self._match(method, path)
        key = f"{method} /v1.0/(unknown)" if isinstance(matched, GraphError) else matched[0].key

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
        resp = self.execute(req, client_request_id, matched)
        if plan.drop_after:
            state.stats.count_fault("commit_then_drop")
            await faults.drop_connection(request.scope)
            return Response(status_code=500)  # never sent: the connection is gone
        if plan.error_after is not None and resp.status < 400:  # only what was carried out
            resp = self._injected(plan.error_after, request_id, client_request_id, after=True)
        return self._render(resp, request_id)

    def _injected(
        self, status: int, request_id: str, client_request_id: str | None, after: bool = False
    ) -> GraphResponse:
        self.state.stats.count_fault("commit_then_error" if after else f"error_{status}")
        self.state.stats.errors += 1
        exc = faults.injected_error(status, int(self.state.faults.get("error_retry_after_s", 1)))
        return self._error(exc, request_id, client_request_id)

    # ------------------------------------------------------------ one request

    def _match(self, method: str, path: str) -> Matched:
        """The route of a request and its parameters, or the error that answers it."""
        try:
            return self.router.match(method, path)
        except GraphError as exc:
            return exc

    def execute(
        self,
        req: GraphRequest,
        client_request_id: str | None,
        matched: Matched | None = None,
    ) -> GraphResponse:
        """Run one request; `matched` is `_match(req.method, req.path)` when the caller just
        made it (a path is matched once per request)."""
        stats = self.state.stats
        route: Route | None = None
        quota_headers: dict[str, str] = {}
        try:
            if matched is None:
                matched = self.router.match(req.method, req.path)
            elif isinstance(matched, GraphError):
                raise matched
            route, req.params = matched
            client = req.tenant.clients.get(req.client_id)
            permissions.check(route.permissions, client.roles if client else ())
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
        content = _ENCODE_JSON(resp.body)
        return Response(content, status_code=resp.status, headers=headers, media_type=JSON_TYPE)

    # ------------------------------------------------------------ $batch

    def batch(self, req: GraphRequest) -> GraphResponse:
        """JSON batching as Microsoft Graph documents and answers it ("Combine multiple HTTP
        requests using JSON batching"):

        - at most 20 items, each with an `id` unique in the batch (case-insensitive), a
          `method` and a `url` relative to the version (`/users/x`); `https://...` and
          `/v1.0/...` item URLs are answered 400 "Resource not found for the segment ..."
          for that item, as Graph does;
        - a write (POST, PATCH, PUT) needs a `body` and a `Content-Type` in its `headers`, else
          the whole batch is 400 "Write request id : N does not contain Content-Type header or
          body." (Graph's answer: a POST that needs no body still sends `{}`);
        - `dependsOn` makes a batch sequential: either no item has it (parallel), or every
          item after the first depends on items before it, else 400 "Batch should be either
          fully sequential or fully parallel"; an item whose dependency failed gets 424;
        - a parallel batch's items run in a random order, and the responses come in the order
          they ran (Graph: "Individual responses might appear in a different order than the
          requests"), so a client that relies on array order fails here as it would there. The
          order is drawn from an RNG seeded with the fault seed (`faults.seed`), so a seeded
          sandbox repeats it;
        - other item properties are ignored: Graph accepts them (Microsoft's Python SDK sends
          `depends_on`, in snake case, with every item, and Graph ignores it).
        """
        if req.in_batch:
            raise bad_request("A $batch request cannot contain another $batch.")
        if not isinstance(req.body, dict) or not isinstance(req.body.get("requests"), list):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        items: list[Any] = req.body["requests"]
        if len(items) > MAX_BATCH:
            raise bad_request(f"Number of batch request steps exceeds the maximum of {MAX_BATCH}.")
        seen: dict[str, str] = {}  # folded id -> id as sent
        with_deps = 0
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            rid = item.get("id")
            if not isinstance(rid, str | int) or not str(rid).strip():
                raise GraphError(400, "BadRequest", "Each batch request needs a non-empty 'id'.")
            if str(rid).casefold() in seen:
                raise GraphError(
                    400, "BadRequest", f"Batch request id '{rid}' is not unique in the batch."
                )
            if not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
                raise GraphError(
                    400, "BadRequest", f"Batch request '{rid}' needs a 'method' and a 'url'."
                )
            headers = item.get("headers")
            if headers is not None and not isinstance(headers, dict):
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            has_type = any(str(k).lower() == "content-type" for k in (headers or {}))
            method = str(item["method"]).upper()
            if (method in WRITE_METHODS or item.get("body") is not None) and (
                item.get("body") is None or not has_type
            ):
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Write request id : {rid} does not contain Content-Type header or body.",
                )
            deps = item.get("dependsOn")
            if deps is not None and not isinstance(deps, list):
                raise GraphError(400, "BadRequest", "Invalid batch payload format.")
            for dep in deps or []:
                if str(dep).casefold() not in seen:
                    raise GraphError(
                        400,
                        "BadRequest",
                        f"Invalid dependency for request Id : {rid}: '{dep}' is not the id of "
                        "a request before it in the batch.",
                    )
            if deps:
                with_deps += 1
            elif position > 0 and with_deps:
                raise _not_sequential()
            seen[str(rid).casefold()] = str(rid)
        sequential = with_deps > 0
        if sequential and with_deps != len(items) - 1:
            raise _not_sequential()

        order = list(range(len(items)))
        if not sequential:
            self.state.batch_rng.shuffle(order)
        results: dict[str, GraphResponse] = {}
        out: list[dict[str, Any]] = []
        for index in order:
            item = items[index]
            rid = str(item["id"])
            item_headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            crid = item_headers.get("client-request-id")
            failed = [
                str(d)
                for d in item.get("dependsOn") or []
                if results[seen[str(d).casefold()].casefold()].status >= 400
            ]
            sub_id = new_guid()
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
            results[rid.casefold()] = resp
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
        # Relative to the version, as Graph wants it: an absolute URL or a `/v1.0/` prefix is
        # not stripped, so it fails on its first segment ('https:', 'v1.0') as it does there.
        url = str(item["url"]).strip()
        if not url.startswith("/"):
            url = "/" + url
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
        matched = self._match(method, path)
        key = f"{method} /v1.0/(unknown)" if isinstance(matched, GraphError) else matched[0].key
        stats.by_method_path[key] = stats.by_method_path.get(key, 0) + 1
        status = faults.plan_batch_item(self.state.faults, self.state.fault_rng)
        if status is not None:
            return self._injected(status, sub_id, crid)
        resp = self.execute(sub, crid, matched)
        after = faults.error_after_commit(self.state.faults, self.state.fault_rng)
        if after is None or resp.status >= 400:  # only what was carried out
            return resp
        return self._injected(after, sub_id, crid, after=True)
