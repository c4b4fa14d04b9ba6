"""`ouro evolve`: the generic engine on parameters, route weights and prompts.

    ouro evolve params PARAMS.json --fitness CMD|module:function   -> a `config` patch
    ouro evolve routing --routes a,b,c --fitness CMD|module:function -> a `routing` patch
    ouro evolve prompt TARGET --evalset FILE                        -> a `prompt` patch

Exit codes: 0 applied (or nothing better was found), 1 the LLM endpoint failed or is not
configured, 2 usage, 3 rejected by a gate, 4 waiting for approval.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, NoReturn

import typer

from ouroboros.interfaces.cli.errors import CliError
from ouroboros.interfaces.cli.executors import ExecutorKind, ExecutorOption, RayAddressOption
from ouroboros.interfaces.cli.inputs import read_json, read_text
from ouroboros.interfaces.cli.main import OuroGroup
from ouroboros.interfaces.cli.output import (
    EXIT_FOR_STATUS,
    HomeOption,
    JsonOption,
    err_console,
    open_runtime,
    print_json,
)
from ouroboros.interfaces.json_input import loads_strict
from ouroboros.kernel import Runtime, SubmitOutcome

app = typer.Typer(cls=OuroGroup, help="Evolve parameters, route weights and prompts with the generic engine.",
                  no_args_is_help=True)


def _fail(message: str, code: int, as_json: bool, hint: str = "") -> NoReturn:
    """Raise the CLI's one error (``as_json`` is decided centrally by ``--json``)."""
    raise CliError(message, hint, exit_code=code)


def _read(path: Path, as_json: bool) -> str:
    return read_text(path, f"file {path}")


def _read_evalset(path: Path) -> Any:
    """One JSON list, or JSON lines (one example per line), each parsed strictly."""
    text = read_text(path, "evalset")
    if text.lstrip().startswith("["):
        return loads_strict(text, f"evalset {path}")
    return [loads_strict(line, f"evalset {path}, line {n}")
            for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _runtime(home: Path | None, submit: bool, as_json: bool) -> Runtime | None:
    return open_runtime(home) if submit else None


def _current(rt: Runtime | None, target: str, command: str, field: str | None
             ) -> tuple[Any, str | None]:
    """The target's value and its hash (the winner's patch base: a change made during the
    run makes it stale rather than overwritten), refused unless it is what this command
    writes (a prompt; or an object with `field`): the runtime key may sign `routing`
    patches on any target, and a patch here replaces whatever the target holds."""
    value, base = rt.read(target) if rt is not None else (None, None)
    if value is None or (isinstance(value, str) if field is None else
                         isinstance(value, dict) and isinstance(value.get(field), dict)):
        return value, base
    held = ("a prompt" if isinstance(value, str) else "an object" if isinstance(value, dict)
            else f"a JSON {type(value).__name__}")
    if field is None:
        _fail(f"{target} holds {held}, not a prompt: evolve prompt would replace it", 2, False,
              "name the target that holds the prompt to evolve")
    without = f' without "{field}"' if isinstance(value, dict) else ""
    _fail(f"{target} holds {held}{without}, not what `ouro evolve {command}` writes: it "
          "would be replaced", 2, False, "choose a target of its own with --target")


def _incumbent(problem: Any, current: Any, field: str) -> float | None:
    """The fitness of what the target holds when it names the same parameters (routes) as
    this run, scored like any candidate; None when there is nothing comparable."""
    values = current.get(field) if isinstance(current, dict) else None
    if not isinstance(values, dict) or set(values) != set(problem.names) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values.values()):
        return None
    return float(problem.evaluate(tuple(float(values[n]) for n in problem.names)))


def _beats(summary: dict[str, Any], incumbent: float | None, target: str) -> bool:
    """Whether the winner may replace the target's value: the run starts from its own
    start, not from the target, so a winner can beat that start and still be worse."""
    if incumbent is None:
        return True
    summary["current"] = incumbent
    if summary["after"] > incumbent:
        return True
    summary["note"] = (f"the winner ({summary['after']:g}) does not beat {target}'s current "
                       f"value ({incumbent:g}): nothing submitted")
    return False


def _finish(summary: dict[str, Any], outcome: SubmitOutcome | None, as_json: bool) -> NoReturn:
    code = 0
    if outcome is not None:
        summary["patch"] = outcome.to_dict()
        code = EXIT_FOR_STATUS[outcome.status]
    if as_json:
        print_json(summary)
    else:
        for key in ("before", "after", "current", "evaluations", "calls"):
            if key in summary:
                err_console.print(f"{key}: {summary[key]}", highlight=False)
        if outcome is not None:
            detail = "" if outcome.status == "applied" else f" ({outcome.stage}: {outcome.reason})"
            err_console.print(f"patch {outcome.status}: {outcome.patch_hash}{detail}",
                              highlight=False)
        elif summary.get("note"):
            err_console.print(summary["note"], highlight=False)
    raise typer.Exit(code)


