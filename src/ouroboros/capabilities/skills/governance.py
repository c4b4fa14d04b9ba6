"""Skills on the kernel: a tool version is registered by a `skill` patch.

The patch targets ``skills/<tool_id>``; its value is the version's immutable meta (files and
binary as blob hashes). Its test gate, ``skill.cases``, fetches those blobs, checks that the
fingerprint really names that content, and runs the tool's own cases (hidden ones included)
in the sandbox. The type's effect installs the version directory from the blobs and moves
HEAD, so approval of a pending patch and rollback both act on the store for real.

A version that needs a person (an LLM-made child that changes a parent case, an LLM-made
tool asking for the real clock, or, under the ``pending`` policy, one without independent
evidence) is proposed as a ``skill_review`` patch instead: same value, same test, same
effect, but the kernel's approval gate defers it until ``ouro approve``. Its value carries
the reasons (``review``), so the reviewer sees them, and a ``skill`` patch whose value
claims a review is refused (nobody can skip approval by type).

The type's audit reads the whole description (not a prefix), under a size cap, for the
kernel's injection markers: a description is pasted into later prompts, so it is checked
like a prompt.

Attaching tools to an agent is the kernel's own ``tools`` patch on ``agents/<agent>/tools``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouroboros.kernel import PatchType, TestContext, TestOutcome, content_hash
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.storage.files import replace_file, scratch_dir, sweep_scratch

from . import metrics as metrics_mod
from .artifacts import compute_fingerprint, default_runtimes
from .builders import Built
from .errors import SkillError, ToolCorrupt, ToolRejected
from .evidence import POLICY_TARGET, SkillPolicy, evidence_of
from .runtimes import Runtimes, current_interpreter
from .schemas import case_problems, check_declared, declared, schemas_of
from .spec import ToolSpec
from .store import SkillStore, ToolVersion
from .testing import run_cases

if TYPE_CHECKING:
    from ouroboros.kernel import Runtime

AUTHOR = "skills"
TEST_NAME = "skill.cases"
REVIEW_TYPE = "skill_review"
#: A description is pasted into every later solve prompt: long enough for a sentence or
#: three with the input format, far too short to carry a page of instructions.
MAX_DESCRIPTION_CHARS = 1000
HASH = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
SKILL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tool_id", "fingerprint", "parent", "description", "language", "runtime",
                 "interpreter", "source", "files", "wasm", "tests"],
    "properties": {
        "tool_id": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "parent": {"type": ["string", "null"]},
        "description": {"type": "string", "minLength": 1},
        "language": {"enum": ["python", "c", "zig", "wat", "rust"]},
        "runtime": {"enum": ["wasi", "cpython", "micropython"]},
        "interpreter": {"anyOf": [HASH, {"type": "null"}]},
        "files": {"type": "object", "additionalProperties": HASH},
        "wasm": {"anyOf": [HASH, {"type": "null"}]},
        "input_schema": {"type": "object"},
        "output_schema": {"type": "object"},
        "schema_source": {
            "type": "object", "additionalProperties": False, "required": ["input", "output"],
            "properties": {"input": {"enum": ["author", "inferred"]},
                           "output": {"enum": ["author", "inferred"]}}},
    },
    # the three schema fields come together (a version from before schemas has none)
    "dependentRequired": {"schema_source": ["input_schema", "output_schema"],
                          "input_schema": ["schema_source"], "output_schema": ["schema_source"]},
}
# Fields of meta.json that change with use; never part of the patch.
_VOLATILE = ("metrics", "embedding_model")
_VERIFIED: set[str] = set()


class ToolPending(SkillError):
    """The `skill` patch waits for approval; the version appears when it is approved."""

    def __init__(self, message: str, patch_hash: str) -> None:
        super().__init__(message)
        self.patch_hash = patch_hash


def skills_root(rt: Runtime) -> Path:
    return Path(rt.home) / "skills"


def register(rt: Runtime, runtimes: Runtimes | None = None) -> None:
    """Register the `skill` and `skill_review` patch types, their test and effect."""
    shared = runtimes or default_runtimes()
    root = skills_root(rt)
    for name, what in (("skill", "a tested tool version (WASM or pinned interpreter + source)"),
                       (REVIEW_TYPE, "a tested tool version a person must approve (see its "
                                     "value's review reasons)")):
        rt.registry.register_type(PatchType(
            name=name,
            value_schema=SKILL_SCHEMA,
            default_tests=("schema", "roundtrip", "replay", TEST_NAME),
            audit=audit_version,
            effect=lambda patch, value: install(root, rt.blobs, patch.target, value),
            targets=("skills/*",),
            description=what,
            kind="skill",  # a reviewed version is a version: either may follow the other
        ))
    rt.registry.register_test(TEST_NAME, lambda ctx: check_cases(ctx, rt.blobs, shared))


def audit_version(ctx: TestContext) -> list[str]:
    """The description against the size cap. Its prompt-injection markers are the kernel
    audit gate's to find: it scans every string of every patch's value, this one's too."""
    value = ctx.new_value
    if not isinstance(value, dict):
        return []
    description = str(value.get("description", ""))
    reasons = []
    if len(description) > MAX_DESCRIPTION_CHARS:
        reasons.append(f"description is {len(description)} characters, over the "
                       f"{MAX_DESCRIPTION_CHARS}-character cap")
    return reasons


