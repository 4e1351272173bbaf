"""`GET /api/audit`: the audit trail of operator actions, newest first, paged by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from .app import Reader, services
from .auth import Principal
from .errors import not_found

router = APIRouter(prefix="/api", tags=["audit"])
MAX_PAGE = 500


@router.get("/audit", summary="The audit trail: who did what to which job, newest first")
def audit_trail(
    request: Request,
    job: str | None = Query(None, description="Only this job's entries."),
    limit: int = Query(100, ge=1, le=MAX_PAGE, description="Entries per page."),
    before: int | None = Query(None, ge=1, description="Entries older than this id (paging)."),
    who: Principal = Reader,
) -> dict[str, Any]:
    svc = services(request)
    if job is not None and job not in svc.config.jobs:
        raise not_found(f"Job '{job}' does not exist.")
    entries = svc.runtime.audit.entries(job=job, limit=limit, before_id=before)
    rows = [e.as_row() for e in entries]
    body: dict[str, Any] = {"value": rows}
    if len(rows) == limit and rows[-1]["id"] is not None:
        query = f"limit={limit}&before={rows[-1]['id']}" + (f"&job={job}" if job else "")
        body["nextLink"] = f"{request.url.path}?{query}"
    return body
