"""The OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs``.

Any OpenTelemetry exporter can point here (``OTEL_EXPORTER_OTLP_ENDPOINT=http://host:8750``
with ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``, a submit token).
Bodies are ``application/x-protobuf`` or ``application/json``, optionally gzip; the
answer is the ``Export*ServiceResponse`` in the request's encoding, with
``partial_success`` when records were rejected. Decoding, recognition of tool calls,
sanitizing and dedup are the improve capability's (`capabilities/improve/intake/receiver.py`).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ouroboros.interfaces.http.errors import ApiError, ErrorBody
from ouroboros.interfaces.http.routes.deps import AUTH_RESPONSES, ServicesDep, Submitter
from ouroboros.interfaces.http.services import Services

router = APIRouter(tags=["otlp"], responses={
    **AUTH_RESPONSES, 415: {"model": ErrorBody, "description": "Not protobuf or JSON"}})

_BODY = {"requestBody": {"required": True, "content": {
    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object"}}}}}
_ANSWER: dict[int | str, dict[str, Any]] = {200: {"description": "Export*ServiceResponse",
    "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}}}}}


def _encoding(request: Request) -> Literal["protobuf", "json"]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return "protobuf"
    if media == "application/json":
        return "json"
    raise ApiError(415, "unsupported_media_type",
                   f"OTLP bodies are application/x-protobuf or application/json, not "
                   f"{media or 'untyped'}")


def inflate(body: bytes, cap: int) -> bytes:
    """Gunzip with a cap on the inflated size (a small bomb cannot fill memory)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, cap + 1)
    except zlib.error as e:
        raise ApiError(400, "bad_request", f"the gzip body is corrupt: {e}") from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise ApiError(413, "payload_too_large", f"the inflated body is over {cap} bytes")
    if not inflater.eof:
        raise ApiError(400, "bad_request", "the gzip body is truncated")
    return out


async def _receive(request: Request, services: Services, signal: Literal["traces", "logs"],
                   source: str) -> Response:
    from ouroboros.capabilities.improve.intake.receiver import (
        OTLPDecodeError,
        decode,
        receive,
        response,
    )
    from ouroboros.interfaces.http.limits import json_too_deep

    encoding = _encoding(request)
    limits = request.app.state.settings.limits
    body = await request.body()
    if request.headers.get("content-encoding", "").strip().lower() == "gzip":
        body = inflate(body, limits.max_otlp_bytes)
        if encoding == "json" and json_too_deep(body, limits.max_json_depth):
            raise ApiError(400, "too_deep", "the JSON body nests too deep")
    seen = request.app.state.otlp_seen

    def work() -> tuple[bytes, int]:
        try:
            document = decode(body, signal, encoding)
        except OTLPDecodeError as e:
            raise ApiError(400, "bad_request", str(e)) from None
        if not isinstance(document, dict):
            raise ApiError(400, "bad_request", f"an OTLP {signal} request is a JSON object")
        report = receive(document, signal, services.telemetry(), seen, source)
        return response(signal, encoding, report.rejected, report.message()), report.stored

    answer, _ = await run_in_threadpool(work)
    media = "application/x-protobuf" if encoding == "protobuf" else "application/json"
    return Response(answer, media_type=media)


@router.post("/v1/traces", openapi_extra=_BODY, responses=_ANSWER,
             summary="OTLP/HTTP traces: tool calls become sanitized telemetry events")
async def traces(request: Request, caller: Submitter, services: ServicesDep) -> Response:
    return await _receive(request, services, "traces", caller.name)


@router.post("/v1/logs", openapi_extra=_BODY, responses=_ANSWER,
             summary="OTLP/HTTP logs: records with ouro.event_type become events")
async def logs(request: Request, caller: Submitter, services: ServicesDep) -> Response:
    return await _receive(request, services, "logs", caller.name)


def mount(app: FastAPI, services: Services) -> contextlib.AbstractAsyncContextManager[None]:
    from ouroboros.capabilities.improve.intake.receiver import seen_keys

    app.include_router(router)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        app.state.otlp_seen = seen_keys(services.home)
        try:
            yield
        finally:
            app.state.otlp_seen.close()

    return lifespan()