def policy_of(rt: Runtime) -> SkillPolicy:
    """The workspace's skills policy (``config/skills/policy``), defaults if unset.

    Raises:
        ToolRejected: the stored value is not a valid policy (fail closed, say why).
    """
    try:
        return SkillPolicy.from_value(rt.value(POLICY_TARGET))
    except (ValueError, TypeError) as e:
        raise ToolRejected("policy", f"{POLICY_TARGET} is invalid: {e}") from None


def open_store(rt: Runtime, runtimes: Runtimes | None = None, **kwargs: Any) -> SkillStore:
    """The workspace's skill store: blobs in the workspace, registration through patches."""
    register(rt, runtimes)
    kwargs.setdefault("policy", policy_of(rt))
    store = SkillStore(skills_root(rt), blobs=rt.blobs, runtimes=runtimes, **kwargs)
    store.registrar = lambda staged: submit_version(rt, store, staged)
    store.head_resolver = lambda tool_id: current_version(rt, store.root, tool_id)
    store.value_resolver = lambda tool_id: rt.refresh().values.get(f"skills/{tool_id}")
    store.ledger_checker = Committed(rt).check
    store.tool_lister = lambda: [
        target.split("/", 1)[1] for target, value in rt.refresh().values.items()
        if target.startswith("skills/") and value is not None
    ]
    return store


def current_version(rt: Runtime, root: Path, tool_id: str) -> str | None:
    """The fingerprint the ledger's state names for a tool (installing it if missing), so
    a rollback or an approval is seen even where no effect ran."""
    # Read in place (`rt.value` deep-copies the whole meta): only the fingerprint is kept.
    value = rt.refresh().values.get(f"skills/{tool_id}")
    if value is None:
        return None
    fingerprint = str(value["fingerprint"])
    if not os.path.isdir(_version_dir(str(root), tool_id, fingerprint)):
        try:
            install(root, rt.blobs, f"skills/{tool_id}", rt.value(f"skills/{tool_id}"))
        except (KeyError, ValueError) as e:  # BlobNotFound is a KeyError; a bad blob ValueError
            raise ToolCorrupt(f"{tool_id}@{fingerprint}: its folder is missing and the blobs "
                              f"cannot restore it ({type(e).__name__}: {e}); restore the "
                              "workspace's blobs from a backup") from None
    return fingerprint


