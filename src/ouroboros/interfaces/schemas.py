"""The JSON shapes the interfaces speak, as pydantic models.

Where the CLI's ``--json`` prints a shape, the model here is that shape (a contract test
validates the CLI's output against it), so an agent can move between ``ouro … --json``,
the HTTP API and MCP without relearning anything. The HTTP API uses these models for
validation and for its OpenAPI schema. Only pydantic is imported here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any


class Shape(BaseModel):
    # Tolerate fields a newer kernel or capability adds; the named ones are the contract.
    model_config = ConfigDict(extra="allow")


# -- kernel -------------------------------------------------------------------------------
class Signature(BaseModel):
    keyid: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the public key")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature over the PAE")


class Envelope(BaseModel):
    """A DSSE envelope holding one patch (``ouro patch new`` then ``ouro patch sign``)."""

    model_config = ConfigDict(populate_by_name=True)
    payload: str = Field(pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|"
                                 r"[A-Za-z0-9+/]{3}=)?$",
                         description="base64 of the patch's RFC 8785 bytes")
    payloadType: Literal["application/vnd.ouroboros.patch+json"]
    signatures: list[Signature] = Field(max_length=64)


class SubmitOutcome(Shape):
    """``ouro patch submit --json`` / ``approve`` / ``reject``; ``id`` names a pending
    patch for approval (its hash)."""

    status: Literal["applied", "rejected", "pending"]
    patch_hash: str
    seq: int | None = None
    stage: str = ""
    reason: str = ""
    id: str | None = None


class TargetValue(BaseModel):
    target: str
    value: JsonValue
    hash: str


class StateSummary(Shape):
    """``ouro state --json``."""

    seq: int
    state_hash: str
    targets: dict[str, JsonValue]
    pending: list[str]
    breakers: dict[str, JsonValue]


class PendingPatch(Shape):
    """An element of ``ouro pending --json``."""

    patch_hash: str
    needs: str
    author: str
    target: str
    seq: int


class RejectRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class LedgerEvent(Shape):
    """An element of ``ouro log --json``."""

    seq: int
    prev: str
    kind: str
    time: str
    key_id: str
    hash: str
    payload: dict[str, JsonValue]


class VerifyResult(Shape):
    """``ouro verify --json`` (``ok`` true), or where verification failed."""

    ok: bool
    events: int | None = None
    checkpoints: int | None = None
    head: str | None = None
    seq: int | None = None
    message: str | None = None


class CheckpointJson(Shape):
    """``ouro proof checkpoint --json``: the latest signed checkpoint (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root: str = Field(description="The Merkle root of the first `size` events, base64")
    head: str = Field(description="The hash of event size-1")
    note: str = Field(description="The signed note, verbatim")
    vkey: str = Field(description="The log's verifier key (check against one you trust)")


class InclusionProofJson(Shape):
    """``ouro proof inclusion SEQ --json``."""

    index: int
    proof: list[str] = Field(description="The RFC 9162 audit path, base64, leaf sibling first")
    vkey: str
    event: str = Field(description="The event's stored body, base64 (its leaf)")
    checkpoint: str = Field(description="The signed checkpoint the path leads to")
    file: str = Field(description="The C2SP tlog-proof file `ouro proof check` reads")


class ConsistencyProofJson(Shape):
    """``ouro proof consistency OLD [NEW] --json``."""

    old: int
    new: int
    proof: list[str] = Field(description="The RFC 9162 consistency proof, base64")
    vkey: str
    old_checkpoint: str
    new_checkpoint: str
    file: str = Field(description="The proof file `ouro proof check` reads")


# -- skills -------------------------------------------------------------------------------
class ToolMetrics(Shape):
    uses: int | None = None
    failures: int | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    last_used: str | None = None
    rejected: int | None = Field(None, description="Call-log lines (and edited metrics) not "
                                 "counted: no valid MAC of this runtime, replayed or torn")


class ToolSummary(Shape):
    """An element of ``ouro tool list --json`` (the server leaves out ``path``)."""

    tool_id: str
    fingerprint: str
    parent: str | None = None
    description: str
    language: str
    runtime: str
    created: str | None = None
    tests: dict[str, JsonValue] | None = None
    metrics: ToolMetrics
    origin: str
    capabilities: list[str]
    evidence: dict[str, JsonValue] | None = None
    review: dict[str, JsonValue] | None = None
    status: str


class ToolDescription(ToolSummary):
    """``ouro tool describe --json``: lineage and the visible cases too."""

    lineage: list[str]
    cases: list[dict[str, JsonValue]]
    rolled_back: str | None = Field(None, description="When a rollback undid this version "
                                    "(status rolled_back); null while the ledger has it")


class SearchHit(Shape):
    tool_id: str
    fingerprint: str
    score: float
    dense_rank: int | None = None
    bm25_rank: int | None = None
    text: str
    use_rank: int | None = None
    semantic_rank: int | None = None  # MiniLM's rank of the tool (modes full and deep)


class SearchResult(Shape):
    """``ouro tool search --json``."""

    query: str
    mode: str
    model: str | None = None
    semantic_model: str | None = None  # MiniLM's id when it ranked (modes full and deep)
    results: list[SearchHit]


class RunRequest(BaseModel):
    input: JsonValue = Field(description="The tool's JSON input.")
    version: str | None = Field(None, pattern=r"^[0-9a-f]{8,64}$",
                                description="A fingerprint (default: the current version).")
    fuel: int | None = Field(None, ge=1, description="Lower the instruction budget.")
    deadline: float | None = Field(None, gt=0, description="Lower the wall-clock seconds.")
    memory_mib: int | None = Field(None, ge=1, description="Lower the memory cap.")


class RunResult(Shape):
    """``ouro tool run --json`` (``ms`` is its ``elapsed_ms``)."""

    ok: Literal[True] = True
    tool_id: str
    fingerprint: str
    output: JsonValue
    ms: float
    fuel_used: int | None = None


class CreateRequest(BaseModel):
    description: str = Field(min_length=1, max_length=4000)
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    language: Literal["python", "c", "zig", "wat"] = "python"
    reference: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    repairs: int = Field(2, ge=0, le=5)


class MutateRequest(BaseModel):
    description: str = Field(min_length=1, max_length=4000)
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    repairs: int = Field(2, ge=0, le=5)


class AuthoredTool(Shape):
    """``ouro tool create|mutate --json``."""

    id: str
    fingerprint: str
    parent: str | None = None
    description: str
    language: str
    attempts: int
    status: str
    evidence: dict[str, JsonValue] | None = None


class SolveRequest(BaseModel):
    task: str = Field(min_length=1, max_length=8000)
    input: JsonValue = None
    steps: int = Field(8, ge=1, le=100)
    max_calls: int = Field(16, ge=1, le=200)
    max_creates: int = Field(1, ge=0, le=10)
    max_mutates: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(200_000, ge=1, le=5_000_000)
    timeout: float = Field(600.0, gt=0, le=3600)


class SolveResult(Shape):
    """``ouro tool solve --json``."""

    answer: str
    steps: list[dict[str, JsonValue]]
    outcome: str
    solved: bool


# -- improve ------------------------------------------------------------------------------
class Proposal(Shape):
    """``ouro proposals show --json`` (``list`` leaves out ``diff``)."""

    id: str
    title: str
    created: str
    status: str
    category: str
    severity: str
    patch_hash: str
    problem: str
    evidence: list[str]
    diff: str | None = None
    affected_files: list[str]
    review: dict[str, JsonValue] | None = None
    log: list[str]


class ProposalOutcome(Proposal):
    """``ouro proposals approve|reject --json``."""

    message: str


class ApproveProposalRequest(BaseModel):
    notes: str = Field("", max_length=2000)


class RejectProposalRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class Finding(Shape):
    kind: str
    severity: str
    tool: str | None = None
    agent: str | None = None
    summary: str
    evidence: list[str]
    count: int
    metrics: dict[str, float]


class Findings(Shape):
    """``ouro telemetry eval --json``."""

    now: str
    findings: list[Finding]
