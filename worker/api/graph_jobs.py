"""Graph's synchronization API over tenant-sync's jobs (docs/operator-service.md).

A job `J` is service principal `J` with exactly one synchronization job `J`, so a script written
for Entra (`/servicePrincipals/{id}/synchronization/jobs/{jobId}/...`) works by changing only the
base URL. Reads need TenantSync.Read, actions TenantSync.Operate; errors are Graph's OData errors.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from worker.config import Job

from .app import Operator, Reader, services
from .auth import Principal
from .errors import bad_request, not_found
from .graph_schema import synchronization_schema
from .graph_status import synchronization_job
from .odata import (
    FilterError,
    decode_skiptoken,
    encode_skiptoken,
    parse_filter,
    parse_top,
)
from .operations import Operations
from .provisioning import job_systems, on_demand_result
from .restart_scope import ScopeError, parse_reset_scope

router = APIRouter(prefix="/v1.0", tags=["Graph: synchronization"])
GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
MAX_TOP = 999  # Graph's largest page of directory objects


def base_url(request: Request) -> str:
    """This service's Graph root as the caller reached it (for @odata.context and links)."""
    return f"{str(request.base_url).rstrip('/')}/v1.0"


def option(request: Request, name: str) -> str | None:
    """An OData query option, with or without its `$` (Graph accepts both)."""
    params = request.query_params
    return params.get(f"${name}", params.get(name))


def _operations(request: Request) -> Operations:
    return services(request).operations


def _job(request: Request, sp: str, job_id: str | None = None) -> Job:
    ops = _operations(request)
    if sp not in ops.config.jobs:
        raise not_found(
            f"Service principal '{sp}' does not exist: each job is a service principal "
            f"(known: {', '.join(ops.job_names()) or 'none'})."
        )
    if job_id is not None and job_id != sp:
        raise not_found(
            f"Synchronization job '{job_id}' does not exist under service principal '{sp}' "
            f"(its one job is '{sp}')."
        )
    return ops.job(sp)


def _service_principal(name: str) -> dict[str, Any]:
    return {"id": name, "displayName": name, "appId": None}


# service principals -----------------------------------------------------------------------------
@router.get("/servicePrincipals", summary="Every job as a service principal")
def list_service_principals(request: Request, who: Principal = Reader) -> dict[str, Any]:
    names = _operations(request).job_names()
    text = option(request, "filter")
    if text:
        try:
            comparisons = parse_filter(text)
        except FilterError as exc:
            raise bad_request(f"Invalid $filter: {exc}.") from None
        for c in comparisons:
            if c.path not in ("displayName", "id") or c.op != "eq" or not isinstance(c.value, str):
                raise bad_request(
                    f"Invalid $filter: '{c.text}' is not supported here "
                    "(only displayName eq '...' and id eq '...')."
                )
            names = [n for n in names if n == c.value]
    try:
        top = parse_top(option(request, "top"), default=MAX_TOP, maximum=MAX_TOP)
        token = option(request, "skiptoken")
        start = decode_skiptoken(token) if token else 0
    except FilterError as exc:
        raise bad_request(f"{exc}.") from None
    rows = [_service_principal(n) for n in names[start : start + top]]
    selected = option(request, "select")
    if selected:
        wanted = {s.strip() for s in selected.split(",") if s.strip()}
        rows = [{k: v for k, v in row.items() if k in wanted or k == "id"} for row in rows]
    body: dict[str, Any] = {
        "@odata.context": f"{base_url(request)}/$metadata#servicePrincipals",
        "value": rows,
    }
    if start + top < len(names):
        # An organisation makes many jobs (a mesh of 100 tenants: 9,900): page them as Graph
        # does, the token holding the position in the sorted names.
        url = request.url.remove_query_params(["$skiptoken", "skiptoken"])
        body["@odata.nextLink"] = str(
            url.include_query_params(**{"$skiptoken": encode_skiptoken(start + top)})
        )
    return body