class Committed:
    """Which values the ledger's applied patches gave each ``skills/<tool>`` target, read
    incrementally (only the events since the last look), so any version's meta.json can be
    checked against the value the ledger committed for it, and against rollbacks."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.seen = -1
        # (target, content hash of the value a patch left there) -> those patches
        self.patches: dict[tuple[str, str], list[str]] = {}

    def check(self, tool_id: str, value: dict[str, Any]) -> str | None:
        """None while a live (not rolled back) patch left exactly ``value`` on the tool's
        target; otherwise why not, prefixed ``rolled back:`` when the ledger committed this
        value and a rollback undid every patch that did.

        Raises:
            ToolCorrupt: no patch ever committed this value (edited on disk).
        """
        state = self.rt.refresh()
        if state.seq > self.seen:
            seen = state.seq
            for ev in self.rt.log(kind="PatchApplied", since=self.seen + 1):
                target = str(ev.payload.get("target", ""))
                if target.startswith("skills/"):
                    key = (target, str(ev.payload.get("result")))
                    self.patches.setdefault(key, []).append(str(ev.payload["patch_hash"]))
                seen = max(seen, ev.seq)  # appended since the refresh: not read twice
            self.seen = seen
        target = f"skills/{tool_id}"
        try:
            patches = self.patches.get((target, content_hash(value)))
        except (InvalidPatch, ValueError, TypeError):  # NaN, huge integers: never committed
            patches = None
        if not patches:
            raise ToolCorrupt(
                f"{tool_id}@{value.get('fingerprint')}: meta.json does not match any version "
                f"the ledger registered for {target}; it was changed on disk after "
                "registration (restore it from the blobs)")
        if any(state.live_seq(p) is not None for p in patches):
            return None
        undone = [r.undone for p in patches if (r := state.index.record(p)) is not None
                  and r.undone is not None]
        at = f" at ledger seq {max(undone)}" if undone else ""
        return f"rolled back{at}"


@functools.lru_cache(maxsize=1024)
def _version_dir(root: str, tool_id: str, fingerprint: str) -> str:
    """A version's folder as a string: a warm call builds no Path objects."""
    return os.path.join(root, "tools", tool_id, "versions", fingerprint)


def patch_value(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in _VOLATILE}


def submit_version(rt: Runtime, store: SkillStore, staged: ToolVersion) -> None:
    """The store's registrar: blobs first (the gate reads them), then the patch."""
    for rel in staged.meta["files"]:
        rt.blobs.put((staged.path / rel).read_bytes())
    if staged.meta.get("wasm"):
        rt.blobs.put((staged.path / "tool.wasm").read_bytes())
    value = patch_value(staged.meta)
    _VERIFIED.add(staged.fingerprint)  # the store just ran every case on this very content
    parent = f" from {staged.parent}" if staged.parent else ""
    review = (staged.meta.get("review") or {}).get("reasons") or []
    reasoning = (f"register {staged.tool_id}@{staged.fingerprint}{parent}: "
                 f"{staged.description[:200]}")
    if review:
        reasoning += " | REVIEW: " + "; ".join(review)
        if not _review_deferred(rt, f"skills/{staged.tool_id}"):
            raise ToolRejected("review", "this version needs approval but the workspace's "
                               "kernel/gates has no approval rule for skill_review patches; "
                               "add {\"types\": [\"skill_review\"], \"targets\": [\"*\"]} "
                               "to its approval list")
    outcome = rt.propose_and_submit(
        type=REVIEW_TYPE if review else "skill", target=f"skills/{staged.tool_id}",
        value=value, reasoning=reasoning[:4000], tests=[TEST_NAME], author=AUTHOR,
        keys=["runtime"],
    )
    if outcome.status == "rejected":
        raise ToolRejected("gate", f"{outcome.stage} gate: {outcome.reason}")
    if outcome.status == "pending":
        raise ToolPending(
            f"{staged.tool_id}@{staged.fingerprint} waits for approval: {outcome.reason}",
            outcome.patch_hash,
        )


def _review_deferred(rt: Runtime, target: str) -> bool:
    """Whether the approval gate will hold a skill_review patch to `target` (fail closed on
    a workspace made before the rule existed)."""
    import fnmatch

    rules = (rt.value("kernel/gates") or {}).get("approval") or []
    return any(REVIEW_TYPE in r.get("types", []) and any(
        fnmatch.fnmatchcase(target, g) for g in r.get("targets", [])) for r in rules)


