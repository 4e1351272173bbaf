"""`GET /v1.0/auditLogs/provisioning`: the provisioning log as Graph's provisioningObjectSummary.

Newest first, across every job unless `$filter` names one. `$filter` takes comparisons joined by
`and` on: jobId, cycleId, changeId, id (eq); provisioningAction and provisioningStatusInfo/status
(eq, Graph's values); sourceIdentity/id, targetIdentity/id (eq); activityDateTime (ge, gt, le,
lt). Anything else is a 400 naming it. `$top` is 1 to 1000 (default 100). Paging is keyset on the
row's id: `@odata.nextLink` carries an opaque `$skiptoken`, so rows recorded while a client pages
never shift a page or repeat a row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request

from worker.adapters.state.sql import LogCondition, LogField, LogOp

from .app import Reader, services
from .auth import Principal
from .errors import bad_request
from .graph_jobs import base_url, option
from .odata import (
    Comparison,
    FilterError,
    decode_skiptoken,
    encode_skiptoken,
    parse_datetime,
    parse_filter,
    parse_top,
)
from .provisioning import (
    PROVISIONING_ACTIONS,
    PROVISIONING_RESULTS,
    actions_for,
    job_systems,
    summary,
)

router = APIRouter(prefix="/v1.0", tags=["Graph: provisioning logs"])
DEFAULT_TOP = 100
MAX_TOP = 1000
# Graph's property path (lower case) -> (the log column, whether its ids are lower case GUIDs)
_EQUALITIES: dict[str, tuple[LogField, bool]] = {
    "jobid": ("job", False),
    "cycleid": ("run_id", True),
    "changeid": ("change_id", True),
    "id": ("change_id", True),
    "sourceidentity/id": ("source_id", True),
    "targetidentity/id": ("target_id", True),
}
_RANGES: dict[str, LogOp] = {"ge": "ge", "gt": "gt", "le": "le", "lt": "lt"}
SUPPORTED = (
    "jobId, cycleId, changeId, id, provisioningAction, provisioningStatusInfo/status, "
    "sourceIdentity/id, targetIdentity/id (eq); activityDateTime (ge, gt, le, lt)"
)


def _string(c: Comparison) -> str:
    if not isinstance(c.value, str):
        raise FilterError(f"in '{c.text}': the value must be a quoted string")
    return c.value


def _only_eq(c: Comparison) -> None:
    if c.op != "eq":
        raise FilterError(f"'{c.text}': only 'eq' compares {c.path}")


def _enum(c: Comparison, allowed: tuple[str, ...]) -> str:
    _only_eq(c)
    value = _string(c)
    for name in allowed:
        if name.lower() == value.lower():
            return name
    raise FilterError(
        f"'{c.text}': '{value}' is not a {c.path} value (one of: {', '.join(allowed)})"
    )


def conditions(text: str) -> list[LogCondition]:
    """The log conditions of a `$filter`; FilterError names what is not supported."""
    found: list[LogCondition] = []
    for c in parse_filter(text):
        path = c.path.lower()
        if path in _EQUALITIES:
            column, lowered = _EQUALITIES[path]
            _only_eq(c)
            value = _string(c)
            found.append(LogCondition(column, "eq", value.lower() if lowered else value))
        elif path == "provisioningaction":
            graph_action = _enum(c, PROVISIONING_ACTIONS)
            found.append(LogCondition("action", "in", actions_for(graph_action)))
        elif path == "provisioningstatusinfo/status":
            found.append(LogCondition("status", "eq", _enum(c, PROVISIONING_RESULTS)))
        elif path == "activitydatetime":
            if c.op not in _RANGES:
                raise FilterError(f"'{c.text}': compare activityDateTime with ge, gt, le or lt")
            moment = c.value
            if isinstance(moment, str):
                try:
                    moment = parse_datetime(moment)
                except ValueError:
                    moment = None
            if not isinstance(moment, datetime):
                raise FilterError(
                    f"'{c.text}': the value must be a date-time such as 2024-05-01T00:00:00Z"
                )
            found.append(LogCondition("created_at", _RANGES[c.op], moment))
        else:
            raise FilterError(f"'{c.path}' cannot be filtered on (supported: {SUPPORTED})")
    return found


def _next_link(request: Request, last_id: int) -> str:
    url = request.url.remove_query_params(["$skiptoken", "skiptoken"])
    return str(url.include_query_params(**{"$skiptoken": encode_skiptoken(last_id)}))


@router.get(
    "/auditLogs/provisioning",
    summary="Provisioning log rows (provisioningObjectSummary), newest first, paged",
)
def list_provisioning(request: Request, who: Principal = Reader) -> dict[str, Any]:
    svc = services(request)
    try:
        top = parse_top(option(request, "top"), default=DEFAULT_TOP, maximum=MAX_TOP)
        text = option(request, "filter")
        wanted = conditions(text) if text is not None else []
        token = option(request, "skiptoken")
        before = decode_skiptoken(token) if token else None
    except FilterError as exc:
        where = "" if str(exc).startswith("$") else "Invalid $filter: "
        raise bad_request(f"{where}{exc}.") from None
    order = option(request, "orderby")
    if order and " ".join(order.split()).lower() != "activitydatetime desc":
        raise bad_request(
            f"$orderby '{order}' is not supported: rows come newest first (activityDateTime desc)"
        )
    if option(request, "skip") is not None:
        raise bad_request("$skip is not supported: follow @odata.nextLink ($skiptoken)")
    rows = svc.operations.log_page(wanted, before=before, limit=top + 1)
    page = rows[:top]
    systems = {job: job_systems(svc.config, job) for job in {row["jobId"] for _, row in page}}
    body: dict[str, Any] = {
        "@odata.context": f"{base_url(request)}/$metadata#auditLogs/provisioning",
        "value": [summary(row, systems[row["jobId"]]) for _, row in page],
    }
    if len(rows) > top:
        body["@odata.nextLink"] = _next_link(request, page[-1][0])
    return body
