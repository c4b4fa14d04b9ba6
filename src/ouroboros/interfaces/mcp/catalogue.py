"""What the MCP server offers: its tools and resources, each the body of an ``ouro`` command.

Every tool here calls the capability functions the matching CLI command calls, on a leased
runtime, and returns that command's ``--json`` shape; nothing is decided here but which
role a tool needs. Arguments are pydantic models (their JSON Schema is the tool's
``inputSchema``; unknown keys and wrong types are refused before anything runs).

Built-in tools, with the role they need:

=================  ======  =========================================
``list_tools``     read    ``ouro tool list``
``search_tools``   read    ``ouro tool search``
``describe_tool``  read    ``ouro tool describe`` (with the schemas)
``list_proposals`` read    ``ouro proposals list``
``run_tool``       submit  ``ouro tool run``
``create_tool``    submit  ``ouro tool create`` (needs an LLM endpoint)
``mutate_tool``    submit  ``ouro tool mutate`` (needs an LLM endpoint)
``solve``          submit  ``ouro tool solve`` (needs an LLM endpoint)
``propose_patch``  submit  ``ouro proposals new`` (a human approves)
=================  ======  =========================================

Every *served* skill is also a tool of its own name (submit role), with its input schema
(`ouroboros.capabilities.skills.export`); a skill named like a built-in is reachable
through ``run_tool`` only. Resources (read role): ``ouro://state`` (every target's name and
the state hash), ``ouro://state/{target}`` (one target's value and hash) and
``ouro://log`` (ledger events; ``?since=&limit=&kind=``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ouroboros.interfaces.http.services import Lease, Services
from ouroboros.interfaces.http.tokens import Role
from ouroboros.interfaces.ledger_json import checkpoint_json, consistency_json, inclusion_json
from ouroboros.kernel.errors import NotFound, UsageError

ToolName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$",
                                description="A tool id (lowercase letters, digits, _)")]
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", description="A version")]
_TARGET = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,199}$")
MAX_LOG = 1000
#: Targets listed one by one in resources/list (the template reaches every other one).
MAX_LISTED_TARGETS = 500


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NoArgs(Args):
    pass


class SearchArgs(Args):
    query: str = Field(min_length=1, max_length=1000, description="What the tool should do")
    k: int = Field(5, ge=1, le=50, description="How many tools")
    all: bool = Field(False, description="Include unproven LLM-made tools")


class DescribeArgs(Args):
    name: ToolName
    version: Fingerprint | None = None


class RunArgs(Args):
    name: ToolName
    input: JsonValue = Field(description="The tool's JSON input (see describe_tool's "
                                         "input_schema)")
    version: Fingerprint | None = None


class CreateArgs(Args):
    description: str = Field(min_length=1, max_length=4000, description="What the tool "
                             "must do, with examples of input and output if you can")
    name: ToolName | None = None
    language: Literal["python", "c", "zig", "wat"] = "python"
    reference: ToolName | None = Field(None, description="An existing tool whose outputs "
                                                         "the new one must match")
    repairs: int = Field(3, ge=0, le=20)


class MutateArgs(Args):
    name: ToolName
    description: str = Field(min_length=1, max_length=4000, description="What must change")
    new_name: ToolName | None = Field(None, description="Store as a new tool of this name")
    repairs: int = Field(3, ge=0, le=20)


class SolveArgs(Args):
    task: str = Field(min_length=1, max_length=8000)
    input: JsonValue = None
    steps: int = Field(8, ge=1, le=100)
    max_calls: int = Field(16, ge=1, le=1000)
    max_creates: int = Field(1, ge=0, le=100)
    max_mutates: int = Field(2, ge=0, le=100)
    timeout: float = Field(600.0, gt=0, le=3600)


class ProposeArgs(Args):
    diff: str = Field(min_length=1, max_length=1 << 20,
                      description="A unified diff against the target repository's main")
    title: str = Field(min_length=1, max_length=200, description="One line: what it does")
    category: Literal["bugfix", "enhancement", "optimization"] = "bugfix"
    severity: Literal["critical", "high", "medium", "low"] = "medium"
    problem: str = Field("-", max_length=20_000)
    root_cause: str = Field("-", max_length=20_000)
    solution: str = Field("-", max_length=20_000)
    risk: str = Field("-", max_length=20_000)


class ProposalsArgs(Args):
    status: Literal["pending", "approved", "implemented", "rejected", "blocked", "failed",
                    "reverted", "revert_failed"] = "pending"
    all: bool = False


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    args: type[Args]
    needs: Role
    run: Callable[[Services, Any, str], Any]  # (services, args, caller name) -> JSON
    read_only: bool = True


# -- bodies: one ``ouro`` command each -----------------------------------------------------
def _summary(store: Any, version: Any, named: bool = False) -> dict[str, Any]:
    from ouroboros.interfaces.cli.tool import describe_status, with_status

    # a version asked for by name may be one a rollback undid: describe_tool says so
    info = (describe_status if named else with_status)(store, version)
    info.pop("path", None)  # the server's file system is not the caller's business
    return info


def _list_tools(services: Services, _: NoArgs, __: str) -> Any:
    with services.lease() as lease:
        store = lease.skills()
        return [_summary(store, v) for v in store.list()]


def _search_tools(services: Services, a: SearchArgs, _: str) -> Any:
    from ouroboros.capabilities.skills.serving import search_served

    if not a.query.strip():
        raise UsageError("the query must not be blank")
    with services.lease() as lease:
        store, index = lease.skills(), lease.index()
        hits = search_served(store, index, a.query, k=a.k, include_unproven=a.all)
        index.remember(a.query, hits)  # a later run of a hit credits this search
        return {"query": a.query, "model": index.model_id,
                "semantic_model": index.semantic_model(),
                "results": [h.to_json() for h in hits]}


def _describe_tool(services: Services, a: DescribeArgs, _: str) -> Any:
    with services.lease() as lease:
        store = lease.skills()
        v = store.get(a.name, a.version)
        info = _summary(store, v, named=True)
        info["lineage"] = [f"{x.tool_id}@{x.fingerprint}"
                           for x in store.lineage(a.name, a.version)]
        info["cases"] = [c.to_json() for c in v.cases(include_hidden=False)]
        info.update(store.schemas(v).to_meta())
        return info


def run_skill(services: Services, name: str, value: Any, version: str | None = None) -> Any:
    """``ouro tool run NAME --input VALUE --json`` (what the per-skill tools call too)."""
    with services.lease() as lease:
        return run_on(lease, name, value, version)


def run_on(lease: Lease, name: str, value: Any, version: str | None = None) -> Any:
    """`run_skill` on a runtime the caller already holds."""
    from ouroboros.capabilities.skills.retrieval.feedback import credit_run

    store = lease.skills()
    result = store.run(name, value, fingerprint=version)
    credit_run(store.root / "index", name)  # retrieval learns which tool served a search
    return {"ok": True, "tool_id": result.tool_id, "fingerprint": result.fingerprint,
            "output": result.output, "elapsed_ms": round(result.elapsed_ms, 3),
            "fuel_used": result.fuel_used}


def _run_tool(services: Services, a: RunArgs, _: str) -> Any:
    return run_skill(services, a.name, a.input, a.version)


def _author(lease: Lease, repairs: int) -> Any:
    from ouroboros.interfaces.cli.tool_authoring import author_for

    return author_for(lease.rt, lease.skills(), lease.index(), repairs)


def _authored(lease: Lease, done: Any) -> Any:
    from ouroboros.capabilities.skills.serving import status

    v = done.version
    return {"id": v.tool_id, "fingerprint": v.fingerprint, "parent": v.parent,
            "description": v.description, "language": v.language,
            "attempts": done.attempts, "status": status(lease.skills(), v),
            "evidence": v.meta.get("evidence")}


def _create_tool(services: Services, a: CreateArgs, _: str) -> Any:
    from ouroboros.capabilities.skills.serving import search_served

    with services.lease() as lease:
        author = _author(lease, a.repairs)
        store, index = lease.skills(), lease.index()
        similar = [(h.tool_id, h.text.split(": ", 1)[-1])
                   for h in search_served(store, index, a.description, k=3)] if len(index) \
            else []
        return _authored(lease, author.create(a.description, name=a.name,
                                              language=a.language, similar=similar,
                                              reference=a.reference))


def _mutate_tool(services: Services, a: MutateArgs, _: str) -> Any:
    with services.lease() as lease:
        lease.skills().get(a.name)  # ToolNotFound before the LLM is asked anything
        author = _author(lease, a.repairs)
        return _authored(lease, author.mutate(a.name, a.description, name=a.new_name))


def _solve(services: Services, a: SolveArgs, _: str) -> Any:
    from ouroboros.capabilities.skills.control import SolveLimits, Solver
    from ouroboros.capabilities.skills.retrieval.feedback import served_tools

    with services.lease() as lease:
        author = _author(lease, 2)
        limits = SolveLimits(turns=a.steps, calls=a.max_calls, creates=a.max_creates,
                             mutates=a.max_mutates, seconds=a.timeout)
        index = lease.index()
        solver = Solver(lease.skills(), index, author.provider, author, limits=limits)
        result = solver.solve(a.task, a.input)
        index.record_use(a.task, served_tools(result))
        return result.to_json()


def _propose_patch(services: Services, a: ProposeArgs, caller: str) -> Any:
    from ouroboros.capabilities.improve.proposals.planner import manual_draft
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    draft = manual_draft(a.diff, a.title, category=a.category, severity=a.severity,
                         problem=a.problem, root_cause=a.root_cause, solution=a.solution,
                         risk=a.risk, evidence=f"proposed over MCP by {caller}")
    with services.decisions, services.lease() as lease:
        outcome = lease.loop().propose(draft)
    if outcome is None:
        raise UsageError("an open proposal with the same title and files exists",
                         "see list_proposals")
    return {**to_dict(outcome.proposal), "message": outcome.message}


def _list_proposals(services: Services, a: ProposalsArgs, _: str) -> Any:
    from ouroboros.capabilities.improve.proposals.proposal import to_dict

    with services.decisions, services.lease() as lease:
        items = lease.loop().proposals(None if a.all else a.status)
        return [{k: v for k, v in to_dict(p).items() if k != "diff"} for p in items]


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("list_tools", "Every tool's current version with its status (served, unproven, "
            "operator) and metrics.", NoArgs, Role.read, _list_tools),
    Builtin("search_tools", "Find tools by meaning (served ones unless all=true); describe "
            "or run a hit next.", SearchArgs, Role.read, _search_tools),
    Builtin("describe_tool", "A tool's metadata, lineage, visible test cases and its input "
            "and output JSON Schemas.", DescribeArgs, Role.read, _describe_tool),
    Builtin("list_proposals", "Improvement proposals (pending unless status or all).",
            ProposalsArgs, Role.read, _list_proposals),
    Builtin("run_tool", "Run a tool in the sandbox on one JSON input (validated against its "
            "input schema) and return its JSON output.", RunArgs, Role.submit, _run_tool),
    Builtin("create_tool", "Have the LLM write, test and register a new tool, judged by "
            "cases it did not write.", CreateArgs, Role.submit, _create_tool, False),
    Builtin("mutate_tool", "Have the LLM specialise or fix a tool; the child keeps the "
            "parent's hidden tests.", MutateArgs, Role.submit, _mutate_tool, False),
    Builtin("solve", "Retrieve tools, let the model run / mutate / create them, and answer "
            "a task.", SolveArgs, Role.submit, _solve, False),
    Builtin("propose_patch", "Propose a unified diff to the deployment as an improvement "
            "proposal; it is validated on a branch and waits for a human's approval.",
            ProposeArgs, Role.submit, _propose_patch, False),
)}


# -- resources -----------------------------------------------------------------------------
def read_resource(services: Services, uri: str) -> Any:
    """The JSON of a resource URI.

    Raises:
        NotFound: an unknown URI or target; UsageError: a malformed one.
    """
    try:
        parts = urlsplit(uri)
    except ValueError as e:  # "Invalid IPv6 URL": an unbalanced [ or ] in the authority
        raise UsageError(f"{uri[:200]!r} is not a resource URI: {e}",
                         "list them with resources/list") from None
    if parts.scheme != "ouro" or parts.fragment:
        raise NotFound(f"no resource {uri[:200]!r}", "list them with resources/list")
    path = parts.netloc + parts.path
    with services.lease() as lease:
        if path == "state" and not parts.query:
            st = lease.rt.refresh()
            return {"seq": st.seq, "state_hash": st.state_hash(), "targets": sorted(st.values)}
        if path.startswith("state/") and not parts.query:
            target = path[len("state/"):]
            if not _TARGET.match(target) or ".." in target:
                raise UsageError("not a valid target name",
                                 "targets use letters, digits and . _ - / : @, without '..'")
            st = lease.rt.refresh()
            if target not in st.values:
                raise NotFound(f"no target {target!r} at seq {st.seq}",
                               "list targets with the ouro://state resource")
            return {"target": target, "value": st.values[target],
                    "hash": st.target_hash(target)}
        if path == "log":
            query = _log_query(parts.query)
            events = lease.rt.log(kind=query["kind"], since=query["since"],
                                  limit=query["limit"])
            return [e.to_dict() for e in events]
        if path == "checkpoint" and not parts.query:
            return checkpoint_json(lease.rt.checkpoint_note(), lease.rt.verifier)
        if path.startswith("proofs/inclusion/") and not parts.query:
            seq = _whole(path[len("proofs/inclusion/"):], "seq")
            return inclusion_json(lease.rt.inclusion_proof(seq), lease.rt.verifier)
        if path == "proofs/consistency":
            sizes = _query(parts.query, {"old", "new"})
            if "old" not in sizes:
                raise UsageError("a consistency proof needs old (and optionally new)")
            new = _whole(sizes["new"], "new") if "new" in sizes else None
            proof = lease.rt.consistency_proof(_whole(sizes["old"], "old"), new)
            return consistency_json(proof, lease.rt.verifier)
    raise NotFound(f"no resource {uri[:200]!r}", "list them with resources/list")


def _whole(raw: str, name: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", raw) or int(raw) > 2**62:  # ASCII digits only
        raise UsageError(f"{name} must be a whole number from 0 to {2**62}")
    return int(raw)


def _query(text: str, names: set[str]) -> dict[str, str]:
    """A query of the given names, each at most once."""
    try:
        query = parse_qs(text, keep_blank_values=False, strict_parsing=bool(text),
                         max_num_fields=len(names))
    except ValueError as e:
        raise UsageError(f"bad query: {e}") from None
    if set(query) - names or any(len(v) != 1 for v in query.values()):
        raise UsageError(f"the query takes {', '.join(sorted(names))}, once each")
    return {k: v[0] for k, v in query.items()}


def _log_query(text: str) -> dict[str, Any]:
    try:
        query = parse_qs(text, keep_blank_values=False, strict_parsing=bool(text),
                         max_num_fields=3)
    except ValueError as e:
        raise UsageError(f"bad log query: {e}") from None
    unknown = set(query) - {"since", "limit", "kind"}
    if unknown or any(len(v) != 1 for v in query.values()):
        raise UsageError("the log takes since, limit and kind, once each")

    def number(name: str, default: int, high: int) -> int:
        raw = query.get(name, [str(default)])[0]
        if not re.fullmatch(r"[0-9]{1,19}", raw) or not 0 <= int(raw) <= high:
            raise UsageError(f"{name} must be a whole number from 0 to {high}")
        return int(raw)

    kind = query.get("kind", [None])[0]
    if kind is not None and not re.fullmatch(r"[A-Z][A-Za-z0-9]{1,63}", kind):
        raise UsageError("kind is an event kind such as PatchApplied")
    return {"since": number("since", 0, 2**62), "limit": max(1, number("limit", 100, MAX_LOG)),
            "kind": kind}


def state_targets(services: Services) -> list[str]:
    with services.lease() as lease:
        return sorted(lease.rt.refresh().values)[:MAX_LISTED_TARGETS]


def to_json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
