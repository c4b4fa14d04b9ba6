"""``ouro tool``: add, run, list, describe and test skills in the workspace.

Mounted by main.py as ``ouro tool``; search/create/mutate live in the retrieval module.
Exit codes: 0 ok, 1 the tool failed or hit a limit, 2 usage (bad JSON, unknown tool),
3 rejected (build, tests, limits or a kernel gate), 4 waiting for approval.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from ouroboros.capabilities.skills import (
    InputRejected,
    SandboxError,
    SkillStore,
    ToolCorrupt,
    ToolNotFound,
    ToolRejected,
    ToolRolledBack,
    ToolVersion,
)
from ouroboros.capabilities.skills.governance import ToolPending, open_store
from ouroboros.interfaces.cli.errors import CliError, not_found
from ouroboros.interfaces.cli.executors import ExecutorKind, ExecutorOption, RayAddressOption
from ouroboros.interfaces.cli.inputs import read_bytes, require_dir
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    printable,
    working,
)
from ouroboros.interfaces.json_input import loads_strict
from ouroboros.kernel import Runtime
from ouroboros.storage.files import read_json_file, replace_file

app = typer.Typer(name="tool", cls=OuroGroup, help="Versioned WASM tools: add, run, list, describe, test, "
                  "search.", no_args_is_help=True)

VersionOption = typer.Option(None, "--version", metavar="FINGERPRINT",
                             help="A specific version (default: the current one).")


def _store(home: Path | None) -> tuple[Runtime, SkillStore]:
    # open_store registers the skill patch type; the other capabilities are not needed.
    # Without them no tracer provider is installed: the runs' spans go to the workspace's
    # spool, which its telemetry store takes on its next read (docs/telemetry.md).
    from ouroboros.capabilities import tracing

    rt = open_runtime(home, capabilities=False)
    tracing.spool_to(rt.home)
    return rt, open_store(rt)


def _fail(message: str, code: int, hint: str = "") -> NoReturn:
    raise CliError(message, hint, exit_code=code)


def _get(store: SkillStore, tool_id: str, fingerprint: str | None = None) -> ToolVersion:
    try:
        return store.get(tool_id, fingerprint)
    except ToolNotFound as e:
        raise not_found(str(e), "list tools with `ouro tool list`") from None


#: Rough first-build times (s) when this workspace has none recorded: compiling the
#: CPython snapshot is the slow case (docs/BENCHMARKS.md, "The CLI").
_FIRST_BUILD_S = {"cpython": 150.0, "c": 60.0, "zig": 60.0, "rust": 30.0}


def _build_estimate(store: SkillStore, directory: Path) -> tuple[str, float | None]:
    """What kind of build this is and how long the last one of that kind took."""
    try:  # the staged folder's meta.json: a few KiB (see skills/stored.py for the bound)
        meta = read_json_file(directory / "meta.json", 16 << 20) or {}
        language = str(meta.get("language", "?"))
        runtime = str(meta.get("runtime") or ("cpython" if language == "python" else language))
    except (OSError, ValueError, AttributeError):
        return "?", None
    times = _build_times(store)
    if runtime in times:
        return runtime, times[runtime]
    if runtime == "cpython":
        from ouroboros.capabilities.skills.runtimes import cpython_ready

        return runtime, None if cpython_ready() else _FIRST_BUILD_S["cpython"]
    return runtime, _FIRST_BUILD_S.get(runtime)


def _build_times(store: SkillStore) -> dict[str, float]:
    try:  # a few dozen bytes; anything else (a link, FIFO, huge, torn) is no estimate
        data = read_json_file(store.root / "build-times.json", 1 << 20)
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError, TypeError):
        return {}


def _record_build_time(store: SkillStore, runtime: str, seconds: float) -> None:
    times = _build_times(store)
    times[runtime] = round(seconds, 1)
    with contextlib.suppress(OSError):  # only an estimate; renamed over, never through a link
        replace_file(store.root / "build-times.json", json.dumps(times, sort_keys=True) + "\n")


def summary(v: ToolVersion) -> dict[str, Any]:
    """The JSON shape of a version in `list` and `describe` (hidden cases never shown)."""
    m = v.meta.get("metrics") or {}
    return {
        "tool_id": v.tool_id,
        "fingerprint": v.fingerprint,
        "parent": v.parent,
        "description": v.description,
        "language": v.language,
        "runtime": v.runtime,
        "runtime_version": v.meta.get("runtime_version"),
        "interpreter": v.meta.get("interpreter"),
        "wasm": v.meta.get("wasm"),
        "created": v.meta.get("created"),
        "tests": v.meta.get("tests"),
        "metrics": {k: m.get(k) for k in ("uses", "failures", "p50_ms", "p95_ms", "last_used",
                                          "rejected")},
        "embedding_model": v.meta.get("embedding_model"),
        "origin": v.meta.get("origin") or "operator",
        "capabilities": v.meta.get("capabilities") or [],
        "evidence": v.meta.get("evidence"),
        "review": v.meta.get("review"),
        "path": str(v.path),
    }


def with_status(store: SkillStore, v: ToolVersion) -> dict[str, Any]:
    """`summary` plus whether solve and search serve it (see docs/skills.md, Evidence)."""
    from ouroboros.capabilities.skills.serving import status

    return {**summary(v), "status": status(store, v)}


def describe_status(store: SkillStore, v: ToolVersion) -> dict[str, Any]:
    """`with_status` for one version asked for by name: a version a rollback undid is
    status ``rolled_back`` and ``rolled_back`` says when (None while the ledger has it)."""
    info = with_status(store, v)
    info["rolled_back"] = store.rolled_back(v)
    if info["rolled_back"] is not None:
        info["status"] = "rolled_back"
    return info


def rolled_back(e: ToolRolledBack) -> CliError:
    return CliError(str(e), "`ouro ledger log` shows the rollback; add the version again to "
                    "bring it back", exit_code=2, code="rolled_back")


@app.command("add")
def add_cmd(
    directory: Path = typer.Argument(..., help="Tool directory: meta.json, src/, tests/."),
    parent: str = typer.Option(None, "--parent", metavar="FINGERPRINT",
                               help="Fingerprint it derives from (default: the current "
                                    "version)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Build a tool, run its tests (hidden ones too) and register it by a skill patch."""
    if parent is not None and not re.fullmatch(r"[0-9a-f]{16}", parent):
        raise CliError(f"--parent {parent[:80]!r} is not a version fingerprint (16 hex digits)",
                       "`ouro tool describe NAME` shows its lineage")
    require_dir(directory, "tool directory")
    _, store = _store(home)
    runtime, estimate = _build_estimate(store, directory)
    started = time.monotonic()
    try:
        with working(f"building and testing {directory.name} ({runtime})", estimate):
            v = store.add_dir(directory, parent=parent)
        _record_build_time(store, runtime, time.monotonic() - started)
    except ToolRolledBack as e:  # --parent: a child would resurrect an undone version
        raise rolled_back(e) from None
    except ToolRejected as e:
        if as_json:
            print_json({"status": "rejected", "reason": e.reason, "detail": e.detail})
            raise typer.Exit(3) from None
        _fail(f"rejected ({e.reason}): {e.detail}", 3,
              "fix the tool and add it again; nothing was registered")
    except ToolPending as e:
        if as_json:
            print_json({"status": "pending", "patch_hash": e.patch_hash, "detail": str(e)})
            raise typer.Exit(4) from None
        _fail(str(e), 4, f"approve with: ouro approve {e.patch_hash[7:19]}")
    if as_json:
        print_json({"status": "applied", **summary(v)})
        return
    tests = v.meta["tests"]
    console.print(f"[green]added[/green] {v.tool_id}@{v.fingerprint} ({v.language} on "
                  f"{v.runtime}); {tests['passed']}/{tests['total']} cases passed, "
                  f"{tests['hidden']} hidden")


