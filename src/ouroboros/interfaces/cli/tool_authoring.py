"""``ouro tool search | create | mutate | solve | stats | history``: finding and authoring tools.

Mounted on the ``ouro tool`` app by `register(tool_app)`. Search works offline on any
workspace; create, mutate and solve need an OpenAI-compatible endpoint (OURO_LLM_BASE_URL,
OURO_LLM_MODEL, OURO_LLM_API_KEY or the workspace's ``config/skills/llm`` value) and say so
with exit 1 when there is none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.errors import SkillError
from ouroboros.capabilities.skills.governance import ToolPending, open_store
from ouroboros.capabilities.skills.llm import LLMError, LLMNotConfigured
from ouroboros.capabilities.skills.prompts import DEFAULT_MAX_REPAIRS
from ouroboros.interfaces.cli.output import (
    HomeOption,
    JsonOption,
    console,
    open_runtime,
    print_json,
    printable,
)
from ouroboros.kernel import OuroError, Runtime

if TYPE_CHECKING:
    # Retrieval (numpy, bm25s, the embedding model) is imported by the commands that
    # search: `ouro tool run` and `ouro tool list` load this module too.
    from ouroboros.capabilities.skills.authoring import ToolAuthor
    from ouroboros.capabilities.skills.retrieval import SkillIndex

LLM_CONFIG_TARGET = "config/skills/llm"


class CommandFailed(OuroError):
    """A command error with an explicit exit code (1 failure, 2 usage, 3 rejected)."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


#: How commands get the store from a runtime (the governed workspace store by default).
store_for: Callable[[Runtime], SkillStore] = open_store


def _open(home: Path | None) -> tuple[Runtime, SkillStore, SkillIndex]:
    from ouroboros.capabilities.skills.discovery import open_index, sync_index

    rt = open_runtime(home)
    store = store_for(rt)
    index = open_index(store)
    sync_index(store, index)
    return rt, store, index


def author_for(rt: Runtime, store: SkillStore, index: SkillIndex, repairs: int) -> ToolAuthor:
    """The LLM tool author of ``tool create|mutate|solve`` (the MCP server uses it too).

    Raises:
        CommandFailed: no LLM endpoint is configured, or its configuration is invalid.
    """
    from ouroboros.capabilities.skills.authoring import ToolAuthor
    from ouroboros.capabilities.skills.discovery import index_version
    from ouroboros.capabilities.skills.llm import provider_from_config

    config = rt.value(LLM_CONFIG_TARGET)
    try:
        provider = provider_from_config(config if isinstance(config, dict) else None)
    except LLMNotConfigured as e:
        raise CommandFailed(
            "create, mutate and solve need an LLM endpoint, and none is configured",
            hint=f"set OURO_LLM_BASE_URL and OURO_LLM_MODEL (missing: {', '.join(e.missing)}); "
                 "hand-written tools still work with `ouro tool add DIR`",
        ) from None
    except LLMError as e:
        raise CommandFailed(str(e), exit_code=2) from None

    from ouroboros.capabilities.skills.retrieval.synthetic import generate, save_synthetic

    def accepted(version: Any) -> None:
        try:  # example requests make the new tool findable in users' words
            queries = generate(provider, version)
        except LLMError:
            queries = []
        if queries:
            save_synthetic(index.root, version.tool_id, version.fingerprint, provider.model,
                           queries)
        index_version(store, index, version)

    return ToolAuthor(store, provider, max_repairs=repairs, on_accepted=accepted)


def _version_json(store: SkillStore, v: Any, attempts: int) -> dict[str, Any]:
    from ouroboros.capabilities.skills.serving import status

    return {"id": v.tool_id, "fingerprint": v.fingerprint, "parent": v.parent,
            "description": v.description, "language": v.language, "attempts": attempts,
            "status": status(store, v), "evidence": v.meta.get("evidence")}