@router.get("/servicePrincipals/{sp}", summary="One job as a service principal")
def get_service_principal(sp: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    job = _job(request, sp)
    return {
        "@odata.context": f"{base_url(request)}/$metadata#servicePrincipals/$entity",
        **_service_principal(job.name),
    }


# synchronization jobs ---------------------------------------------------------------------------
def _job_body(request: Request, job: Job) -> dict[str, Any]:
    return synchronization_job(job, _operations(request).status(job.name))


@router.get(
    "/servicePrincipals/{sp}/synchronization/jobs", summary="The job of a service principal"
)
def list_jobs(sp: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    job = _job(request, sp)
    return {
        "@odata.context": f"{base_url(request)}/$metadata#servicePrincipals('{sp}')"
        "/synchronization/jobs",
        "value": [_job_body(request, job)],
    }


@router.get(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}",
    summary="synchronizationJob: schedule and status",
)
def get_job(sp: str, job_id: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    job = _job(request, sp, job_id)
    return {
        "@odata.context": f"{base_url(request)}/$metadata#servicePrincipals('{sp}')"
        "/synchronization/jobs/$entity",
        **_job_body(request, job),
    }


@router.post(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}/start",
    status_code=204,
    summary="Resume a paused job and run a cycle now",
)
def start(sp: str, job_id: str, request: Request, who: Principal = Operator) -> Response:
    job = _job(request, sp, job_id)
    _operations(request).start(job.name, who)
    return Response(status_code=204)


@router.post(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}/pause",
    status_code=204,
    summary="Pause the job (all state kept)",
)
def pause(sp: str, job_id: str, request: Request, who: Principal = Operator) -> Response:
    job = _job(request, sp, job_id)
    _operations(request).pause(job.name, who)
    return Response(status_code=204)


class RestartCriteria(BaseModel):
    model_config = ConfigDict(extra="ignore")
    resetScope: str | None = Field(
        default=None,
        description="Comma-separated synchronizationJobRestartScope members: Watermark, "
        "Escrows, QuarantineState, Full, ForceDeletes (None clears nothing). Empty or absent: "
        "QuarantineState, Watermark, Escrows.",
    )


class RestartBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    criteria: RestartCriteria | None = None


@router.post(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}/restart",
    status_code=204,
    summary="Clear state by criteria.resetScope",
)
def restart(
    sp: str,
    job_id: str,
    request: Request,
    body: RestartBody | None = Body(default=None),
    who: Principal = Operator,
) -> Response:
    job = _job(request, sp, job_id)
    text = body.criteria.resetScope if body and body.criteria else None
    try:
        scopes = parse_reset_scope(text)
    except ScopeError as exc:
        raise bad_request(f"{exc}.") from None
    if scopes:
        _operations(request).restart(job.name, scopes, who)
    return Response(status_code=204)


class Subject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    objectId: str
    objectTypeName: str = "User"


class ApplicationParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ruleId: str | None = None
    subjects: list[Subject] = Field(default_factory=list)


class ProvisionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    parameters: list[ApplicationParameters]


@router.post(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}/provisionOnDemand",
    summary="Provision one source user (or group of scope.groups) now; the steps as Graph's "
    "stringKeyStringValuePair",
)
def provision_on_demand(
    sp: str, job_id: str, request: Request, body: ProvisionBody, who: Principal = Operator
) -> JSONResponse:
    job = _job(request, sp, job_id)
    subjects = [s for p in body.parameters for s in p.subjects]
    if len(subjects) != 1:
        raise bad_request(
            f"parameters must name exactly one subject (found {len(subjects)}): "
            "provision one user at a time"
        )
    subject = subjects[0]
    kind = subject.objectTypeName.lower()
    if kind not in ("user", "group"):
        raise bad_request(
            f"subjects[0].objectTypeName '{subject.objectTypeName}' is not supported: "
            "tenant-sync provisions users ('User') and the groups of scope.groups ('Group')"
        )
    if not GUID_RE.match(subject.objectId):
        raise bad_request(
            f"subjects[0].objectId must be the source {kind}'s object id (a GUID), "
            f"not '{subject.objectId}'"
        )
    ops = _operations(request)
    row = ops.provision_logged(job.name, subject.objectId, who, group=kind == "group")
    result = on_demand_result(row, job_systems(ops.config, job.name))
    return JSONResponse(
        {
            "@odata.context": f"{base_url(request)}/$metadata#"
            "microsoft.graph.stringKeyStringValuePair",
            **result,
        }
    )


@router.get(
    "/servicePrincipals/{sp}/synchronization/jobs/{job_id}/schema",
    summary="synchronizationSchema view of the job's scope, filters and mappings",
)
def get_schema(sp: str, job_id: str, request: Request, who: Principal = Reader) -> dict[str, Any]:
    job = _job(request, sp, job_id)
    return {
        "@odata.context": f"{base_url(request)}/$metadata#servicePrincipals('{sp}')"
        f"/synchronization/jobs('{job_id}')/schema/$entity",
        **synchronization_schema(_operations(request).config, job),
    }