@app.command("run")
def run_cmd(
    tool_id: str = typer.Argument(..., help="Tool id."),
    input_json: str = typer.Option(None, "--input", "-i", metavar="JSON",
                                   help="Input as JSON (default: read stdin)."),
    fingerprint: str = VersionOption,
    fuel: int = typer.Option(None, "--fuel", min=1, help="Instruction budget (WASM tools)."),
    deadline: float = typer.Option(None, "--deadline", min=0.001, max=3600.0,
                                   help="Wall-clock seconds."),
    memory_mib: int = typer.Option(None, "--memory", min=1, max=4096, help="Memory cap in MiB."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Run a tool in the sandbox on one JSON input and print its JSON output."""
    if input_json is not None:
        value = loads_strict(input_json, "--input")
    else:
        value = loads_strict(read_bytes("-", "the input"), "the input on stdin")
    _, store = _store(home)
    try:
        limits = dataclasses.replace(
            store.limits,
            fuel=fuel if fuel is not None else store.limits.fuel,
            deadline_s=deadline if deadline is not None else store.limits.deadline_s,
            memory_bytes=memory_mib << 20 if memory_mib is not None else store.limits.memory_bytes,
        )
        result = store.run(tool_id, value, fingerprint=fingerprint, limits=limits)
    except InputRejected as e:  # the caller's input, refused before the tool ran
        raise CliError(str(e), "the tool's input schema is in `ouro tool describe "
                       f"{tool_id} --json`", exit_code=2, code="usage") from None
    except SandboxError as e:
        raise CliError(f"{tool_id} failed: {type(e).__name__}: {e}", exit_code=1,
                       code="failure", details={"kind": type(e).__name__,
                                                "tool_id": tool_id}) from None
    except ToolRolledBack as e:
        raise rolled_back(e) from None
    except ToolNotFound as e:  # one lookup: the run itself finds the version
        raise not_found(str(e), "list tools with `ouro tool list`") from None
    except ToolCorrupt as e:
        raise CliError(str(e), "delete that version directory: the workspace reinstalls it "
                       "from its blobs", exit_code=1, code="integrity") from None
    from ouroboros.capabilities.skills.retrieval.feedback import credit_run

    credit_run(store.root / "index", tool_id)  # retrieval learns which tool served a search
    if as_json:
        print_json({"ok": True, "tool_id": result.tool_id, "fingerprint": result.fingerprint,
                    "output": result.output, "elapsed_ms": round(result.elapsed_ms, 3),
                    "fuel_used": result.fuel_used})
    else:
        typer.echo(json.dumps(result.output, ensure_ascii=False))


@app.command("list")
def list_cmd(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Every tool's current version."""
    _, store = _store(home)
    versions = store.list()
    if store.corrupt:  # fail closed: a listing without it would hide the tampering
        raise CliError(next(iter(store.corrupt.values())), "delete that version directory: the workspace reinstalls it "
                       "from its blobs", exit_code=1, code="integrity")
    if as_json:
        print_json([with_status(store, v) for v in versions])
        return
    if not versions:
        console.print("no tools yet: add one with `ouro tool add DIR`")
        return
    table = Table("tool", "version", "runtime", "status", "uses", "p50 ms", "description")
    table.columns[1].no_wrap = True
    table.columns[6].overflow = "fold"
    for v in versions:
        m = v.meta.get("metrics") or {}
        p50 = "-" if m.get("p50_ms") is None else f"{m['p50_ms']:.2f}"
        table.add_row(v.tool_id, v.fingerprint, v.runtime, with_status(store, v)["status"],
                      str(m.get("uses", 0)), p50, Text(printable(v.description)))
    console.print(table)


@app.command("describe")
def describe_cmd(
    tool_id: str = typer.Argument(..., help="Tool id."),
    fingerprint: str = VersionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Metadata, lineage and visible test cases of a tool (hidden cases are never shown)."""
    _, store = _store(home)
    v = _get(store, tool_id, fingerprint)
    info = describe_status(store, v)
    info["lineage"] = [f"{x.tool_id}@{x.fingerprint}" for x in store.lineage(tool_id, fingerprint)]
    info["cases"] = [c.to_json() for c in v.cases(include_hidden=False)]
    info.update(store.schemas(v).to_meta())
    if as_json:
        print_json(info)
        return
    for line in describe_lines(info):
        console.print(line, markup=False)


@app.command("export")
def export_cmd(
    tool_ids: list[str] = typer.Argument(None, metavar="[TOOL]...",
                                         help="Tools to export (default: every served tool)."),
    fmt: Literal["openai", "mcp"] = typer.Option(..., "--format",
                                                 help="openai (function tools) or mcp (Tool)."),
    include_unproven: bool = typer.Option(False, "--all",
                                          help="Include unproven LLM-made tools."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Print tools as OpenAI function definitions or MCP tool definitions (a JSON list)."""
    from ouroboros.capabilities.skills.export import as_mcp, as_openai
    from ouroboros.capabilities.skills.serving import status

    _, store = _store(home)
    if tool_ids:
        versions = [_get(store, t) for t in dict.fromkeys(tool_ids)]
    else:
        versions = [v for v in store.list()
                    if include_unproven or status(store, v) != "unproven"]
    shape = as_openai if fmt == "openai" else as_mcp
    definitions = [shape(v.tool_id, v.description, store.schemas(v)) for v in versions]
    if as_json:
        print_json(definitions)
    else:
        typer.echo(json.dumps(definitions, indent=2, ensure_ascii=False))


@app.command("test")
def test_cmd(
    tool_ids: list[str] = typer.Argument(None, metavar="[TOOL_ID]...",
                                         help="Tool ids (or --all)."),
    fingerprint: str = VersionOption,
    all_tools: bool = typer.Option(False, "--all", help="Test every tool's current version."),
    executor: ExecutorKind = ExecutorOption,
    workers: int | None = typer.Option(None, "--workers", min=1, max=256,
                                       help="Workers for --executor process|ray (default: "
                                            "one per core)."),
    ray_address: str | None = RayAddressOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-run tools' cases (hidden ones included) against their stored binaries.

    One tool prints its report; several (or --all) print one report per tool, and the
    cases run in batches on --executor (process: a pool here; ray: Ray), each batch under
    the same sandbox limits as a call.
    """
    _, store = _store(home)
    ids = list(tool_ids or [])
    if all_tools:
        if ids:
            _fail("give tool ids or --all, not both", 2)
        # a tampered tool is left out of the listing, not out of the test: it fails below
        ids = sorted([v.tool_id for v in store.list()] + list(store.corrupt))
    if not ids and not all_tools:
        _fail("name a tool to test, or pass --all", 2, "list them with `ouro tool list`")
    if fingerprint is not None and len(ids) != 1:
        _fail("--version names one version: give exactly one tool id with it", 2)
    if len(set(ids)) != len(ids):
        _fail("a tool id is given twice", 2)
    for tool_id in ids:
        _get(store, tool_id, fingerprint)
    try:
        if len(ids) == 1 and executor == "local":
            reports = [store.test(ids[0], fingerprint)]
        else:
            reports = _test_many(store, ids, fingerprint, executor, workers, ray_address)
    except ToolRolledBack as e:  # a passing report must not vouch for an undone version
        raise rolled_back(e) from None
    except ToolCorrupt as e:
        raise CliError(str(e), exit_code=1, code="integrity") from None
    passed = all(r.passed for r in reports)
    if as_json:
        if len(reports) == 1 and not all_tools:
            print_json(reports[0].to_json())
        else:
            print_json({"passed": passed, "executor": executor,
                        "tools": [r.to_json() for r in reports]})
    else:
        for report in reports:
            if len(reports) > 1:
                console.print(f"[bold]{report.tool_id}[/bold]@{report.fingerprint}",
                              highlight=False)
            for r in report.results:
                mark = "[green]pass[/green]" if r.ok else "[red]FAIL[/red]"
                console.print(f"{mark} {r.describe()}", highlight=False)
            failed = sum(1 for r in report.results if not r.ok)
            console.print(f"{len(report.results) - failed}/{len(report.results)} passed")
        if not ids:
            console.print("no tools yet: add one with `ouro tool add DIR`")
    if not passed:
        raise typer.Exit(1)


def _test_many(store: SkillStore, ids: list[str], fingerprint: str | None, kind: str,
               workers: int | None, ray_address: str | None) -> list[Any]:
    """Every tool's cases in batches on the executor (closed before returning)."""
    import os

    from ouroboros.capabilities.evolve.executor import make_executor
    from ouroboros.capabilities.skills.bulk_testing import test_tools

    executor = make_executor(kind, workers or os.cpu_count() or 1, ray_address=ray_address)
    try:
        return test_tools(store, ids, executor, fingerprint=fingerprint)
    finally:
        executor.close()


@app.command("prove")
def prove_cmd(
    tool_id: str = typer.Argument(..., help="Tool id."),
    cases: Path = typer.Option(..., "--cases", help="A cases.json written by a person."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Give a tool independent evidence: a new version with your cases added (all must pass).

    An unproven LLM-made tool becomes served once it holds enough independent cases."""
    from ouroboros.capabilities.skills import MalformedTool
    from ouroboros.capabilities.skills.serving import prove

    raw = read_bytes(cases, "--cases file")  # refuses FIFOs, devices, huge files
    _, store = _store(home)
    _get(store, tool_id)
    try:
        v = prove(store, tool_id, raw)
    except MalformedTool as e:
        _fail(str(e), 2, "cases.json is a list of {input, expected|error} objects")
    except ToolRejected as e:
        if as_json:
            print_json({"status": "rejected", "reason": e.reason, "detail": e.detail})
            raise typer.Exit(3) from None
        _fail(f"rejected ({e.reason}): {e.detail}", 3, "nothing was registered")
    except ToolPending as e:
        if as_json:
            print_json({"status": "pending", "patch_hash": e.patch_hash, "detail": str(e)})
            raise typer.Exit(4) from None
        _fail(str(e), 4, f"approve with: ouro approve {e.patch_hash[7:19]}")
    info = with_status(store, v)
    if as_json:
        print_json({"status": "applied", **info})
        return
    console.print(f"[green]proved[/green] {v.tool_id}@{v.fingerprint}: {info['status']} "
                  f"({info['evidence']['independent']} independent cases)", highlight=False)


def _evidence_words(evidence: Any) -> str:
    """``{"cases": {"operator": 7}, "independent": 7}`` as ``cases: 7 by operator;
    independent 7`` (no Python reprs)."""
    if not evidence:
        return "none recorded"
    parts = []
    for key, value in sorted(evidence.items()):
        if isinstance(value, dict):
            by = ", ".join(f"{n} by {who}" for who, n in sorted(value.items())) or "none"
            parts.append(f"{key}: {by}")
        else:
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def describe_lines(info: dict[str, Any]) -> list[str]:
    """`tool describe` as plain lines: words for absent values, no Python reprs."""
    tests = info.get("tests") or {}
    metrics = info.get("metrics") or {}

    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:.2f} ms"

    rows = [
        ("tool", info["tool_id"]), ("version", info["fingerprint"]),
        ("parent", info["parent"] or "none (first version)"),
        ("description", info["description"]),
        ("language", f"{info['language']} on {info['runtime']}"
                     + (f" ({info['runtime_version']})" if info.get("runtime_version") else "")),
        ("created", str(info.get("created") or "-").replace("T", " ")),
        ("lineage", " → ".join(info["lineage"])),
        ("tests", f"{tests.get('passed', 0)}/{tests.get('total', 0)} cases passed, "
                  f"{tests.get('hidden', 0)} hidden"),
        ("uses", f"{metrics.get('uses') or 0} call(s), {metrics.get('failures') or 0} failed; "
                 f"p50 {ms(metrics.get('p50_ms'))}, p95 {ms(metrics.get('p95_ms'))}; last "
                 f"used {str(metrics.get('last_used') or 'never').replace('T', ' ')}"),
        ("status", f"{info['status']} (origin {info['origin']})"),
        *([("ledger", f"{info['rolled_back']}: the ledger no longer has this version "
                            "applied; it is not run, tested or used as a parent")]
          if info.get("rolled_back") else []),
        ("evidence", _evidence_words(info.get("evidence"))),
        *[(what, f"{json.dumps(info[f'{what}_schema'], ensure_ascii=False)} "
                             f"({info['schema_source'][what]})")
          for what in ("input", "output") if f"{what}_schema" in info],
        *([("review", "; ".join(map(str, info["review"])))] if info.get("review") else []),
        ("path", info["path"]),
    ]
    lines = []
    for key, value in rows:
        wrapped = textwrap.wrap(printable(str(value)), 68, break_long_words=False) or [""]
        lines += [f"{key:<12}{wrapped[0]}", *(f"{'':12}{more}" for more in wrapped[1:])]
    return lines


def run_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    """Starter tools added through skill patches, run in the sandbox, then a mutation."""
    from ouroboros.capabilities.skills.demo import skills_demo

    skills_demo(rt, say)