def check_cases(ctx: TestContext, blobs: Any, runtimes: Runtimes) -> TestOutcome:
    """The `skill.cases` test: the content matches its fingerprint and passes its cases."""
    value = ctx.new_value
    if value is None:
        return TestOutcome(True, "tool unregistered")
    if ctx.patch.target != f"skills/{value.get('tool_id')}":  # the store's folder is the target's
        return TestOutcome(False, f"the target {ctx.patch.target!r} is not the version's tool "
                                  f"(skills/{str(value.get('tool_id'))[:80]})")
    review = value.get("review")
    if ctx.patch.type == "skill" and review:
        return TestOutcome(False, "a version with review reasons must be a skill_review patch "
                                  "(it waits for approval)")
    if ctx.patch.type == REVIEW_TYPE and not (isinstance(review, dict) and review.get("reasons")):
        return TestOutcome(False, "a skill_review patch must say what to review")
    try:
        files = {rel: blobs.get(h) for rel, h in value["files"].items()}
        wasm = blobs.get(value["wasm"]) if value["wasm"] else None
        input_schema, output_schema = declared(value)
        spec = ToolSpec(
            name=value["tool_id"], description=value["description"],
            language=value["language"], files=files,
            runtime=value["runtime"] if value["runtime"] == "micropython" else None,
            origin=str(value.get("origin") or "operator"),
            capabilities=tuple(value.get("capabilities") or ()),
            input_schema=input_schema, output_schema=output_schema,
        )
    except (KeyError, ValueError, TypeError, SkillError) as e:
        return TestOutcome(False, f"the version's blobs are missing or invalid: {e}")
    if "schema_source" in value:
        try:
            for what in ("input_schema", "output_schema"):
                check_declared(value[what], what)  # inferred ones too: size, validity
            problems = case_problems(spec.cases(), schemas_of(value, ()))
        except SkillError as e:
            return TestOutcome(False, str(e))
        if problems:
            return TestOutcome(False, "the schemas contradict the cases: "
                                      + "; ".join(problems[:3]))
    if "evidence" in value and value["evidence"] != evidence_of(spec.cases(),
                                                                spec.origin).to_json():
        return TestOutcome(False, "the recorded evidence does not match the version's cases")
    built = Built(value["runtime"], value.get("runtime_version", ""),
                  value["interpreter"] or "", wasm)
    if compute_fingerprint(spec, built) != value["fingerprint"]:
        return TestOutcome(False, "fingerprint does not match the files, binary and runtime")
    if value["fingerprint"] in _VERIFIED:
        return TestOutcome(True, "cases passed (verified earlier in this process)")
    installed = current_interpreter(value["runtime"])
    if installed is not None and installed != value["interpreter"]:
        return TestOutcome(False, f"pinned interpreter {value['interpreter']} is not installed")
    limits = _limits()
    if "clock" in spec.capabilities:
        limits = replace(limits, real_clock=True)
    results = run_cases(runtimes, spec, built, spec.cases(), limits)
    failed = [r for r in results if not r.ok]
    if failed:
        return TestOutcome(False, "; ".join(r.describe() for r in failed[:3]))
    _VERIFIED.add(value["fingerprint"])
    return TestOutcome(True, f"{len(results)} cases passed")


def _limits() -> Any:
    from .sandbox import Limits

    return Limits()


def install(root: Path, blobs: Any, target: str, value: dict[str, Any] | None) -> None:
    """The `skill` effect: make the store match the applied value (also on rollback)."""
    tool_id = target.split("/", 1)[1]
    head = root / "tools" / tool_id / "HEAD"
    if value is None:
        head.unlink(missing_ok=True)
        return
    final = root / "tools" / tool_id / "versions" / value["fingerprint"]
    if not final.is_dir():
        # each installer its own folder, locked while it lives, removed after (nothing
        # half-installed is left behind); a killed one's is swept by the next install
        sweep_scratch(final.parent, ".")
        with scratch_dir(final.parent, f".{final.name}.installing-") as tmp:
            for rel, digest in value["files"].items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(blobs.get(digest))
            if value.get("wasm"):
                (tmp / "tool.wasm").write_bytes(blobs.get(value["wasm"]))
            meta = {**value, "embedding_model": None, "metrics": metrics_mod.signed_empty(
                metrics_mod.key_of(root), f"{tool_id}@{value['fingerprint']}")}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            try:
                os.replace(tmp, final)
            except OSError:
                if not final.is_dir():  # not a concurrent installer of the same version
                    raise
    head.parent.mkdir(parents=True, exist_ok=True)
    replace_file(head, value["fingerprint"])


def attach_tools(
    rt: Runtime, store: SkillStore, agent: str, tool_ids: Sequence[str],
    *, keys: Sequence[str] = ("root",), reasoning: str = "",
) -> Any:
    """Give an agent tools with a kernel ``tools`` patch (granting needs the 'grant' right,
    so by default the operator's root key signs)."""
    for tool_id in tool_ids:
        store.get(tool_id)  # raises ToolNotFound for a tool that does not exist
    target = f"agents/{agent}/tools"
    current = rt.value(target) or []
    wanted = sorted(set(current) | set(tool_ids))
    if wanted == sorted(current):
        return None
    return rt.propose_and_submit(
        type="tools", target=target, value=wanted,
        reasoning=reasoning or f"attach {', '.join(tool_ids)} to {agent}",
        author="operator", keys=list(keys),
    )
