"""The one error shape of the service layer: ``{"error": {"code", "message"[, "hint"]}}``.

Every failure leaves through here: the kernel's typed errors (mapped by kind to a status),
request validation, unknown routes and methods, oversized or malformed bodies, and any
unexpected exception (a 500 whose message says nothing about the inside; the traceback
goes to the server's log only). Bad input is always a 4xx.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ouroboros.capabilities.skills.errors import ToolCorrupt
from ouroboros.kernel.errors import (
    IntegrityError,
    InvalidPatch,
    NotFound,
    OuroError,
    PatchRejected,
    UsageError,
)
from ouroboros.storage.ledger import LedgerUnavailable

log = logging.getLogger("ouroboros.http")


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    """Every error response's body."""

    error: ErrorDetail


class ApiError(Exception):
    """An error with its HTTP status, raised by routes and dependencies."""

    def __init__(self, status: int, code: str, message: str, hint: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.headers = headers


def error_json(code: str, message: str, hint: str = "") -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if hint:
        detail["hint"] = hint
    return {"error": detail}


def error_response(status: int, code: str, message: str, hint: str = "",
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_json(code, message, hint), status_code=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
                 413: "payload_too_large", 415: "unsupported_media_type",
                 422: "invalid_request", 429: "too_many_requests",
                 503: "unavailable"}


def status_of(e: OuroError) -> tuple[int, str]:
    """The HTTP status and error code for a kernel (or capability) error."""
    if isinstance(e, NotFound):
        return 404, "not_found"
    if isinstance(e, InvalidPatch):
        return 400, "invalid_patch"
    if isinstance(e, UsageError):
        return 400, "bad_request"
    if isinstance(e, PatchRejected):
        return 422, "rejected"
    if isinstance(e, IntegrityError):
        return 500, "integrity_error"
    return 503, "unavailable"  # the server could not do it now (e.g. the ledger is busy)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if any(err.get("type") == "json_invalid" for err in errors):
        return "invalid_json", "the request body is not valid JSON"
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid_request", "; ".join(parts) + more


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.hint, exc.headers)

    @app.exception_handler(OuroError)
    async def _ouro(_: Request, exc: OuroError) -> JSONResponse:
        status, code = status_of(exc)
        return error_response(status, code, exc.message, exc.hint)

    @app.exception_handler(ToolCorrupt)
    async def _corrupt(_: Request, exc: ToolCorrupt) -> JSONResponse:
        # a version's files or meta.json edited on disk after registration: not a bug
        return error_response(500, "tool_corrupt", str(exc), "delete that version "
                              "directory: the workspace reinstalls it from its blobs")

    @app.exception_handler(LedgerUnavailable)
    async def _ledger(_: Request, exc: LedgerUnavailable) -> JSONResponse:
        # The PostgreSQL ledger: down, its session lost (the next request opens another),
        # refused, or missing/damaged in the database. Not a bug of this server.
        status, code = {"usage": (400, "bad_request"),
                        "integrity": (500, "integrity_error")}.get(exc.kind,
                                                                   (503, "unavailable"))
        return error_response(status, code, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = _validation_message(exc)
        return error_response(400 if code == "invalid_json" else 422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error",
                              "the server failed to handle this request",
                              "the server's log has the details")