def search(
    query: str = typer.Argument(..., help="What the tool should do, in plain words."),
    k: int = typer.Option(5, "-k", min=1, max=1000, help="How many tools to return."),
    mode: Literal["full", "deep", "fast", "fused", "dense", "bm25"] = typer.Option(
        "full", "--mode", help="full (default: static + BM25 + past use, e5 re-ranks when "
                               "they are unsure), deep (e5 always re-ranks), fast (no "
                               "transformer), fused, dense or bm25."),
    include_unproven: bool = typer.Option(
        False, "--all", help="Include unproven LLM-made tools (not served by default)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Find tools by meaning: static embeddings and BM25, e5 re-ranking (served tools only)."""
    from ouroboros.capabilities.skills.retrieval import MODES
    from ouroboros.capabilities.skills.serving import search_served

    if mode not in MODES:
        raise CommandFailed(f"unknown mode {mode!r}",
                            hint="use full, deep, fast, fused, dense or bm25", exit_code=2)
    if k < 1 or not query.strip():
        raise CommandFailed("the query must be non-empty and -k at least 1", exit_code=2)
    _, store, index = _open(home)
    hits = search_served(store, index, query, k=k, mode=mode,
                         include_unproven=include_unproven)
    index.remember(query, hits)  # a successful `ouro tool run` of a hit credits this search
    if as_json:
        print_json({"query": query, "mode": mode, "model": index.model_id,
                    "semantic_model": index.semantic_model(mode),
                    "results": [h.to_json() for h in hits]})
        return
    if not hits:
        console.print("no tools yet: add one with `ouro tool add DIR`")
        return
    for rank, h in enumerate(hits, start=1):
        desc = h.text.split(": ", 1)[-1]
        ranks = f"({_ranks(h)})" if mode == "fused" else ""
        console.print(f"{rank}. [bold]{h.tool_id}[/bold]  {ranks}", highlight=False)
        console.print(f"   {printable(desc)}", markup=False)
    if mode == "fused":
        console.print("ranked by reciprocal rank fusion of the dense (embedding) and BM25 "
                      "(word) rankings; --json has the scores", markup=False, style="dim")


def create(
    description: str = typer.Argument(..., help="What the new tool must do."),
    name: str | None = typer.Option(None, "--name", help="snake_case name (default: derived)."),
    language: str = typer.Option("python", "--language",
                                 help="Source language the LLM writes (python, c, zig, wat)."),
    reference: str | None = typer.Option(
        None, "--reference", help="An existing tool whose outputs the new one must match."),
    repairs: int = typer.Option(DEFAULT_MAX_REPAIRS, "--repairs", min=0, max=20,
                                help="Repair attempts."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Have the LLM write a new tool, judged by cases it did not write (see docs/skills.md)."""
    from ouroboros.capabilities.skills.serving import search_served

    rt, store, index = _open(home)
    author = author_for(rt, store, index, repairs)
    similar = [(h.tool_id, h.text.split(": ", 1)[-1])
               for h in search_served(store, index, description, k=3)] if len(index) else []
    _finish(store, lambda: author.create(description, name=name, language=language,
                                         similar=similar, reference=reference), as_json)


def mutate(
    tool_id: str = typer.Argument(..., help="The tool to start from."),
    description: str = typer.Argument(..., help="What must change."),
    name: str | None = typer.Option(None, "--name", help="Store as a new tool with this name."),
    repairs: int = typer.Option(DEFAULT_MAX_REPAIRS, "--repairs", min=0, max=20,
                                help="Repair attempts."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Have the LLM specialise or fix a tool; the child keeps the parent's hidden tests."""
    rt, store, index = _open(home)
    author = author_for(rt, store, index, repairs)
    _finish(store, lambda: author.mutate(tool_id, description, name=name), as_json)


def _finish(store: SkillStore, run: Callable[[], Any], as_json: bool) -> None:
    from ouroboros.capabilities.skills.authoring import AuthoringFailed

    try:
        done = run()
    except AuthoringFailed as e:
        raise CommandFailed(str(e), hint="see `ouro tool history` for every attempt",
                            exit_code=3) from None
    except ToolPending as e:
        raise CommandFailed(str(e), hint=f"approve with: ouro approve {e.patch_hash[7:19]}",
                            exit_code=4) from None
    except LLMError as e:
        raise CommandFailed(str(e)) from None
    except ValueError as e:
        raise CommandFailed(str(e), exit_code=2) from None
    except SkillError as e:
        raise CommandFailed(str(e)) from None
    info = _version_json(store, done.version, done.attempts)
    if as_json:
        print_json(info)
    else:
        v = done.version
        console.print(f"[green]registered[/green] {v.tool_id}@{v.fingerprint} "
                      f"after {done.attempts} attempt(s)"
                      + (f", child of {v.parent}" if v.parent else ""), highlight=False)
        evidence = info["evidence"] or {}
        console.print(f"status: {info['status']} ({evidence.get('independent', 0)} "
                      f"independent case(s): {evidence.get('cases')})", highlight=False)
        if info["status"] == "unproven":
            console.print("not served by solve or search until it has independent evidence: "
                          f"`ouro tool prove {v.tool_id} --cases FILE`", highlight=False)


def solve(
    task: str = typer.Argument(..., help="The task, in plain words."),
    input_json: str | None = typer.Option(None, "--input", metavar="JSON",
                                          help="Input for the task (JSON)."),
    steps: int = typer.Option(8, "--steps", min=1, max=100, help="Most model turns."),
    max_calls: int = typer.Option(16, "--max-calls", min=1, max=1000,
                                  help="Most function calls in the task."),
    max_creates: int = typer.Option(1, "--max-creates", min=0, max=100,
                                    help="Most tools created."),
    max_mutates: int = typer.Option(2, "--max-mutates", min=0, max=100,
                                    help="Most tools mutated."),
    max_tokens: int = typer.Option(200_000, "--max-tokens", min=1, max=10**9,
                                   help="Token budget."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.1, max=86_400,
                                  help="Wall-clock seconds for the whole task."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Retrieve tools, let the model run / mutate / create, and answer.

    Exit 0 only when solved; 1 when unsolved, over a budget, or the model failed."""
    from ouroboros.capabilities.skills.control import SolveLimits, Solver
    from ouroboros.interfaces.json_input import loads_strict

    value = None if input_json is None else loads_strict(input_json, "--input")
    rt, store, index = _open(home)
    author = author_for(rt, store, index, DEFAULT_MAX_REPAIRS)
    limits = SolveLimits(turns=steps, calls=max_calls, creates=max_creates,
                         mutates=max_mutates, tokens=max_tokens, seconds=timeout)
    solver = Solver(store, index, author.provider, author, limits=limits)
    try:
        result = solver.solve(task, value)
    except LLMError as e:
        raise CommandFailed(str(e), hint="nothing half-done was registered") from None
    from ouroboros.capabilities.skills.retrieval.feedback import served_tools

    index.record_use(task, served_tools(result))  # the tools that served it are found first
    if as_json:
        print_json(result.to_json())
    else:
        for step in result.steps:
            console.print(f"  → {step['call']}({json.dumps(step['arguments'])[:120]})",
                          highlight=False)
        console.print(result.answer or "(no answer)", highlight=False, markup=False)
        console.print(f"[dim]outcome: {result.outcome}[/dim]")
    if not result.solved:
        raise typer.Exit(1)


def stats(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """How tasks were served: existing tools reused versus new ones made."""
    from ouroboros.capabilities.skills.control import SolveStats, stats_path

    rt = open_runtime(home)
    counts = SolveStats(stats_path(store_for(rt).root)).read()
    rate = SolveStats.reuse_rate(counts)
    if as_json:
        print_json({**counts, "reuse_rate": rate})
        return
    console.print(f"tasks {counts['tasks']}: reused {counts['reused']}, mutated "
                  f"{counts['mutated']}, created {counts['created']}, no tool "
                  f"{counts['no_tool']}, unsolved {counts['unsolved']}")
    console.print("reuse rate: " + ("n/a" if rate is None else f"{rate:.0%}"))


def history(
    tool_id: str = typer.Argument(..., help="Tool whose authoring attempts to show."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Every LLM attempt at creating or mutating a tool, accepted or rejected."""
    from ouroboros.capabilities.skills.spec import NAME_RE

    if not NAME_RE.fullmatch(tool_id):
        raise CommandFailed(f"no tool {tool_id[:80]!r}: names are lowercase letters, digits "
                            "and _", exit_code=2)
    rt = open_runtime(home)
    from ouroboros.capabilities.skills.authoring import read_history
    from ouroboros.storage.files import UnsafeFile

    try:
        records = read_history(store_for(rt).root, tool_id)
    except UnsafeFile as e:  # a link, FIFO, device, folder or huge file: it names it
        raise CommandFailed(str(e), "remove that file: it is only a log of past attempts",
                            exit_code=1) from None
    if as_json:
        print_json(records)
        return
    if not records:
        console.print(f"no authoring history for {tool_id}")
        return
    for r in records:
        extra = r.get("fingerprint") or f"{r.get('reason', '')}: {str(r.get('detail', ''))[:100]}"
        console.print(f"{r.get('action')} attempt {r.get('attempt')}/{r.get('of')} "
                      f"[{r.get('model')}] {r.get('outcome')} {extra}", highlight=False)


def register(tool_app: typer.Typer) -> None:
    """Add search / create / mutate / solve / stats / history to the ``ouro tool`` app."""
    tool_app.command("search")(search)
    tool_app.command("create")(create)
    tool_app.command("mutate")(mutate)
    tool_app.command("solve")(solve)
    tool_app.command("stats")(stats)
    tool_app.command("history")(history)


def _ranks(hit: Any) -> str:
    dense = f"dense #{hit.dense_rank}" if hit.dense_rank else "dense -"
    bm25 = f"BM25 #{hit.bm25_rank}" if hit.bm25_rank else "BM25 -"
    semantic = f", MiniLM #{hit.semantic_rank}" if getattr(hit, "semantic_rank", None) else ""
    return f"{dense}, {bm25}{semantic}"


def run_demo(rt: Runtime, say: Callable[[str], None]) -> None:
    """Offline: index the starter tools and find them by meaning, no LLM needed."""
    from ouroboros.capabilities.skills.discovery import open_index, sync_index
    from ouroboros.capabilities.skills.starter import starter_dirs

    store = store_for(rt)
    for d in starter_dirs():
        store.add_dir(d)
    index = open_index(store)
    n = sync_index(store, index)
    say(f"Indexed {len(index)} tools ({n} embedded now) with {index.model_id}; every vector "
        "is stored beside its version with the model id.")
    for query in ("turn a spreadsheet export into json records",
                  "what is 70 degrees fahrenheit in celsius",
                  "when is 03/04/2024 in ISO format"):
        hits = index.search(query, k=3)
        say(f"search {query!r} → " + ", ".join(f"{h.tool_id} ({_ranks(h)})" for h in hits))
    lexical = index.search("what is 70 degrees fahrenheit in celsius", k=3, mode="bm25")
    say(f"BM25 alone finds {len(lexical)} tool(s) for that (no shared words); the full "
        "pipeline (static embeddings, BM25, MiniLM, e5 when unsure) finds unit_convert by "
        "meaning.")
    top = index.search("turn a spreadsheet export into json records", k=1)[0].tool_id
    out = store.run(top, {"csv": "city,temp\nOslo,4\nLima,19"}).output
    say(f"run {top} on a small CSV → {json.dumps(out)[:120]}")
    say("create/mutate/solve ask an OpenAI-compatible endpoint (OURO_LLM_BASE_URL, "
        "OURO_LLM_MODEL); without one they exit 1 and say so.")
