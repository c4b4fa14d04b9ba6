"""The console's pages (GET only; nothing here changes anything).

Each page reads through the same capability functions the CLI and the API call, on a
leased runtime: `Runtime.log`, `verify`, `pending`; the skill store's `list`, `get`,
`lineage`; the improvement loop's `proposals` and `get`; the telemetry analysis; and
`flux.history` over the ledger. `views` shapes the results for the templates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from ouroboros.capabilities.improve.proposals.repo import GitError
from ouroboros.interfaces.http.console import views
from ouroboros.interfaces.http.console.auth import PageError, Viewer, services_of, viewer
from ouroboros.interfaces.http.console.rendering import render
from ouroboros.interfaces.http.console.routing import ConsoleRoute
from ouroboros.kernel import IntegrityError

router = APIRouter(route_class=ConsoleRoute)

PAGE = 50  # events per timeline page
STATUSES = ("pending", "approved", "implemented", "rejected", "blocked", "failed", "reverted",
            "revert_failed")
ToolName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ProposalId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$")]


def page(request: Request, who: Viewer, name: str, nav: str, **context: Any) -> Response:
    return render(name, {**who.context(), "nav": nav, **context})


# -- the ledger ---------------------------------------------------------------------------
@router.get("/")
def timeline(request: Request,
             kind: Annotated[str | None, Query(pattern=r"^[A-Z][A-Za-z0-9]{0,63}$")] = None,
             before: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> Response:
    who = viewer(request)
    services = services_of(request)
    with services.lease() as lease:
        rt = lease.rt
        st = rt.refresh()
        names = views.key_names(st.values)
        head = st.seq
        end = head + 1 if before is None else min(before, head + 1)
        if kind is None:
            start = max(0, end - PAGE)
            events = rt.log(since=start, limit=end - start) if end > start else []
        else:  # a kind filter reads back until a page is full
            events = [e for e in rt.log(kind=kind) if e.seq < end][-PAGE:]
        rows = [views.event_row(e, names) for e in reversed(events)]
        pending = len(st.pending)
        try:
            proposals = len(lease.loop().proposals("pending"))
        except (OSError, ValueError, GitError):  # the ledger page shows even so
            proposals = None
        tools = len(lease.skills().list())
    filters = {"kind": kind} if kind else {}
    older = _href("/", **filters, before=rows[-1].seq) if rows and rows[-1].seq > 0 else None
    newer = None
    if before is not None and end <= head:
        newer = _href("/", **filters) if end + PAGE > head else \
            _href("/", **filters, before=end + PAGE)
    return page(request, who, "timeline.html", "ledger", rows=rows, head=head, kind=kind,
                state_hash=st.state_hash() if head >= 0 else "", pending=pending,
                proposals=proposals, tools=tools, older=older, newer=newer,
                kinds=sorted(views.TONES))


def _href(path: str, **query: Any) -> str:
    from urllib.parse import urlencode

    return path + (f"?{urlencode(query)}" if query else "")


@router.get("/verify")
def verify(request: Request) -> Response:
    """The verification badge (loaded by the timeline after the page itself)."""
    who = viewer(request)
    with services_of(request).lease() as lease:
        try:
            report = lease.rt.verify()
            result = {"ok": True, "events": report.events, "checkpoints": report.checkpoints,
                      "head": report.head}
        except IntegrityError as e:
            result = {"ok": False, "seq": e.seq, "message": e.message}
    checked = datetime.now(UTC).strftime("%H:%M:%S UTC")
    if request.headers.get("hx-request"):
        return render("_verify.html", {"verify": result, "checked": checked})
    return page(request, who, "verify.html", "ledger", verify=result, checked=checked)


@router.get("/events/{seq}")
def event(request: Request, seq: Annotated[int, Path(ge=0, le=2**62)]) -> Response:
    who = viewer(request)
    with services_of(request).lease() as lease:
        found = lease.rt.log(since=seq, limit=1)
        if not found or found[0].seq != seq:
            raise PageError(404, "No such event", f"the ledger has no event {seq}",
                            "the timeline lists every event")
        names = views.key_names(lease.rt.refresh().values)
    return page(request, who, "event.html", "ledger", event=views.event_detail(found[0], names))


# -- approvals ----------------------------------------------------------------------------
@router.get("/pending")
def pending(request: Request) -> Response:
    who = viewer(request)
    with services_of(request).lease() as lease:
        st = lease.rt.refresh()
        names = views.key_names(st.values)
        items = [views.pending_patch(h, p, st.values,
                                     st.target_hash(_target_of(p)), names)
                 for h, p in sorted(st.pending.items(), key=lambda kv: kv[1].get("seq", 0))]
    return page(request, who, "pending.html", "pending", items=items)


def _target_of(entry: dict[str, Any]) -> str:
    from ouroboros.kernel.state import patch_from_envelope

    try:
        return str(patch_from_envelope(entry["envelope"])["target"])
    except (KeyError, ValueError, TypeError):
        return ""


@router.get("/proposals")
def proposals(request: Request,
              status: Annotated[str, Query(pattern=f"^({'|'.join(STATUSES)}|all)$")]
              = "pending") -> Response:
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    who = viewer(request)
    with services_of(request).lease() as lease:
        items = [to_dict(p) for p in lease.loop().proposals(None if status == "all" else status)]
    items.sort(key=lambda p: str(p["created"]), reverse=True)
    return page(request, who, "proposals.html", "proposals", items=items, status=status,
                statuses=(*STATUSES, "all"))


@router.get("/proposals/{ident}")
def proposal(request: Request, ident: ProposalId) -> Response:
    from ouroboros.capabilities.improve.proposals.proposal import ProposalError, to_dict

    who = viewer(request)
    with services_of(request).lease() as lease:
        try:
            item = to_dict(lease.loop().get(ident))
        except ProposalError as e:
            raise PageError(404, "No such proposal", str(e), "the list shows every proposal") \
                from None
    return page(request, who, "proposal.html", "proposals", p=item)


# -- tools --------------------------------------------------------------------------------
@router.get("/tools")
def tools(request: Request) -> Response:
    from ouroboros.interfaces.cli.tool import with_status

    who = viewer(request)
    with services_of(request).lease() as lease:
        store = lease.skills()
        items = [with_status(store, v) for v in store.list()]
    return page(request, who, "tools.html", "tools", items=items)


def tool_info(lease: Any, name: str) -> dict[str, Any]:
    """`ouro tool describe --json` for one tool (the API's shape, without server paths)."""
    from ouroboros.capabilities.skills import ToolNotFound
    from ouroboros.interfaces.cli.tool import with_status

    store = lease.skills()
    try:
        v = store.get(name)
    except ToolNotFound as e:
        raise PageError(404, "No such tool", str(e), "the tools page lists them") from None
    info = with_status(store, v)
    info.pop("path", None)
    info["lineage"] = [{"tool_id": x.tool_id, "fingerprint": x.fingerprint,
                        "description": x.description, "created": x.meta.get("created")}
                       for x in store.lineage(name)]
    info["cases"] = [c.to_json() for c in v.cases(include_hidden=False)]
    return info


@router.get("/tools/{name}")
def tool(request: Request, name: ToolName) -> Response:
    who = viewer(request)
    with services_of(request).lease() as lease:
        info = tool_info(lease, name)
    return page(request, who, "tool.html", "tools", t=info, run=None, input_text="")


# -- FLUX ---------------------------------------------------------------------------------
@router.get("/flux")
def flux(request: Request) -> Response:
    from ouroboros.capabilities.flux.history import program_histories

    who = viewer(request)
    with services_of(request).lease() as lease:
        st = lease.rt.refresh()
        histories = program_histories(lease.rt.log(), st.values)
    charts = {h.target: [views.line_chart([(s.at, s.cycles) for s in run.steps])
                         for run in h.runs] for h in histories}
    return page(request, who, "flux.html", "flux", histories=histories, charts=charts)


# -- telemetry ----------------------------------------------------------------------------
WINDOWS = (1, 6, 24, 72, 168)


@router.get("/findings")
def findings(request: Request,
             window: Annotated[int, Query(ge=1, le=24 * 90)] = 24) -> Response:
    from ouroboros.capabilities.improve.analysis import Thresholds
    from ouroboros.capabilities.improve.analysis.workspace import findings as analyse
    from ouroboros.interfaces.cli.telemetry import finding_dict

    who = viewer(request)
    moment = datetime.now(UTC)
    services = services_of(request)
    trusted = frozenset({"local", *services.settings().telemetry.trusted_sources})
    found = analyse(services.telemetry(), moment,
                    Thresholds(window_hours=float(window), trusted_sources=trusted))
    return page(request, who, "findings.html", "findings",
                items=[finding_dict(f) for f in found], window=window, windows=WINDOWS,
                now=moment.strftime("%Y-%m-%d %H:%M UTC"))