def _evolve_vector(problem: Any, start: tuple[float, ...], generations: int, population: int,
                   seed: int, workers: int | None, executor: str, ray_address: str | None,
                   ) -> tuple[tuple[float, ...], float, float, int]:
    """The engine on a vector; the same seed gives the same result on every executor."""
    from ouroboros.capabilities.evolve.engine import EvolutionPolicy, Evolver
    from ouroboros.capabilities.evolve.executor import default_workers, make_executor

    before = problem.start_score(start)
    ray = None
    if executor == "ray":
        ray = make_executor("ray", workers or max(2, default_workers(population)),
                            ray_address=ray_address)
    try:
        with Evolver(problem, start, EvolutionPolicy(population=population), seed=seed,
                     workers=1 if executor == "local" else workers, executor=ray) as evolver:
            best = evolver.run(generations)
            return best.genome, before, best.fitness, evolver.evaluations
    finally:
        if ray is not None:
            ray.close()


@app.command("params")
def params_command(
    params_file: Path = typer.Argument(..., help='JSON {"name": value | {"value", "min", "max"}}'),
    fitness: str = typer.Option(..., "--fitness", help="command (JSON on stdin, score on the "
                                                        "last stdout line) or module:function"),
    fitness_timeout: float = typer.Option(30.0, "--fitness-timeout", metavar="SECONDS",
                                          help="Seconds a fitness may take per candidate "
                                               "(then it scores 0; default 30)."),
    target: str = typer.Option("config/params", "--target", help="Ledger target of the result."),
    generations: int = typer.Option(30, "--generations", min=1, max=100_000,
                                    help="Generations to run."),
    population: int = typer.Option(8, "--population", min=1, max=10_000,
                                   help="Candidates per generation."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1,
                             help="Random seed (same seed, same run)."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=256,
                                       help="Processes evaluating candidates (default: auto)."),
    executor: ExecutorKind = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    key: str = typer.Option("runtime", "--key", help="Key that signs the config patch."),
    submit: bool = typer.Option(True, "--submit/--no-submit",
                                help="Submit the result as a patch (--no-submit: only print)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Tune named numeric parameters against a fitness; submit them as a `config` patch."""
    from ouroboros.capabilities.evolve.fitness_fn import parse_fitness
    from ouroboros.capabilities.evolve.params import NamedProblem, parse_params

    params = parse_params(read_json(params_file, "parameters file"))
    problem = NamedProblem.for_params(params, parse_fitness(fitness, fitness_timeout))
    rt = _runtime(home, submit, as_json)
    current, base = _current(rt, target, "params", "params")
    genome, before, after, evaluations = _evolve_vector(
        problem, tuple(p.value for p in params), generations, population, seed, workers,
        executor, ray_address)
    best = problem.candidate(genome)
    summary = {"before": before, "after": after, "evaluations": evaluations, "params": best,
               "executor": executor, "patch": None}
    outcome = None
    if rt is not None and not _beats(summary, _incumbent(problem, current, "params"), target):
        rt.close()
    elif rt is not None:
        with rt:
            outcome = rt.propose_and_submit(
                type="config", target=target, value={"params": best, "fitness": after},
                base=base,
                reasoning=f"evolved parameters: fitness {before:g} -> {after:g} "
                          f"({evaluations} evaluations, seed {seed})",
                author="evolve", keys=[key])
    _finish(summary, outcome, as_json)


@app.command("routing")
def routing_command(
    routes: str = typer.Option(..., "--routes", help="comma-separated route names"),
    fitness: str = typer.Option(..., "--fitness", help='command or module:function; the '
                                                        'candidate is {"weights": {...}}'),
    fitness_timeout: float = typer.Option(30.0, "--fitness-timeout", metavar="SECONDS",
                                          help="Seconds a fitness may take per candidate "
                                               "(then it scores 0; default 30)."),
    target: str = typer.Option("routing/models", "--target", help="Ledger target of the result."),
    generations: int = typer.Option(40, "--generations", min=1, max=100_000,
                                    help="Generations to run."),
    population: int = typer.Option(12, "--population", min=1, max=10_000,
                                   help="Candidates per generation."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1,
                             help="Random seed (same seed, same run)."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=256,
                                       help="Processes evaluating candidates (default: auto)."),
    executor: ExecutorKind = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    submit: bool = typer.Option(True, "--submit/--no-submit",
                                help="Submit the result as a patch (--no-submit: only print)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Tune route weights against a fitness; submit them as a `routing` patch."""
    from ouroboros.capabilities.evolve.fitness_fn import parse_fitness
    from ouroboros.capabilities.evolve.governance import submit_routing
    from ouroboros.capabilities.evolve.params import NamedProblem, check_names

    names = [r.strip() for r in routes.split(",") if r.strip()]
    if len(names) < 2 or len(set(names)) != len(names):
        _fail("--routes needs two or more distinct names, e.g. small,large", 2, as_json)
    check_names(names, "route")
    problem = NamedProblem.for_routes(names, parse_fitness(fitness, fitness_timeout))
    rt = _runtime(home, submit, as_json)
    current, base = _current(rt, target, "routing", "weights")
    start = tuple(1.0 / len(names) for _ in names)
    genome, before, after, evaluations = _evolve_vector(
        problem, start, generations, population, seed, workers, executor, ray_address)
    weights = problem.candidate(genome)["weights"]
    summary = {"before": before, "after": after, "evaluations": evaluations,
               "weights": weights, "executor": executor, "patch": None}
    outcome = None
    if rt is not None and not _beats(summary, _incumbent(problem, current, "weights"), target):
        rt.close()
    elif rt is not None:
        with rt:
            outcome = submit_routing(rt, target, weights, after,
                                     f"evolved route weights: fitness {before:g} -> {after:g} "
                                     f"({evaluations} evaluations, seed {seed})", base=base)
    _finish(summary, outcome, as_json)


@app.command("prompt")
def prompt_command(
    target: str = typer.Argument(..., help="the prompt's ledger target, e.g. prompts/support"),
    evalset: Path = typer.Option(..., "--evalset", help='JSON list or lines of '
                                                        '{"input": str, "expected": str}'),
    start: Path | None = typer.Option(None, "--start", help="starting prompt text (default: "
                                                            "the target's current value)"),
    iterations: int = typer.Option(8, "--iterations", min=1, max=1000,
                                   help="Reflection steps."),
    metric: Literal["contains", "exact"] = typer.Option(
        "contains", "--metric", help="How an answer is scored against the expected text."),
    minibatch: int = typer.Option(3, "--minibatch", min=1, max=1000,
                                  help="Failing examples shown per reflection."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1,
                             help="Random seed (same seed, same run)."),
    key: str = typer.Option("runtime", "--key", help="Key that signs the prompt patch."),
    submit: bool = typer.Option(True, "--submit/--no-submit",
                                help="Submit the winner as a patch (--no-submit: only print)."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Evolve a prompt from the examples it fails (GEPA-style); submit the winner."""
    from ouroboros.capabilities.evolve.prompt import PromptEvolver, parse_evalset, scrubbed
    from ouroboros.capabilities.skills.llm import LLMError, LLMNotConfigured, provider_from_config

    examples, redacted = scrubbed(parse_evalset(_read_evalset(evalset)))
    rt = _runtime(home, True, as_json) if (submit or start is None) else None
    current, base = _current(rt, target, "prompt", None)
    text = _read(start, as_json) if start is not None else current
    if not isinstance(text, str) or not text.strip():
        _fail(f"no starting prompt: {target} has no text value", 2, as_json,
              "give one with --start FILE")
    try:
        provider = provider_from_config()
    except LLMNotConfigured as exc:
        _fail("evolve prompt needs an LLM endpoint, and none is configured", 1, as_json,
              f"set OURO_LLM_BASE_URL and OURO_LLM_MODEL (missing: {', '.join(exc.missing)})")

    def chat(messages: Any) -> str:
        return provider.chat(messages).content

    evolver = PromptEvolver(chat, examples, metric=metric, seed=seed, minibatch=minibatch)
    incumbent: float | None = None
    try:
        result = evolver.run(text, iterations)
        if (submit and result.best is not result.start and isinstance(current, str)
                and current != text):
            # --start gave another prompt than the target's: the winner must beat the
            # target's current prompt too, or a weaker one replaces it.
            scores, _ = evolver.score(current, range(len(examples)))
            incumbent = sum(scores) / len(scores)
    except LLMError as exc:
        _fail(str(exc), 1, as_json)
    summary: dict[str, Any] = {
        "before": result.start.mean, "after": result.best.mean, "calls": evolver.calls,
        "candidates": len(result.pool), "prompt": result.best.prompt, "log": result.log,
        "secrets_redacted": redacted, "patch": None}
    if incumbent is not None:
        summary["current"] = incumbent
    held = {"examples": len(evolver.held), "before": result.start.mean_over(evolver.held),
            "after": result.best.mean_over(evolver.held)}
    summary["held_out"] = held
    outcome = None
    if result.best is result.start:
        summary["note"] = "no candidate beat the starting prompt: nothing submitted"
    elif held["after"] <= held["before"]:
        # Better only on examples whose answers the LLM was shown: it may have memorised
        # them (pasted into the prompt) rather than learnt the task.
        summary["note"] = (f"the winner does no better on the {held['examples']} held-out "
                           f"examples ({held['before']:.3f} -> {held['after']:.3f}), only on "
                           "those the LLM was shown: nothing submitted")
    elif incumbent is not None and result.best.mean <= incumbent:
        summary["note"] = (f"the winner ({result.best.mean:.3f}) does not beat {target}'s "
                           f"current prompt ({incumbent:.3f}): nothing submitted")
    elif rt is not None and submit:
        with rt:
            outcome = rt.propose_and_submit(
                type="prompt", target=target, value=result.best.prompt, base=base,
                reasoning=f"evolved prompt: {result.start.mean:.3f} -> {result.best.mean:.3f} "
                          f"of {len(examples)} examples ({metric}), {evolver.calls} LLM calls, "
                          f"seed {seed}",
                author="evolve", keys=[key])
    if rt is not None and outcome is None:
        rt.close()
    _finish(summary, outcome, as_json)

