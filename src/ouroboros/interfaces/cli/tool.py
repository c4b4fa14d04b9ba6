"""``ouro tool``: add, run, list, describe and test skills in the workspace.

Mounted by main.py as ``ouro tool``; search/create/mutate live in the retrieval module.
Exit codes: 0 ok, 1 the tool failed or hit a limit, 2 usage (bad JSON, unknown tool),
3 rejected (build, tests, limits or a kernel gate), 4 waiting for approval.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from ouroboros.capabilities.skills import (
    SandboxError,
    SkillStore,
    ToolCorrupt,
    ToolNotFound,
    ToolRejected,
    ToolVersion,
)
from ouroboros.capabilities.skills.discovery import index_dir
from ouroboros.capabilities.skills.governance import ToolPending, open_store
from ouroboros.capabilities.skills.retrieval.feedback import credit_run
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    err_console,
    open_runtime,
    print_json,
)
from ouroboros.kernel import Runtime

app = typer.Typer(name="tool", help="Versioned WASM tools: add, run, list, describe, test.",
                  no_args_is_help=True)


def _store(home: Path | None) -> tuple[Runtime, SkillStore]:
    rt = open_runtime(home)
    return rt, open_store(rt)


def _fail(message: str, code: int, hint: str = "") -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    if hint:
        err_console.print(f"  hint: {hint}", highlight=False)
    raise typer.Exit(code)


def _get(store: SkillStore, tool_id: str, fingerprint: str | None = None) -> ToolVersion:
    try:
        return store.get(tool_id, fingerprint)
    except ToolNotFound as e:
        _fail(str(e), 2)


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
        "metrics": {k: m.get(k) for k in ("uses", "failures", "p50_ms", "p95_ms", "last_used")},
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


@app.command("add")
def add_cmd(
    directory: Path = typer.Argument(..., help="Tool directory: meta.json, src/, tests/."),
    parent: str = typer.Option(None, "--parent", help="Fingerprint it derives from."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Build a tool, run its tests (hidden ones too) and register it by a skill patch."""
    _, store = _store(home)
    try:
        v = store.add_dir(directory, parent=parent)
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
    input_json: str = typer.Option(None, "--input", "-i",
                                   help="Input as JSON (default: read stdin)."),
    fingerprint: str = typer.Option(None, "--version", help="A specific fingerprint."),
    fuel: int = typer.Option(None, "--fuel", min=1, help="Instruction budget (WASM tools)."),
    deadline: float = typer.Option(None, "--deadline", min=0.001, help="Wall-clock seconds."),
    memory_mib: int = typer.Option(None, "--memory", min=1, help="Memory cap in MiB."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Run a tool in the sandbox on one JSON input and print its JSON output."""
    raw = input_json if input_json is not None else typer.get_text_stream("stdin").read()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        _fail(f"--input is not valid JSON: {e}", 2, "quote it, e.g. --input '{\"a\": 1}'")
    _, store = _store(home)
    _get(store, tool_id, fingerprint)
    try:
        limits = dataclasses.replace(
            store.limits,
            fuel=fuel if fuel is not None else store.limits.fuel,
            deadline_s=deadline if deadline is not None else store.limits.deadline_s,
            memory_bytes=memory_mib << 20 if memory_mib is not None else store.limits.memory_bytes,
        )
        result = store.run(tool_id, value, fingerprint=fingerprint, limits=limits)
    except SandboxError as e:
        if as_json:
            print_json({"ok": False, "error": type(e).__name__, "message": str(e)})
            raise typer.Exit(1) from None
        _fail(f"{tool_id} failed: {type(e).__name__}: {e}", 1)
    except ToolCorrupt as e:
        _fail(str(e), 1, "delete that version directory: the workspace reinstalls it from its blobs")
    credit_run(index_dir(store.root), tool_id)  # retrieval learns which tool served a search
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
    if as_json:
        print_json([with_status(store, v) for v in versions])
        return
    if not versions:
        console.print("no tools yet: add one with `ouro tool add DIR`")
        return
    table = Table("tool", "version", "lang/runtime", "status", "uses", "p50 ms", "description")
    for v in versions:
        m = v.meta.get("metrics") or {}
        p50 = "" if m.get("p50_ms") is None else f"{m['p50_ms']:.2f}"
        table.add_row(v.tool_id, v.fingerprint, f"{v.language}/{v.runtime}",
                      with_status(store, v)["status"], str(m.get("uses", 0)), p50,
                      v.description[:60])
    console.print(table)


@app.command("describe")
def describe_cmd(
    tool_id: str = typer.Argument(..., help="Tool id."),
    fingerprint: str = typer.Option(None, "--version", help="A specific fingerprint."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Metadata, lineage and visible test cases of a tool (hidden cases are never shown)."""
    _, store = _store(home)
    v = _get(store, tool_id, fingerprint)
    info = with_status(store, v)
    info["lineage"] = [f"{x.tool_id}@{x.fingerprint}" for x in store.lineage(tool_id, fingerprint)]
    info["cases"] = [c.to_json() for c in v.cases(include_hidden=False)]
    if as_json:
        print_json(info)
        return
    for key in ("tool_id", "fingerprint", "parent", "description", "language", "runtime",
                "runtime_version", "created", "path"):
        console.print(f"[bold]{key}[/bold]: {info[key]}", highlight=False)
    console.print(f"[bold]lineage[/bold]: {' → '.join(info['lineage'])}", highlight=False)
    console.print(f"[bold]tests[/bold]: {info['tests']}", highlight=False)
    console.print(f"[bold]status[/bold]: {info['status']} (origin {info['origin']}; "
                  f"evidence {info['evidence']})", highlight=False)
    if info["review"]:
        console.print(f"[bold]review[/bold]: {info['review']}", highlight=False)
    console.print(f"[bold]metrics[/bold]: {info['metrics']}", highlight=False)


@app.command("test")
def test_cmd(
    tool_id: str = typer.Argument(..., help="Tool id."),
    fingerprint: str = typer.Option(None, "--version", help="A specific fingerprint."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-run a tool's cases (hidden ones included) against its stored binary."""
    _, store = _store(home)
    _get(store, tool_id, fingerprint)
    try:
        report = store.test(tool_id, fingerprint)
    except ToolCorrupt as e:
        _fail(str(e), 1)
    if as_json:
        print_json(report.to_json())
    else:
        for r in report.results:
            mark = "[green]pass[/green]" if r.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {r.describe()}", highlight=False)
        failed = sum(1 for r in report.results if not r.ok)
        console.print(f"{len(report.results) - failed}/{len(report.results)} passed")
    if not report.passed:
        raise typer.Exit(1)


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

    try:
        raw = cases.read_bytes()
    except OSError as e:
        _fail(f"cannot read {cases}: {e.strerror}", 2)
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


def run_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    """Starter tools added through skill patches, run in the sandbox, then a mutation."""
    from ouroboros.capabilities.skills.demo import skills_demo

    skills_demo(rt, say)
