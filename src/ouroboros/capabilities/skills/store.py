"""The skill store: versioned, tested, immutable tool artifacts and the calls that use them.

    tools/<tool_id>/HEAD                         fingerprint of the current version
    tools/<tool_id>/versions/<fingerprint>/
        src/ tests/ tool.wasm meta.json [embedding.vec]

Every file of a version is also a blob in a content-addressed store (meta.json lists their
hashes). A version is built and tested in a staging directory and renamed into place only
when everything passed (and, in a workspace, when the kernel applied its `skill` patch), so a
rejected candidate leaves nothing behind. Source, tests, binary and lineage never change after
that; meta.json's `metrics` and `embedding_model` are the only fields updated later.
"""

from __future__ import annotations

import builtins
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.capabilities import tracing
from ouroboros.kernel.errors import InvalidPatch
from ouroboros.storage.blobs import BlobStore as FileBlobStore
from ouroboros.storage.files import scratch_dir, sweep_scratch

from . import metrics as metrics_mod
from .artifacts import (
    FINGERPRINT_CHARS,
    compute_fingerprint,
    default_runtimes,
    meta_fingerprint,
    write_bytes,
    write_json,
    write_text,
)
from .blobs import Blobs, blob_hash
from .builders import Built, build
from .building.jail import BuildLimits
from .errors import (
    BuildFailed,
    InputRejected,
    JailUnavailable,
    MalformedTool,
    OutputRejected,
    SandboxError,
    ToolCorrupt,
    ToolNotFound,
    ToolRejected,
    ToolRolledBack,
)
from .evidence import ContractBroken, SkillPolicy, contract_changes, evidence_of
from .runtimes import Runtimes
from .sandbox import Limits
from .schemas import ToolSchemas, case_problems, declared, schema_problems, schemas_for, schemas_of
from .spec import (
    CASES_PATH,
    NAME_RE,
    TestCase,
    ToolSpec,
    hidden_character,
    load_tool_dir,
    parse_cases,
    without_hidden,
)
from .stored import read_meta, read_stored
from .testing import CaseResult, TestBatch, TestReport, run_batch, run_cases

_FINGERPRINT = re.compile(f"[0-9a-f]{{{FINGERPRINT_CHARS}}}")


MUTABLE_META = frozenset({"metrics", "embedding_model"})


@dataclass(frozen=True)
class ToolVersion:
    """One immutable version of a tool, as registered."""

    tool_id: str
    fingerprint: str
    parent: str | None
    description: str
    language: str
    runtime: str
    path: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def wasm_path(self) -> Path | None:
        p = self.path / "tool.wasm"
        return p if p.is_file() else None

    @property
    def source(self) -> str:
        path = self.path / str(self.meta["source"])
        try:
            return read_stored(path).decode("utf-8")
        except UnicodeDecodeError:
            raise ToolCorrupt(f"{path} is not UTF-8; restore it from the blobs") from None

    def cases(self, include_hidden: bool = False) -> list[TestCase]:
        """Test cases; hidden ones only on request (never give them to a mutating LLM)."""
        data = read_stored(self.path / CASES_PATH)
        _check(self, CASES_PATH, data, self.meta["files"][CASES_PATH])
        cases = parse_cases(data)
        return [c for c in cases if include_hidden or not c.hidden]

    def files(self, include_hidden: bool = False) -> dict[str, bytes]:
        """The version's source and tests as a `ToolSpec.files` map (hidden cases removed
        unless asked), the starting point of a mutation."""
        out = {rel: read_stored(self.path / rel) for rel in self.meta["files"]}
        for rel, data in out.items():
            _check(self, rel, data, self.meta["files"][rel])
        if not include_hidden:
            out["tests/cases.json"] = without_hidden(out["tests/cases.json"])
        return out


@dataclass(frozen=True)
class RunResult:
    """A successful call: the JSON the tool printed, and what it cost."""

    tool_id: str
    fingerprint: str
    output: Any
    elapsed_ms: float
    fuel_used: int | None
    stderr: str = ""


# Called with the staged version (before it becomes visible); raise ToolRejected to refuse.
Registrar = Callable[[ToolVersion], None]


