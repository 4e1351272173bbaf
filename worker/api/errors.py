"""Errors of the operator service, in Graph's OData shape.

Every refusal of the API is `{"error": {"code", "message", "innerError": {date, request-id}}}`
with the HTTP status a Graph client expects, so SDKs raise their usual exception types.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refusal with its HTTP status and OData error code."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        "InvalidAuthenticationToken",
        message,
        {"WWW-Authenticate": 'Bearer realm="tenant-sync"'},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Authorization_RequestDenied", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "Request_ResourceNotFound", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def odata_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
            },
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    405: "Request_BadRequest",
    409: "Conflict",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return odata_error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "UnknownError")
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"Resource not found for the segment '{request.url.path}'."
        return odata_error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
        return odata_error(400, "BadRequest", "Invalid request: " + "; ".join(problems))
