"""The console's actions: approve or reject a patch or a proposal, run a tool.

Every action is a POST checked by `auth.form_action` (session, origin, CSRF token, role)
before anything runs, and calls the capability function the CLI and the API call:
`Runtime.approve` / `reject` signed with the key bound to the viewer's token, the
improvement loop's `approve` / `reject` with that key as its approver, the skill store's
`run`. Decisions run under the server's decision lock, like the API's.

An action answers an htmx request with a fragment that replaces the form's card, and a
plain form post with a redirect back (the outcome shown once on the next page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ouroboros.interfaces.http.console.auth import (
    PageError,
    Viewer,
    field,
    form_action,
    redirect,
    services_of,
)
from ouroboros.interfaces.http.console.pages import ToolName, page, tool_info
from ouroboros.interfaces.http.console.rendering import render
from ouroboros.interfaces.http.console.routing import ConsoleRoute
from ouroboros.interfaces.http.services import Services
from ouroboros.interfaces.http.tokens import Role
from ouroboros.kernel import NotFound, SubmitOutcome, UsageError

router = APIRouter(route_class=ConsoleRoute)

PatchId = Annotated[str, Path(pattern=r"^(sha256:)?[0-9a-f]{4,64}$")]
ProposalId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")]
MAX_REASON = 2000
MAX_INPUT = 256 * 1024  # characters of a tool's JSON input typed into the run form


def _key(who: Viewer) -> str:
    if not who.principal.key:
        raise PageError(403, "No approver key", f"token {who.principal.name!r} has no "
                        "approver key", "issue it with `ouro token new NAME --role approve "
                        "--key KEYNAME`")
    return who.principal.key


def _done(request: Request, who: Viewer, back: str, tone: str, text: str,
          **fragment: Any) -> Response:
    """The outcome: a fragment for htmx, else a message for the next page and a redirect."""
    if request.headers.get("hx-request"):
        return render("_outcome.html", {"tone": tone, "text": text, **fragment})
    who.session.say(tone, text)
    return redirect(back)


def _outcome_words(outcome: SubmitOutcome) -> tuple[str, str]:
    if outcome.status == "applied":
        return "good", f"applied at seq {outcome.seq}"
    if outcome.status == "pending":
        return "wait", f"approval recorded; it still needs {outcome.reason or 'more approvals'}"
    return "bad", f"rejected at the {outcome.stage} gate: {outcome.reason}"


def _decide(services: Services, decide: Callable[[Any], SubmitOutcome]) -> SubmitOutcome:
    with services.decisions, services.lease() as lease:
        return decide(lease.rt)


async def _kernel_decision(request: Request,
                           decide: Callable[[Any], SubmitOutcome]) -> SubmitOutcome:
    try:
        return await run_in_threadpool(_decide, services_of(request), decide)
    except NotFound:
        raise PageError(409, "Already decided", "this patch is no longer pending (someone "
                        "decided it, or it was never there)", "see the ledger") from None
    except UsageError as e:  # the kernel refused this key as an approver
        raise PageError(403, "Approval refused", e.message, e.hint) from None


# -- pending patches ----------------------------------------------------------------------
@router.post("/pending/{ident}/approve")
async def approve_patch(request: Request, ident: PatchId) -> Response:
    who, _ = await form_action(request, Role.approve)
    key = _key(who)
    outcome = await _kernel_decision(request, lambda rt: rt.approve(ident, key=key))
    tone, text = _outcome_words(outcome)
    return _done(request, who, "/pending", tone,
                 f"patch {outcome.patch_hash[7:19]}: {text}", seq=outcome.seq)


@router.post("/pending/{ident}/reject")
async def reject_patch(request: Request, ident: PatchId) -> Response:
    who, form = await form_action(request, Role.approve)
    reason = field(form, "reason", MAX_REASON).strip()
    if not reason:
        raise PageError(400, "A reason is needed", "a rejection needs a reason (it is kept "
                        "in the ledger)")
    key = _key(who)
    outcome = await _kernel_decision(request, lambda rt: rt.reject(ident, reason, key=key))
    return _done(request, who, "/pending", "bad",
                 f"patch {outcome.patch_hash[7:19]} rejected at seq {outcome.seq}",
                 seq=outcome.seq)


# -- proposals ----------------------------------------------------------------------------
@contextmanager
def _loop(services: Services, key: str) -> Iterator[Any]:
    """The improvement loop under the decision lock, deciding with ``key``; its errors as
    error pages."""
    from ouroboros.capabilities.improve.proposals.loop import NotApproved, Paused
    from ouroboros.capabilities.improve.proposals.proposal import ProposalError
    from ouroboros.capabilities.improve.proposals.repo import GitError

    with services.decisions, services.lease() as lease:
        loop = lease.loop()
        before = loop.governance.approver_key
        loop.governance.approver_key = key
        try:
            yield loop
        except (NotApproved, Paused) as e:
            raise PageError(409, "Not now", str(e)) from None
        except ProposalError as e:
            missing = "no proposal" in str(e)
            raise PageError(404 if missing else 409, "No such proposal" if missing
                            else "Not possible now", str(e)) from None
        except GitError as e:
            raise PageError(503, "Repository error", str(e)) from None
        finally:
            loop.governance.approver_key = before


def _proposal_result(outcome: Any) -> tuple[str, str]:
    p = outcome.proposal
    tone = {"implemented": "good", "approved": "wait", "rejected": "bad"}.get(p.status, "bad")
    return tone, f"proposal {p.id} is {p.status}: {outcome.message}"


@router.post("/proposals/{ident}/approve")
async def approve_proposal(request: Request, ident: ProposalId) -> Response:
    who, form = await form_action(request, Role.approve)
    notes = field(form, "notes", MAX_REASON).strip()
    key = _key(who)

    def approve() -> Any:
        with _loop(services_of(request), key) as loop:
            return loop.approve(ident, reviewer=who.principal.name, notes=notes)

    tone, text = _proposal_result(await run_in_threadpool(approve))
    return _done(request, who, f"/proposals/{ident}", tone, text)


@router.post("/proposals/{ident}/reject")
async def reject_proposal(request: Request, ident: ProposalId) -> Response:
    who, form = await form_action(request, Role.approve)
    reason = field(form, "reason", MAX_REASON).strip()
    if not reason:
        raise PageError(400, "A reason is needed", "a rejection needs a reason")
    key = _key(who)

    def reject() -> Any:
        with _loop(services_of(request), key) as loop:
            return loop.reject(ident, reason, reviewer=who.principal.name)

    tone, text = _proposal_result(await run_in_threadpool(reject))
    return _done(request, who, f"/proposals/{ident}", tone, text)


# -- tools --------------------------------------------------------------------------------
def _run(services: Services, name: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the tool's description, the run's result or failure) — `ouro tool run`'s call on
    the JSON typed into the form (parsed by the CLI's strict parser)."""
    from ouroboros.capabilities.skills import SandboxError, ToolCorrupt, ToolNotFound
    from ouroboros.interfaces.json_input import loads_strict

    with services.lease() as lease:
        info = tool_info(lease, name)
        try:
            value = loads_strict(text, "the input")
        except UsageError as e:
            return info, {"ok": False, "kind": "bad input", "message": e.message}
        try:
            result = lease.skills().run(name, value)
        except ToolNotFound as e:
            raise PageError(404, "No such tool", str(e)) from None
        except SandboxError as e:
            return info, {"ok": False, "kind": type(e).__name__, "message": str(e)}
        except ToolCorrupt as e:
            raise PageError(500, "Tool corrupt", str(e)) from None
    return info, {"ok": True, "output": result.output, "ms": result.elapsed_ms,
                  "fuel_used": result.fuel_used, "fingerprint": result.fingerprint}


@router.post("/tools/{name}/run")
async def run_tool(request: Request, name: ToolName) -> Response:
    who, form = await form_action(request, Role.submit)
    text = field(form, "input", MAX_INPUT)
    info, run = await run_in_threadpool(_run, services_of(request), name, text)
    if request.headers.get("hx-request"):
        return render("_run_result.html", {"run": run})
    return page(request, who, "tool.html", "tools", t=info, run=run, input_text=text)
