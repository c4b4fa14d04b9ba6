"""The improvement loop over HTTP: proposals and telemetry findings.

``ouro proposals list|show|approve|reject`` and ``ouro telemetry eval``, with their
``--json`` shapes. An approval through the API is recorded with the token's name as the
reviewer and signed in the kernel with the token's key; the kernel's gates decide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from ouroboros.interfaces import schemas
from ouroboros.interfaces.http.errors import ApiError, ErrorBody
from ouroboros.interfaces.http.responses import json_response
from ouroboros.interfaces.http.routes.deps import AUTH_RESPONSES, Approver, Reader, ServicesDep
from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Principal

router = APIRouter(tags=["improve"], responses=AUTH_RESPONSES)

ProposalId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$",
                                 description="A proposal id or a unique prefix")]
STATUSES = "pending|approved|implemented|rejected|blocked|failed|reverted|revert_failed"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such proposal"},
    409: {"model": ErrorBody, "description": "The proposal cannot make that transition now"},
}


@contextlib.contextmanager
def _loop(services: Services, who: Principal | None = None) -> Iterator[Any]:
    """The loop under the server's decision lock; its errors as 404 / 409. An approver's
    kernel decisions are signed with the token's key."""
    from ouroboros.capabilities.improve.proposals.loop import NotApproved, Paused
    from ouroboros.capabilities.improve.proposals.proposal import ProposalError
    from ouroboros.capabilities.improve.proposals.repo import GitError

    with services.decisions, services.lease() as lease:
        loop = lease.loop()
        before = loop.governance.approver_key
        if who is not None and who.key:
            loop.governance.approver_key = who.key
        try:
            yield loop
        except (NotApproved, Paused) as e:
            raise ApiError(409, "conflict", str(e)) from None
        except ProposalError as e:
            missing = "no proposal" in str(e)
            raise ApiError(404 if missing else 409, "not_found" if missing else "conflict",
                           str(e)) from None
        except GitError as e:
            raise ApiError(503, "unavailable", str(e)) from None
        finally:
            loop.governance.approver_key = before


def _outcome(outcome: Any) -> Response:
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    return json_response({**to_dict(outcome.proposal), "message": outcome.message})


@router.get("/proposals", response_model=list[schemas.Proposal],
            summary="Proposals (pending ones unless ?status= or ?all=true) (ouro proposals list)")
def list_proposals(_: Reader, services: ServicesDep,
                   status: Annotated[str, Query(pattern=f"^({STATUSES})$")] = "pending",
                   all: bool = False) -> Response:
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    with _loop(services) as loop:
        items = loop.proposals(None if all else status)
        return json_response([{k: v for k, v in to_dict(p).items() if k != "diff"}
                              for p in items])


@router.get("/proposals/{ident}", response_model=schemas.Proposal, responses=_RESPONSES,
            summary="One proposal with its diff, review and log (ouro proposals show)")
def show_proposal(ident: ProposalId, _: Reader, services: ServicesDep) -> Response:
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    with _loop(services) as loop:
        return json_response(to_dict(loop.get(ident)))


@router.post("/proposals/{ident}/approve", response_model=schemas.ProposalOutcome,
             responses=_RESPONSES,
             summary="Approve a proposal: the kernel re-runs its gates, then it merges "
                     "(ouro proposals approve)")
def approve_proposal(ident: ProposalId, body: schemas.ApproveProposalRequest,
                     who: Approver, services: ServicesDep) -> Response:
    if not who.key:
        raise ApiError(403, "forbidden", f"token {who.name!r} has no approver key")
    with _loop(services, who) as loop:
        return _outcome(loop.approve(ident, reviewer=who.name, notes=body.notes))


@router.post("/proposals/{ident}/reject", response_model=schemas.ProposalOutcome,
             responses=_RESPONSES,
             summary="Reject a proposal with a reason; its branch is deleted "
                     "(ouro proposals reject)")
def reject_proposal(ident: ProposalId, body: schemas.RejectProposalRequest,
                    who: Approver, services: ServicesDep) -> Response:
    if not who.key:
        raise ApiError(403, "forbidden", f"token {who.name!r} has no approver key")
    with _loop(services, who) as loop:
        return _outcome(loop.reject(ident, body.reason, reviewer=who.name))


@router.get("/telemetry/findings", response_model=schemas.Findings, tags=["telemetry"],
            summary="The stability analysis over stored telemetry (ouro telemetry eval)")
def findings(_: Reader, services: ServicesDep,
             window_hours: Annotated[float, Query(ge=1.0, le=24 * 90)] = 24.0,
             now: Annotated[datetime | None, Query(description="ISO 8601, in the years 1971 "
                                                                "to 9000; default now")]
             = None) -> Response:
    from ouroboros.capabilities.improve.analysis import Thresholds
    from ouroboros.capabilities.improve.analysis.workspace import findings as analyse
    from ouroboros.interfaces.cli.telemetry import finding_dict

    moment = (now if now.tzinfo else now.replace(tzinfo=UTC)) if now else datetime.now(UTC)
    if not 1971 <= moment.year <= 9000:  # as `ouro telemetry eval --now`: the window
        # before 0001-01-01 (or after 9999) does not exist
        raise ApiError(422, "invalid_request",
                       f"now {moment.isoformat()} is outside the years 1971 to 9000")
    trusted = frozenset({"local", *services.settings().telemetry.trusted_sources})
    found = analyse(services.telemetry(), moment,
                    Thresholds(window_hours=window_hours, trusted_sources=trusted))
    return json_response({"now": moment.isoformat(), "findings": [finding_dict(f) for f in found]})
