"""The kernel over HTTP: state, patches, approvals, the log, verification, proofs.

Each route is the matching ``ouro`` command: ``state``, ``patch submit``, ``pending``,
``approve``, ``reject``, ``log``, ``verify``, ``proof checkpoint|inclusion|consistency``; the shapes are the CLI's ``--json`` shapes
(`ouroboros.interfaces.schemas`). Answers are serialised inside the lease, from the
runtime's own state, and sent as prepared bytes (no second validation pass).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from ouroboros.interfaces import schemas
from ouroboros.interfaces.http.auth import authenticate, authorize
from ouroboros.interfaces.http.errors import ApiError, ErrorBody
from ouroboros.interfaces.http.responses import json_response
from ouroboros.interfaces.http.routes.deps import (
    AUTH_RESPONSES,
    Approver,
    Reader,
    ServicesDep,
    Submitter,
)
from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Role
from ouroboros.interfaces.ledger_json import checkpoint_json, consistency_json, inclusion_json
from ouroboros.kernel import IntegrityError, NotFound, SubmitOutcome, UsageError
from ouroboros.kernel.state import patch_from_envelope
from ouroboros.storage.files import lock_timeout
from ouroboros.storage.ledger import LedgerUnavailable
from ouroboros.storage.sqlite import LedgerBusy, no_wait

router = APIRouter(tags=["kernel"], responses=AUTH_RESPONSES)

_TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,199}$")
PatchId = Annotated[str, Path(pattern=r"^(sha256:)?[0-9a-f]{4,64}$",
                              description="A pending patch's hash or a unique prefix of it")]
_STATUS = {"applied": 201, "pending": 202, "rejected": 422}
Target = Annotated[str, Path(pattern=_TARGET.pattern, description="A target, e.g. "
                             "agents/support/prompt")]


def outcome_json(outcome: SubmitOutcome) -> dict[str, Any]:
    data = outcome.to_dict()
    data["id"] = outcome.patch_hash
    return data


# -- state ----------------------------------------------------------------------------
@router.get("/state", response_model=schemas.StateSummary,
            responses={404: {"model": ErrorBody, "description": "No such seq"}},
            summary="Every target's value, the pending patches and the breakers (ouro state)")
def state(_: Reader, services: ServicesDep,
          at: Annotated[int | None, Query(ge=0, description="A past seq")] = None) -> Response:
    with services.lease() as lease:
        st = lease.rt.state_at(at)
        breakers = lease.rt.breakers() if at is None else {}  # as `ouro state --json`
        return json_response({"seq": st.seq, "state_hash": st.state_hash(),
                              "targets": dict(sorted(st.values.items())),
                              "pending": sorted(st.pending), "breakers": breakers})


@router.get("/state/{target:path}", response_model=schemas.TargetValue,
            responses={404: {"model": ErrorBody, "description": "No such target"}},
            summary="One target's value and content hash (ouro state TARGET)")
def state_target(target: Target, _: Reader, services: ServicesDep,
                 at: Annotated[int | None, Query(ge=0)] = None) -> Response:
    if ".." in target:  # no target holds '..' (the kernel refuses such patches)
        raise NotFound(f"no target {target!r}", "targets never contain '..'")
    with services.lease() as lease:
        st = lease.rt.refresh() if at is None else lease.rt.state_at(at)
        if target not in st.values:
            raise NotFound(f"no target {target!r} at seq {st.seq}", "list targets with GET /state")
        return json_response({"target": target, "value": st.values[target],
                              "hash": st.target_hash(target)})


# -- patches --------------------------------------------------------------------------
@router.post(
    "/patches", status_code=201,
    summary="Submit a signed patch (a DSSE envelope): 201 applied, 202 pending, 422 rejected",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}},
    responses={201: {"model": schemas.SubmitOutcome, "description": "Applied"},
               202: {"model": schemas.SubmitOutcome, "description": "Pending approval"},
               422: {"model": schemas.SubmitOutcome,
                     "description": "Rejected by a gate (the rejection is in the ledger)"}})
async def submit_patch(request: Request, who: Submitter, services: ServicesDep) -> Response:
    return await submit_envelope(request, services)


async def submit_fast(request: Request) -> Response:
    """``POST /patches`` as a bare Starlette endpoint, routed before the documented FastAPI
    route above: the hottest write path skips dependency solving (same checks, same
    answers; the FastAPI route is what /openapi.json describes)."""
    services: Services = request.app.state.services
    authorize(authenticate(services.tokens, request.headers.get("authorization"),
                           services.limiter), Role.submit)
    return await submit_envelope(request, services)


async def submit_envelope(request: Request, services: Services) -> Response:
    body = await request.body()  # raw: the kernel parses the envelope strictly itself
    if not body:
        raise ApiError(400, "invalid_patch", "the body must be a DSSE envelope",
                       "make one with `ouro patch new` and `ouro patch sign`")
    # Decided here, on the event loop: a submit is a fraction of a millisecond of CPU, and
    # handing it to a thread cost more than the submit (GIL hand-overs around every C call
    # in Ed25519, Rego and SQLite). The loop never waits for a lock: when another process
    # holds the ledger's writers' lock (or another submit waits for it), the append stops
    # before writing anything and the whole submit is redone in a thread, which waits at
    # most OURO_LOCK_TIMEOUT for the lock. A PostgreSQL ledger's submit waits on the
    # network (a frozen server: the URL's timeout), so it always runs in the thread.
    if services.ledger_timeout is not None:
        outcome = await _submit_in_thread(services, body)
    else:
        try:
            with no_wait(), services.lease(writer=True, wait=False) as lease:
                outcome = lease.rt.submit(body)
        except LedgerBusy:
            outcome = await _submit_in_thread(services, body)
    return json_response(outcome_json(outcome), _STATUS[outcome.status])


async def _submit_in_thread(services: Services, body: bytes) -> SubmitOutcome:
    """A submit that must wait for the writers' lock, in a thread: one at a time (they
    would queue on the writer runtime), each queued one for at most the lock's bound (or
    a PostgreSQL ledger's timeout: the one ahead may be waiting that long on the server,
    and the N-th must not fail only after N of them)."""
    bound = lock_timeout()
    if services.ledger_timeout is not None:
        bound = min(bound, services.ledger_timeout)
    if services.submit_gate is None:
        services.submit_gate = anyio.CapacityLimiter(1)
    gate: anyio.CapacityLimiter = services.submit_gate
    with anyio.move_on_after(bound) as waited:
        await gate.acquire()
    if waited.cancelled_caught:
        if services.ledger_timeout is not None:
            raise LedgerUnavailable(
                f"the PostgreSQL ledger did not answer the submit ahead of this one within "
                f"{bound:g} s", "is the server stopped, overloaded, or another session "
                "holding the ledger's locks? the URL's timeout=SECONDS sets this bound")
        raise LedgerUnavailable(
            f"the ledger's writers' lock stayed held: this submit waited {bound:g} s behind "
            "another one", "is a process holding it stopped (Ctrl-Z, kill -STOP) or stuck? "
            "OURO_LOCK_TIMEOUT=SECONDS sets how long to wait")
    try:
        return await anyio.to_thread.run_sync(_submit_waiting, services, body)
    finally:
        gate.release()


def _submit_waiting(services: Services, body: bytes) -> SubmitOutcome:
    with services.lease(writer=True) as lease:
        return lease.rt.submit(body)


@router.get("/pending", response_model=list[schemas.PendingPatch],
            summary="Patches waiting for approval (ouro pending)")
def pending(_: Reader, services: ServicesDep) -> Response:
    with services.lease() as lease:
        items = [{"patch_hash": h, "needs": p["needs"], "author": p["author"],
                  "target": patch_from_envelope(p["envelope"])["target"], "seq": p["seq"]}
                 for h, p in lease.rt.pending().items()]
    return json_response(items)


def _approver_key(who: Any) -> str:
    if not who.key:
        raise ApiError(403, "forbidden", f"token {who.name!r} has no approver key",
                       "issue it with `ouro token new NAME --role approve --key KEYNAME`")
    return str(who.key)


_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.SubmitOutcome, "description": "Decided (applied or rejected)"},
    202: {"model": schemas.SubmitOutcome, "description": "Approval recorded, more needed"},
    404: {"model": ErrorBody, "description": "No pending patch matches"},
    422: {"model": schemas.SubmitOutcome, "description": "The gates rejected it on approval"},
}


@router.post("/pending/{ident}/approve", responses=_DECISION_RESPONSES,
             summary="Approve a pending patch, signed with the token's key (ouro approve)")
def approve(ident: PatchId, who: Approver, services: ServicesDep) -> Response:
    key = _approver_key(who)
    with services.decisions, services.lease() as lease:
        try:
            outcome = lease.rt.approve(ident, key=key)
        except NotFound:
            raise
        except UsageError as e:  # the kernel refused this key as an approver
            raise ApiError(403, "approval_refused", e.message, e.hint) from None
    status = {"applied": 200, "pending": 202, "rejected": 422}[outcome.status]
    return json_response(outcome_json(outcome), status)


@router.post("/pending/{ident}/reject", responses=_DECISION_RESPONSES,
             summary="Reject a pending patch with a reason (ouro reject)")
def reject(ident: PatchId, body: schemas.RejectRequest, who: Approver,
           services: ServicesDep) -> Response:
    key = _approver_key(who)
    with services.decisions, services.lease() as lease:
        try:
            outcome = lease.rt.reject(ident, body.reason, key=key)
        except NotFound:
            raise
        except UsageError as e:
            raise ApiError(403, "approval_refused", e.message, e.hint) from None
    return json_response(outcome_json(outcome))


# -- log and verification -------------------------------------------------------------
@router.get("/log", response_model=list[schemas.LedgerEvent],
            summary="Ledger events from a seq, optionally of one kind (ouro log)")
def log(_: Reader, services: ServicesDep,
        since: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        kind: Annotated[str | None, Query(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")] = None,
        ) -> Response:
    with services.lease() as lease:
        events = lease.rt.log(kind=kind, since=since, limit=limit)
    return json_response([e.to_dict() for e in events])


@router.get("/verify", response_model=schemas.VerifyResult,
            summary="Check every link, signature and checkpoint (ouro verify)")
def verify(_: Reader, services: ServicesDep) -> Response:
    with services.lease() as lease:
        try:
            report = lease.rt.verify()
        except IntegrityError as e:
            return json_response({"ok": False, "seq": e.seq, "message": e.message})
    return json_response({"ok": True, "events": report.events,
                          "checkpoints": report.checkpoints, "head": report.head})


# -- checkpoints and proofs -----------------------------------------------------------
# What `ouro proof … --json` prints (`ouroboros.interfaces.ledger_json`), so a third party
# checks what it fetched here with `ouro proof check` and the log's verifier key alone.
_TEXT = "text/plain; charset=utf-8"


def _wants_text(request: Request) -> bool:
    """``Accept: text/plain`` (and not JSON) asks for the signed note itself."""
    accept = request.headers.get("accept", "").lower()
    return "text/plain" in accept and "application/json" not in accept


@router.get("/checkpoint", response_model=schemas.CheckpointJson,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "The signed checkpoint: JSON, or with "
                             "`Accept: text/plain` the C2SP signed note verbatim"}},
            summary="The latest signed checkpoint (ouro proof checkpoint)")
def checkpoint(request: Request, _: Reader, services: ServicesDep) -> Response:
    with services.lease() as lease:
        note = lease.rt.checkpoint_note()
        verifier = lease.rt.verifier
    if _wants_text(request):
        return Response(note, media_type=_TEXT)
    return json_response(checkpoint_json(note, verifier))


@router.get("/proofs/inclusion/{seq}", response_model=schemas.InclusionProofJson,
            responses={404: {"model": ErrorBody,
                             "description": "No such event under the latest checkpoint"}},
            summary="A C2SP tlog-proof that event SEQ is in the log (ouro proof inclusion)")
def inclusion(_: Reader, services: ServicesDep,
              seq: Annotated[int, Path(ge=0, le=2**62, description="The event's seq")],
              ) -> Response:
    with services.lease() as lease:
        proof = lease.rt.inclusion_proof(seq)
        verifier = lease.rt.verifier
    return json_response(inclusion_json(proof, verifier))


@router.get("/proofs/consistency", response_model=schemas.ConsistencyProofJson,
            responses={400: {"model": ErrorBody, "description": "old is larger than new"},
                       404: {"model": ErrorBody,
                             "description": "A size past the latest checkpoint"}},
            summary="A proof that the log at size NEW extends it at size OLD "
                    "(ouro proof consistency)")
def consistency(_: Reader, services: ServicesDep,
                old: Annotated[int, Query(ge=1, le=2**62, description="The older tree size")],
                new: Annotated[int | None, Query(ge=1, le=2**62, description="The newer "
                               "tree size (default: the latest checkpoint's)")] = None,
                ) -> Response:
    if new is not None and old > new:
        raise UsageError(f"old ({old}) is larger than new ({new})",
                         "a consistency proof goes from a smaller tree to a larger one")
    with services.lease() as lease:
        latest = lease.rt.checkpoint().size
        if max(old, new or 0) > latest:  # as an event past it: not (yet) there
            raise NotFound(f"no signed checkpoint of size {max(old, new or 0)}: the latest "
                           f"has size {latest}", "GET /api/v1/checkpoint gives the latest")
        proof = lease.rt.consistency_proof(old, new)
        verifier = lease.rt.verifier
    return json_response(consistency_json(proof, verifier))