class SkillStore:
    """Tools on disk plus the runtimes that build and run them.

    Args:
        root: the store's directory (``tools/`` and, unless `blobs` is given, ``blobs/``).
        blobs: a content-addressed store (the kernel's `rt.blobs` in a workspace).
        runtimes: shared runtimes (one sandbox engine and module cache per process).
        limits: limits for every call and test case.
        registrar: the governance hook (see `governance.py`); None registers directly.
        build_limits: what one build may consume (time, memory, file sizes).
    """

    def __init__(
        self,
        root: Path,
        *,
        blobs: Blobs | None = None,
        runtimes: Runtimes | None = None,
        limits: Limits | None = None,
        registrar: Registrar | None = None,
        policy: SkillPolicy | None = None,
        build_limits: BuildLimits | None = None,
    ) -> None:
        self.root = Path(root)
        self._mkey: bytes | None = None  # the metrics key (see `_metrics_key`)
        self.policy = policy or SkillPolicy()
        self.tools_dir = self.root / "tools"
        self.blobs: Blobs = blobs if blobs is not None else FileBlobStore(self.root / "blobs")
        self.runtimes = runtimes if runtimes is not None else default_runtimes()
        self.limits = limits or Limits()
        self.build_limits = build_limits or BuildLimits()
        self.registrar = registrar
        # In a workspace the kernel state names each tool's current version (see governance).
        self.head_resolver: Callable[[str], str | None] | None = None
        self.tool_lister: Callable[[], builtins.list[str]] | None = None
        # ... and the registered value of that version (its meta.json less the volatile fields).
        self.value_resolver: Callable[[str], dict[str, Any] | None] | None = None
        # ... and for any version: None while a live patch of the ledger committed that value,
        # else why not (rolled back); raises ToolCorrupt for a value it never committed.
        self.ledger_checker: Callable[[str, dict[str, Any]], str | None] | None = None
        self._registered: dict[Path, dict[str, Any]] = {}
        self._runnables: dict[Path, tuple[Built, str, bool, ToolSchemas]] = {}
        self._paths: dict[tuple[str, str], Path] = {}
        self.corrupt: dict[str, str] = {}  # what the last list() left out, and why

    # -- registration -------------------------------------------------------------------

    def add_dir(self, path: Path, parent: str | None = None) -> ToolVersion:
        try:
            spec = load_tool_dir(Path(path))
        except MalformedTool as e:
            raise ToolRejected("malformed", str(e)) from None
        return self.add(spec, parent=parent)

    def add(self, spec: ToolSpec, parent: str | None = None) -> ToolVersion:
        """Build, test (hidden cases included) and register a version.

        `parent` is the fingerprint it was derived from; None means the tool's current head
        (if any). Adding a spec identical to an existing version returns that version.

        An LLM-made child keeps its parent's contract: every parent case is still among its
        cases (hidden ones unchanged); a visible one it expects differently is a change a
        person must approve, as is an LLM-made tool asking for the real clock, and, under the
        ``pending`` policy, one without independent evidence. Such a version carries its
        reasons in meta.json's ``review``; outside a workspace nobody can approve it, so it is
        refused.

        Raises:
            ToolRejected: malformed spec, build failure, failing case, limit hit, broken
                contract; nothing of the candidate is left on disk.
        """
        tool_id = spec.name
        hidden = hidden_character(spec.description)  # new versions only: old ones still read
        if hidden is not None:
            raise ToolRejected("malformed", f"tool {tool_id!r}: {hidden}")
        parent_version = None
        if parent is None:
            parent = self._head(tool_id)
            if parent is not None:
                parent_version = self._find_version(parent)
        else:
            if not _FINGERPRINT.fullmatch(parent):  # a glob pattern and a path component
                raise ToolRejected("malformed", f"parent {parent[:80]!r} is not a version "
                                   f"fingerprint ({FINGERPRINT_CHARS} hex digits)")
            parent_version = self._find_version(parent)
            if parent_version is None:
                raise ToolRejected("malformed", f"parent version {parent} does not exist")
            # a child of a rolled-back version would bring it back as lineage and contract
            self._refuse_rolled_back(parent_version, "may not be a parent: a child of it "
                                     "would bring it back")
        review = self._review_reasons(spec, parent_version)
        schemas = schemas_for(spec.cases(), spec.input_schema, spec.output_schema)
        problems = case_problems(spec.cases(), schemas)
        if problems:  # before the build: a contradiction costs nothing to find
            raise ToolRejected("schema", "; ".join(problems[:3]))
        try:
            built = build(spec, self.runtimes, self.build_limits)
        except BuildFailed as e:
            detail = f"{e}\n{e.output}".strip()
            reason = "jail" if isinstance(e, JailUnavailable) else "build"
            raise ToolRejected(reason, detail) from None
        fingerprint = compute_fingerprint(spec, built)
        existing = self.tools_dir / tool_id / "versions" / fingerprint
        if existing.is_dir():
            version = self._load(existing)
            if self.registrar is not None and self.rolled_back(version) is not None:
                # a rollback undid it: adding it again registers it again, through the gates
                # (returning it as added left the ledger's older version current)
                self.registrar(version)
            return version
        report = run_cases(self.runtimes, spec, built, spec.cases(), self._limits_for(spec))
        report_fail = next((r for r in report if not r.ok), None)
        if report_fail is not None:
            raise ToolRejected(report_fail.reject_reason, report_fail.describe())
        evidence = evidence_of(spec.cases(), spec.origin)
        if spec.origin != "operator" and not evidence.proven(self.policy.min_independent) \
                and self.policy.unproven == "pending":
            review.append(f"no independent evidence: {evidence.independent} independent "
                          f"case(s), {self.policy.min_independent} needed")
        if review and self.registrar is None:
            raise ToolRejected("review", "; ".join(review) + " (this needs a person's approval, "
                               "which only a workspace's `ouro approve` can give)")
        return self._commit(spec, built, fingerprint, parent, report, review, schemas)

    def _review_reasons(self, spec: ToolSpec, parent: ToolVersion | None) -> list[str]:
        """What a person must approve before an LLM-made version may become current."""
        if spec.origin == "operator":
            return []
        reasons = []
        if "clock" in spec.capabilities:
            reasons.append("asks for the real clock (capability 'clock'): its output may "
                           "change with the date")
        if parent is not None:
            try:
                changes = contract_changes(parent.cases(include_hidden=True), spec.cases())
            except ContractBroken as e:
                raise ToolRejected("contract", str(e)) from None
            reasons += [c.describe() for c in changes]
        return reasons

    def _limits_for(self, spec_or_meta: ToolSpec | dict[str, Any]) -> Limits:
        caps = (spec_or_meta.capabilities if isinstance(spec_or_meta, ToolSpec)
                else spec_or_meta.get("capabilities") or ())
        return replace(self.limits, real_clock=True) if "clock" in caps else self.limits

    def _commit(
        self,
        spec: ToolSpec,
        built: Built,
        fingerprint: str,
        parent: str | None,
        report: list[CaseResult],
        review: builtins.list[str] | None = None,
        schemas: ToolSchemas | None = None,
    ) -> ToolVersion:
        staging_root = self.tools_dir / ".staging"
        # what a killed add left there; a stage is locked while its add is alive
        sweep_scratch(staging_root, "")
        with scratch_dir(staging_root, f"{spec.name}-") as stage:
            file_hashes: dict[str, str] = {}
            for rel, data in sorted(spec.files.items()):
                target = stage / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                file_hashes[rel] = blob_hash(data)
            wasm_hash = None
            if built.wasm is not None:
                (stage / "tool.wasm").write_bytes(built.wasm)
                wasm_hash = blob_hash(built.wasm)
            hidden = sum(1 for c in spec.cases() if c.hidden)
            meta: dict[str, Any] = {
                "tool_id": spec.name,
                "name": spec.name,
                "fingerprint": fingerprint,
                "parent": parent,
                "description": spec.description,
                "language": spec.language,
                "runtime": built.runtime,
                "runtime_version": built.runtime_version,
                "interpreter": built.runtime_digest or None,
                "source": spec.source_path,
                "files": file_hashes,
                "wasm": wasm_hash,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "tests": {
                    "passed": sum(1 for r in report if r.ok),
                    "failed": sum(1 for r in report if not r.ok),
                    "total": len(report),
                    "hidden": hidden,
                },
                "metrics": metrics_mod.signed_empty(self._metrics_key(),
                                                    f"{spec.name}@{fingerprint}"),
                "embedding_model": None,
                "origin": spec.origin,
                "capabilities": sorted(spec.capabilities),
                "evidence": evidence_of(spec.cases(), spec.origin).to_json(),
                "review": {"reasons": review} if review else None,
                **(schemas or schemas_for(spec.cases(), spec.input_schema,
                                          spec.output_schema)).to_meta(),
            }
            write_json(stage / "meta.json", meta)
            staged = self._version_from(stage, meta)
            if self.registrar is not None:
                self.registrar(staged)
            for data in spec.files.values():
                self.blobs.put(data)
            if built.wasm is not None:
                self.blobs.put(built.wasm)
            final = self.tools_dir / spec.name / "versions" / fingerprint
            final.parent.mkdir(parents=True, exist_ok=True)
            if not final.is_dir():  # the kernel's effect may have installed it already
                try:
                    os.replace(stage, final)
                except OSError:
                    if not final.is_dir():  # not a concurrent writer of the same version
                        raise
            write_text(self.tools_dir / spec.name / "HEAD", fingerprint)
            return self._version_from(final, meta)

    # -- reading ------------------------------------------------------------------------

    def _locate(self, tool_id: str, fingerprint: str | None) -> tuple[str, Path]:
        """The fingerprint (the current one unless given) and directory of a version."""
        if not NAME_RE.fullmatch(tool_id):
            raise ToolNotFound(f"no tool {tool_id[:80]!r}: names are lowercase letters, "
                               "digits, _")
        if fingerprint is not None and not _FINGERPRINT.fullmatch(fingerprint):
            # It becomes a path component: "../x" must not reach outside the tool.
            raise ToolNotFound(f"no version {fingerprint[:80]!r}: versions are "
                               f"{FINGERPRINT_CHARS} hex digits")
        fp = fingerprint or self._head(tool_id)
        if fp is None:
            raise ToolNotFound(f"no tool {tool_id!r}: `ouro tool list` shows what exists")
        path = self._paths.get((tool_id, fp))
        if path is None:  # versions are immutable: one Path per version, not per call
            if len(self._paths) >= 4096:
                self._paths.clear()
            path = self._paths[(tool_id, fp)] = self.tools_dir / tool_id / "versions" / fp
        return fp, path

    def get(self, tool_id: str, fingerprint: str | None = None) -> ToolVersion:
        fp, path = self._locate(tool_id, fingerprint)
        if not path.is_dir():
            raise ToolNotFound(f"tool {tool_id!r} has no version {fp}")
        version = self._load(path)
        self._check_meta(version, tool_id, fp)
        return version

    def _check_meta(self, version: ToolVersion, tool_id: str, fingerprint: str) -> None:
        """meta.json must describe the version it sits in: its hashes and fields give back the
        folder's fingerprint, and in a workspace its fixed fields are the value the ledger
        committed for that version (the current value, or for an older version one a patch
        left on the tool's target: parent, evidence, review and origin decide lineage and
        what is served).

        Raises:
            ToolCorrupt: meta.json was edited on disk after registration.
        """
        meta = version.meta
        try:
            same = (meta.get("tool_id") == tool_id and meta.get("fingerprint") == fingerprint
                    and meta_fingerprint(meta) == fingerprint)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidPatch):
            same = False  # InvalidPatch: NaN, a huge integer or a lone surrogate (no JCS)
        if same and self.value_resolver is not None:
            registered = {k: v for k, v in meta.items() if k not in MUTABLE_META}
            value = self.value_resolver(tool_id)
            if value is not None and value.get("fingerprint") == fingerprint:
                same = registered == value
            elif self.ledger_checker is not None:
                self.ledger_checker(tool_id, registered)  # raises ToolCorrupt if never committed
        if not same:
            raise ToolCorrupt(
                f"{tool_id}@{fingerprint}: meta.json does not match the registered version; "
                "it was changed on disk after registration (restore it from the blobs)")

    def list(self) -> list[ToolVersion]:
        """The current version of every tool, by name; one whose files or meta.json were
        edited on disk is left out and named in `corrupt` (tool id → the reason)."""
        if self.tool_lister is not None:
            names = self.tool_lister()
        elif self.tools_dir.is_dir():
            names = [d.name for d in self.tools_dir.iterdir() if not d.name.startswith(".")]
        else:
            names = []
        found, corrupt = [], {}
        for name in sorted(names):
            try:
                if self._head(name) is None:
                    continue
                found.append(self.get(name))
            except ToolCorrupt as e:  # never listed, so never served; get() names it
                corrupt[name] = str(e)
        self.corrupt = corrupt
        return found

    def versions(self, tool_id: str) -> builtins.list[ToolVersion]:
        """Every version of a tool, oldest first."""
        base = self.tools_dir / tool_id / "versions"
        if not base.is_dir():
            raise ToolNotFound(f"no tool {tool_id!r}")
        found = [self._load(p) for p in base.iterdir()
                 if p.is_dir() and _FINGERPRINT.fullmatch(p.name)]  # not an install under way
        for v in found:  # an old version's lineage and evidence are the ledger's too
            self._check_meta(v, tool_id, v.path.name)
        return sorted(found, key=lambda v: (v.meta["created"], v.fingerprint))

    def lineage(
        self, tool_id: str, fingerprint: str | None = None
    ) -> builtins.list[ToolVersion]:
        """The chain from the first ancestor to the given (default: current) version. Parents
        may belong to other tools (a specialisation made under a new name)."""
        chain = [self.get(tool_id, fingerprint)]
        seen = {chain[0].fingerprint}
        while chain[-1].parent is not None and chain[-1].parent not in seen:
            parent = self._find_version(chain[-1].parent)
            if parent is None:
                break
            chain.append(parent)
            seen.add(parent.fingerprint)
        return list(reversed(chain))

    # -- running ------------------------------------------------------------------------

    def run(
        self, tool_id: str, input: Any, fingerprint: str | None = None,
        limits: Limits | None = None, *, record: bool = True,
    ) -> RunResult:
        """Call a tool with one JSON value and return the JSON it printed.

        The input is validated against the version's input schema first (`InputRejected`,
        not counted as a use: the tool never ran), the output against its output schema
        (`OutputRejected`, a failure of the tool).

        Raises:
            ToolNotFound; a `SandboxError` subclass (limit hit, crash, non-zero exit, output
            that is not JSON or does not fit the schema). Either way the call is counted in
            the version's metrics, unless `record` is False (a reference consulted while
            judging another tool is not a use of it).
        """
        from .testing import call_tool

        fp, path, built, source, real_clock, schemas = self._runnable(tool_id, fingerprint)
        if fingerprint is not None and self.ledger_checker is not None \
                and self._head(tool_id) != fp:
            why = self.ledger_checker(tool_id, self._registered[path])
            if why is not None:
                raise _rolled_back(tool_id, fp, why, "is not run")
        refused = schema_problems(schemas.input, input)
        if refused:
            raise InputRejected(f"the input does not fit {tool_id}'s input schema: "
                                f"{refused[0]} (see `ouro tool describe {tool_id}`)")
        start = time.perf_counter()
        version_limits = limits or (replace(self.limits, real_clock=True) if real_clock
                                    else self.limits)
        # An OpenTelemetry span (a no-op until an interface installs a provider).
        with tracing.span("ouroboros.skills", "ouro.tool.run", attributes={
                "ouro.tool": tool_id, "ouro.fingerprint": fp}) as span:
            if not record:
                span.set_attribute("ouro.reference", True)
            try:
                output, execution = call_tool(
                    self.runtimes, built, source, input, version_limits
                )
                wrong = schema_problems(schemas.output, output)
                if wrong:
                    raise OutputRejected(f"{tool_id} printed output that does not fit its "
                                         f"output schema: {wrong[0]}")
            except SandboxError as e:
                span.set_attribute("ouro.error_code", type(e).__name__)
                if record:
                    metrics_mod.append(path, ok=False,
                                       elapsed_ms=(time.perf_counter() - start) * 1000,
                                       key=self._metrics_key())
                raise
        elapsed_ms = (time.perf_counter() - start) * 1000
        if record:
            metrics_mod.append(path, ok=True, elapsed_ms=elapsed_ms, key=self._metrics_key())
        return RunResult(
            tool_id=tool_id,
            fingerprint=fp,
            output=output,
            elapsed_ms=elapsed_ms,
            fuel_used=execution.fuel_used,
            stderr=execution.stderr.decode("utf-8", "replace"),
        )

    def test(self, tool_id: str, fingerprint: str | None = None) -> TestReport:
        """Re-run every case (hidden ones too) against the stored version."""
        batch = self.test_batch(tool_id, fingerprint)
        return TestReport(batch.tool_id, batch.fingerprint, run_batch(batch, self.runtimes))

    def test_batch(self, tool_id: str, fingerprint: str | None = None) -> TestBatch:
        """Every case of the stored version (hidden ones too), ready to run elsewhere; the
        module and source are checked against their recorded hashes first.

        Raises:
            ToolNotFound, ToolCorrupt.
        """
        version = self.get(tool_id, fingerprint)
        if fingerprint is not None:  # a passing report must not vouch for an undone version
            self._refuse_rolled_back(version, "is not tested")
        spec = self.spec_of(version, include_hidden=True)
        built = self._built_of(version)
        source = spec.files[spec.source_path].decode("utf-8", "replace")
        return TestBatch(version.tool_id, version.fingerprint, built, source,
                         tuple(spec.cases()), self._limits_for(version.meta))

    def rolled_back(self, version: ToolVersion) -> str | None:
        """Why the ledger no longer has this version applied (``rolled back at ledger seq
        N``), or None while it does; always None outside a workspace.

        Raises:
            ToolCorrupt: its meta.json is no value the ledger ever committed.
        """
        if self.ledger_checker is None or self._head(version.tool_id) == version.fingerprint:
            return None
        return self.ledger_checker(version.tool_id, {k: v for k, v in version.meta.items()
                                                     if k not in MUTABLE_META})

    def _refuse_rolled_back(self, version: ToolVersion, doing: str) -> None:
        why = self.rolled_back(version)
        if why is not None:
            raise _rolled_back(version.tool_id, version.fingerprint, why, doing)

    def spec_of(self, version: ToolVersion, include_hidden: bool = False) -> ToolSpec:
        runtime = version.runtime if version.runtime == "micropython" else None
        return ToolSpec(
            name=version.tool_id,
            description=version.description,
            language=version.language,
            files=version.files(include_hidden=include_hidden),
            runtime=runtime,
            origin=str(version.meta.get("origin") or "operator"),
            capabilities=tuple(version.meta.get("capabilities") or ()),
            input_schema=declared(version.meta)[0],
            output_schema=declared(version.meta)[1],
        )

    def schemas(self, version: ToolVersion) -> ToolSchemas:
        """The input and output schemas a version runs under (recorded, else inferred)."""
        return schemas_of(version.meta, version.cases(include_hidden=True))

    def set_embedding(self, tool_id: str, fingerprint: str, vector: bytes, model: str) -> None:
        """Attach a description embedding (retrieval side); the model id goes in meta.json."""
        version = self.get(tool_id, fingerprint)
        write_bytes(version.path / "embedding.vec", vector)
        self._update_meta(version, {"embedding_model": model})

    # -- internals ----------------------------------------------------------------------

    def _runnable(
        self, tool_id: str, fingerprint: str | None
    ) -> tuple[str, Path, Built, str, bool, ToolSchemas]:
        """What a call needs, cached per version: versions are immutable, so a warm call
        reads only HEAD from disk."""
        fp, path = self._locate(tool_id, fingerprint)
        cached = self._runnables.get(path)
        if cached is None:
            version = self.get(tool_id, fp)
            self._registered[path] = {k: v for k, v in version.meta.items()
                                      if k not in MUTABLE_META}
            cached = (self._built_of(version), version.source,
                      "clock" in (version.meta.get("capabilities") or ()),
                      self.schemas(version))
            self._runnables[path] = cached
        return fp, path, *cached

    def _built_of(self, version: ToolVersion) -> Built:
        """The version's module, checked against its recorded hash (and its source file,
        checked too), so a file edited on disk after registration is never run."""
        wasm = None
        if version.meta.get("wasm"):
            wasm_path = version.path / "tool.wasm"
            wasm = read_stored(wasm_path) if wasm_path.is_file() else self.blobs.get(
                version.meta["wasm"]
            )
            _check(version, "tool.wasm", wasm, version.meta["wasm"])
        source = version.meta["source"]
        _check(version, source, read_stored(version.path / source), version.meta["files"][source])
        return Built(
            version.runtime,
            version.meta.get("runtime_version", ""),
            version.meta.get("interpreter") or "",
            wasm,
        )

    def _update_meta(self, version: ToolVersion, changes: dict[str, Any]) -> None:
        if not set(changes) <= MUTABLE_META:
            raise ValueError(f"only {sorted(MUTABLE_META)} may change after registration")
        with metrics_mod.locked(version.path):
            meta = read_meta(version.path / "meta.json")
            meta.update(changes)
            write_json(version.path / "meta.json", meta)

    def _head(self, tool_id: str) -> str | None:
        if self.head_resolver is not None:
            return self.head_resolver(tool_id)
        head = self.tools_dir / tool_id / "HEAD"
        return read_stored(head, 4096).decode("ascii", "replace").strip() if head.is_file() else None

    def _find_version(self, fingerprint: str) -> ToolVersion | None:
        if not self.tools_dir.is_dir() or not _FINGERPRINT.fullmatch(fingerprint):
            return None
        for path in self.tools_dir.glob(f"*/versions/{fingerprint}"):
            if path.is_dir():  # a parent judges its child: its meta.json must be genuine
                version = self._load(path)
                self._check_meta(version, path.parent.parent.name, fingerprint)
                return version
        return None

    def _metrics_key(self) -> bytes:
        """The key of the runtime's own call records (see `metrics`): uses only it wrote
        count, for the listing and for `promote_after_uses`."""
        key = self._mkey
        if key is None:  # once per store: a warm call builds no Path for it
            key = self._mkey = metrics_mod.key_of(self.root)
        return key

    def _load(self, path: Path) -> ToolVersion:
        key, bound = self._metrics_key(), metrics_mod.who(path)
        meta = read_meta(path / "meta.json")
        if (path / metrics_mod.LOG).is_file() or \
                metrics_mod.trusted(key, bound, meta.get("metrics")) is None:
            # fold the calls; metrics without the runtime's MAC (edited, or from before
            # keys) start over, counting only calls made from now on
            meta = metrics_mod.fold(path, write_json, key)
        meta["metrics"] = metrics_mod.trusted(key, bound, meta.get("metrics")) \
            or metrics_mod.untrusted()
        return self._version_from(path, meta)

    @staticmethod
    def _version_from(path: Path, meta: dict[str, Any]) -> ToolVersion:
        wrong = [k for k in _REQUIRED_META if not isinstance(meta.get(k), str)]
        if wrong:  # not a meta.json the runtime wrote (a planted or truncated file)
            raise ToolCorrupt(f"{path / 'meta.json'} lacks {', '.join(wrong)}; restore it or "
                              "remove the version")
        return ToolVersion(
            tool_id=meta["tool_id"],
            fingerprint=meta["fingerprint"],
            parent=meta.get("parent"),
            description=meta["description"],
            language=meta["language"],
            runtime=meta["runtime"],
            path=path,
            meta=meta,
        )


_REQUIRED_META = ("tool_id", "fingerprint", "description", "language", "runtime")


def _rolled_back(tool_id: str, fingerprint: str, why: str, doing: str) -> ToolRolledBack:
    return ToolRolledBack(
        f"{tool_id}@{fingerprint} was {why}: the ledger no longer has it applied, so it "
        f"{doing} (`ouro tool describe {tool_id}` shows the current version)")


def _check(version: ToolVersion, name: str, data: bytes, digest: str) -> None:
    if blob_hash(data) != digest:
        raise ToolCorrupt(
            f"{version.tool_id}@{version.fingerprint}: {name} does not match its recorded hash "
            f"{digest}; it was changed on disk after registration (restore it from the blobs)"
        )
