"""Skills over HTTP: list, search, describe, run, create, mutate, solve.

The ``ouro tool`` commands, with their ``--json`` shapes. A client may lower a run's
limits (fuel, deadline, memory) but never raise them above the store's. Create, mutate
and solve ask the workspace's LLM endpoint; without one they answer 503.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from ouroboros.capabilities.skills import (
    MalformedTool,
    SandboxError,
    SkillError,
    ToolCorrupt,
    ToolNotFound,
    ToolPending,
    ToolRejected,
    ToolRolledBack,
)
from ouroboros.interfaces import schemas
from ouroboros.interfaces.http.errors import ApiError, ErrorBody
from ouroboros.interfaces.http.responses import json_response
from ouroboros.interfaces.http.routes.deps import AUTH_RESPONSES, Reader, ServicesDep, Submitter
from ouroboros.interfaces.http.services import Lease

router = APIRouter(tags=["tools"], responses=AUTH_RESPONSES)

ToolName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A tool id")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such tool (or version)"}}
_LLM_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": schemas.SubmitOutcome, "description": "Registered, waiting for approval"},
    422: {"model": ErrorBody, "description": "No attempt passed the tests and gates"},
    502: {"model": ErrorBody, "description": "The LLM endpoint failed"},
    503: {"model": ErrorBody, "description": "No LLM endpoint is configured"},
}


def _summary(store: Any, version: Any, named: bool = False) -> dict[str, Any]:
    from ouroboros.interfaces.cli.tool import describe_status, with_status

    # a version asked for by name may be one a rollback undid: describe says so
    info = (describe_status if named else with_status)(store, version)
    info.pop("path", None)  # the server's file system is not the caller's business
    return info


def _get(lease: Lease, name: str, version: str | None = None) -> Any:
    try:
        return lease.skills().get(name, version)
    except ToolNotFound as e:
        raise ApiError(404, "not_found", str(e), "see GET /api/v1/tools") from None


@router.get("/tools", response_model=list[schemas.ToolSummary],
            summary="Every tool's current version (ouro tool list)")
def list_tools(_: Reader, services: ServicesDep) -> Response:
    with services.lease() as lease:
        store = lease.skills()
        return json_response([_summary(store, v) for v in store.list()])


@router.get("/tools/search", response_model=schemas.SearchResult,
            summary="Find served tools by meaning (ouro tool search)")
def search_tools(_: Reader, services: ServicesDep,
                 q: Annotated[str, Query(min_length=1, max_length=1000,
                                         description="What the tool should do")],
                 k: Annotated[int, Query(ge=1, le=50)] = 5,
                 mode: Annotated[str, Query(
                     pattern="^(full|deep|fast|fused|dense|bm25)$",
                     description="The pipeline, as `ouro tool search --mode`")] = "full",
                 all: Annotated[bool, Query(description="Include unproven tools")] = False,
                 ) -> Response:
    from ouroboros.capabilities.skills.serving import search_served

    with services.lease() as lease:
        store, index = lease.skills(), lease.index()
        # a query of nothing but white space asks for nothing: no results, not an error
        hits = search_served(store, index, q, k=k, mode=mode,
                             include_unproven=all) if q.strip() else []
        return json_response({"query": q, "mode": mode, "model": index.model_id,
                              "semantic_model": index.semantic_model(mode),
                              "results": [h.to_json() for h in hits]})


@router.get("/tools/{name}", response_model=schemas.ToolDescription, responses=_NOT_FOUND,
            summary="A tool's metadata, lineage and visible cases (ouro tool describe)")
def describe_tool(name: ToolName, _: Reader, services: ServicesDep,
                  version: Annotated[str | None, Query(pattern=r"^[0-9a-f]{8,64}$")] = None,
                  ) -> Response:
    with services.lease() as lease:
        store = lease.skills()
        v = _get(lease, name, version)
        info = _summary(store, v, named=True)
        info["lineage"] = [f"{x.tool_id}@{x.fingerprint}" for x in store.lineage(name, version)]
        info["cases"] = [c.to_json() for c in v.cases(include_hidden=False)]
        return json_response(info)


@router.post("/tools/{name}/run", response_model=schemas.RunResult,
             responses={**_NOT_FOUND, 422: {"model": ErrorBody,
                                            "description": "The tool failed or hit a limit"},
                        409: {"model": ErrorBody, "description": "The version asked for was "
                              "rolled back: the ledger no longer has it applied"}},
             summary="Run a tool on one JSON input in the sandbox (ouro tool run)")
def run_tool(name: ToolName, body: schemas.RunRequest, _: Submitter,
             services: ServicesDep) -> Response:
    from ouroboros.interfaces.json_input import check_parsed

    check_parsed(body.input, "the input")  # as the CLI, console and MCP: 400, not a crash
    with services.lease() as lease:
        store = lease.skills()
        base = store.limits
        limits = dataclasses.replace(  # a caller may tighten a limit, never loosen it
            base,
            fuel=min(body.fuel, base.fuel or body.fuel) if body.fuel else base.fuel,
            deadline_s=min(body.deadline, base.deadline_s) if body.deadline else base.deadline_s,
            memory_bytes=min(body.memory_mib << 20, base.memory_bytes) if body.memory_mib
            else base.memory_bytes)
        try:  # no separate lookup first: reading a version folds its call log (a write)
            result = store.run(name, body.input, fingerprint=body.version,
                               limits=limits if limits != base else None)
        except ToolRolledBack as e:  # on disk, but the ledger no longer has it applied
            raise ApiError(409, "rolled_back", str(e), "run the current version (no "
                           "version) or one the ledger still has applied") from None
        except ToolNotFound as e:
            raise ApiError(404, "not_found", str(e), "see GET /api/v1/tools") from None
        except SandboxError as e:
            raise ApiError(422, _snake(type(e).__name__), f"{name} failed: {e}") from None
        except ToolCorrupt as e:
            raise ApiError(500, "tool_corrupt", str(e)) from None
    return json_response({"ok": True, "tool_id": result.tool_id,
                          "fingerprint": result.fingerprint, "output": result.output,
                          "ms": round(result.elapsed_ms, 3), "fuel_used": result.fuel_used})


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


# -- LLM-backed -----------------------------------------------------------------------
def _author(lease: Lease, repairs: int) -> Any:
    from ouroboros.capabilities.skills.authoring import ToolAuthor
    from ouroboros.capabilities.skills.discovery import index_version
    from ouroboros.capabilities.skills.llm import LLMError, LLMNotConfigured, provider_from_config
    from ouroboros.interfaces.cli.tool_authoring import LLM_CONFIG_TARGET

    config = lease.rt.value(LLM_CONFIG_TARGET)
    try:
        provider = provider_from_config(config if isinstance(config, dict) else None)
    except LLMNotConfigured as e:
        raise ApiError(503, "llm_not_configured", "create, mutate and solve need an LLM "
                       "endpoint, and none is configured",
                       f"set OURO_LLM_BASE_URL and OURO_LLM_MODEL for the server (missing: "
                       f"{', '.join(e.missing)})") from None
    except LLMError as e:
        raise ApiError(503, "llm_not_configured", str(e)) from None
    store, index = lease.skills(), lease.index()
    return ToolAuthor(store, provider, max_repairs=repairs,
                      on_accepted=lambda v: index_version(store, index, v))


def _authored(lease: Lease, run: Callable[[], Any]) -> Response:
    from ouroboros.capabilities.skills.authoring import AuthoringFailed
    from ouroboros.capabilities.skills.llm import LLMError
    from ouroboros.capabilities.skills.serving import status

    try:
        done = run()
    except AuthoringFailed as e:
        raise ApiError(422, "authoring_failed", str(e),
                       "nothing was registered; every attempt is in the tool's history") from None
    except ToolPending as e:
        return json_response({"status": "pending", "patch_hash": e.patch_hash,
                              "id": e.patch_hash, "seq": None, "stage": "approval",
                              "reason": str(e)}, 202)
    except LLMError as e:
        raise ApiError(502, "llm_error", str(e)) from None
    except ToolRolledBack as e:  # a child would resurrect a version a rollback undid
        raise ApiError(409, "rolled_back", str(e), "start from a version the ledger still "
                       "has applied") from None
    except (ToolNotFound, ToolRejected, MalformedTool, ValueError) as e:
        raise ApiError(404 if isinstance(e, ToolNotFound) else 422,
                       "not_found" if isinstance(e, ToolNotFound) else "rejected",
                       str(e)) from None
    except SkillError as e:
        raise ApiError(422, "rejected", str(e)) from None
    v = done.version
    return json_response({"id": v.tool_id, "fingerprint": v.fingerprint, "parent": v.parent,
                          "description": v.description, "language": v.language,
                          "attempts": done.attempts, "status": status(lease.skills(), v),
                          "evidence": v.meta.get("evidence")}, 201)


@router.post("/tools", status_code=201, response_model=schemas.AuthoredTool,
             responses=_LLM_RESPONSES,
             summary="Have the LLM write a new tool, judged by independent cases "
                     "(ouro tool create)")
def create_tool(body: schemas.CreateRequest, _: Submitter, services: ServicesDep) -> Response:
    from ouroboros.capabilities.skills.serving import search_served

    with services.lease() as lease:
        author = _author(lease, body.repairs)
        store, index = lease.skills(), lease.index()
        similar = [(h.tool_id, h.text.split(": ", 1)[-1])
                   for h in search_served(store, index, body.description, k=3)] if len(index) else []
        return _authored(lease, lambda: author.create(
            body.description, name=body.name, language=body.language, similar=similar,
            reference=body.reference))


@router.post("/tools/{name}/mutate", status_code=201, response_model=schemas.AuthoredTool,
             responses={**_LLM_RESPONSES, **_NOT_FOUND},
             summary="Have the LLM specialise or fix a tool (ouro tool mutate)")
def mutate_tool(name: ToolName, body: schemas.MutateRequest, _: Submitter,
                services: ServicesDep) -> Response:
    with services.lease() as lease:
        _get(lease, name)
        author = _author(lease, body.repairs)
        return _authored(lease, lambda: author.mutate(name, body.description, name=body.name))


@router.post("/solve", response_model=schemas.SolveResult,
             responses={502: _LLM_RESPONSES[502], 503: _LLM_RESPONSES[503]},
             summary="Retrieve tools, let the model run / mutate / create, answer "
                     "(ouro tool solve)")
def solve(body: schemas.SolveRequest, _: Submitter, services: ServicesDep) -> Response:
    from ouroboros.capabilities.skills.control import SolveLimits, Solver
    from ouroboros.capabilities.skills.llm import LLMError

    with services.lease() as lease:
        author = _author(lease, 2)
        limits = SolveLimits(turns=body.steps, calls=body.max_calls, creates=body.max_creates,
                             mutates=body.max_mutates, tokens=body.max_tokens,
                             seconds=body.timeout)
        solver = Solver(lease.skills(), lease.index(), author.provider, author, limits=limits)
        try:
            result = solver.solve(body.task, body.input)
        except LLMError as e:
            raise ApiError(502, "llm_error", str(e), "nothing half-done was registered") from None
    return json_response(result.to_json())
