"""The body of `ouro flux evolve` and the FLUX part of `ouro demo`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ouroboros.capabilities.evolve.engine import (
    EvolutionPolicy,
    EvolutionRecord,
    Evolver,
    TrustGateClosed,
)
from ouroboros.capabilities.evolve.executor import Executor
from ouroboros.capabilities.flux import governance
from ouroboros.capabilities.flux.asm import assemble, disassemble
from ouroboros.capabilities.flux.fitness import (
    FluxProblem,
    Score,
    TestCase,
    TestsFileError,
    parse_tests,
    score,
)
from ouroboros.capabilities.flux.isa import Image
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.interfaces.cli.inputs import read_text
from ouroboros.interfaces.cli.output import progress_enabled
from ouroboros.kernel import Runtime, WorkspaceMissing
from ouroboros.kernel.workspace import resolve_home

Fail = Callable[[str, int], NoReturn]
STATUS_CODES = {"applied": 0, "rejected": 3, "pending": 4}


@dataclass(frozen=True)
class EvolveRequest:
    source: Path
    tests: Path
    generations: int
    seed: int
    output: Path
    population: int
    workers: int | None  # None: chosen from the batch size
    trust: float
    target: str
    home: Path | None
    submit: bool
    quiet: bool
    engine: str = "search"  # "search" (STOKE-style, docs/flux.md) or "classic"
    budget: int | None = None  # evaluations; default generations x population
    executor: str = "process"  # local | process | ray (both engines)
    ray_address: str | None = None
    plot: bool = True


def open_runtime(home: Path | None, fail: Fail) -> Runtime:
    try:
        rt = Runtime.open(home)
    except WorkspaceMissing:
        where = resolve_home(home)
        fail(f"no Ouroboros workspace at {where}: run `ouro init --home {where}` first, "
             "or pass --no-submit", 2)
    governance.register(rt)
    return rt


@dataclass(frozen=True)
class Trace:
    """What the trend plot draws: best cycles per result against evaluations."""

    title: str
    points: list[tuple[int, float]]  # (evaluations, best penalised cycles per result)
    plateau_at: int
    total: int


def plot_trend(trace: Trace, path: Path) -> Any:
    """Best cycles per result over the run, titled with the program and seed; the stretch
    after which the best never improved again is shaded and labelled as the plateau.
    Returns the figure (for tests: its axes say what a reader sees)."""
    # The object API, not pyplot: it imports a fraction of matplotlib and no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = [x for x, _ in trace.points] + [trace.total]
    ys = [y for _, y in trace.points] + [trace.points[-1][1]]
    figure = Figure(figsize=(7.5, 3.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.step(xs, ys, where="post", label="best so far", linewidth=2, color="tab:orange")
    axes.scatter([x for x, _ in trace.points], [y for _, y in trace.points], s=10,
                 color="tab:green", label="improvement", zorder=3)
    last, since = trace.total, trace.plateau_at
    if last - since >= max(1, last // 10):
        axes.axvspan(since, last, color="0.9", zorder=0)
        axes.text((since + last) / 2, ys[-1],
                  f"plateau from {since:,} evaluations\n({ys[-1]:g} cycles)",
                  ha="center", va="bottom", fontsize=8, color="0.3")
    axes.set_title(trace.title)
    axes.set_xlabel("candidate evaluations")
    axes.set_ylabel("cycles per result (lower is better)")
    axes.set_xlim(0, max(1, last))
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


def classic_trace(title: str, history: list[EvolutionRecord], initial: float,
                  trust: float) -> Trace:
    """The classic engine's generations as a best-cycles trace (cycles = trust / fitness
    for a program that passes all its cases)."""
    points = [(1, trust / initial if initial else 0.0)]
    evaluations, best = 1, initial
    for record in history:
        evaluations += record.evaluations
        if record.accepted and record.fitness_after > best:
            best = record.fitness_after
            points.append((evaluations, trust / best))
    return Trace(title, points, points[-1][0], evaluations)


def _load_cases(request: EvolveRequest, fail: Fail) -> tuple[TestCase, ...]:
    try:
        return parse_tests(read_text(request.tests, "tests file"))
    except (TestsFileError, ValueError, RecursionError) as exc:
        fail(f"{request.tests}: {exc}", 2)


def evolve(request: EvolveRequest, load_image: Callable[[Path], Image], fail: Fail,
           err: Console) -> tuple[dict[str, Any], int]:
    image = load_image(request.source)
    cases = _load_cases(request, fail)
    if request.engine not in ("search", "classic"):
        fail(f"unknown engine {request.engine!r}: use search or classic", 2)
    verdict = verify(image)
    if not verdict.ok:
        fail(f"{request.source} does not verify: " + "; ".join(verdict.reasons), 1)
    rt = open_runtime(request.home, fail) if request.submit else None
    if rt is not None:  # the target's accumulated suite comes first, then the file's
        cases = governance.merge_cases(governance.target_cases(rt, request.target), cases)
    program = Program.from_image(image)
    before = score(program, cases, trust=request.trust)
    budget = request.budget or request.generations * request.population
    title = f"{request.source.stem} (seed {request.seed})"
    extra: dict[str, Any] = {}

    def log_improvement(summary: dict[str, Any]) -> None:
        if rt is not None:
            governance.record_generation(rt, request.target, {**summary, "seed": request.seed})

    policy = EvolutionPolicy(population=request.population)
    if request.trust < policy.min_trust:
        fail(f"trust {request.trust:g} is below the evolution policy's minimum "
             f"{policy.min_trust:g}: self-modification is refused until trust is restored", 3)
    executor = _search_executor(request, budget) if request.engine == "search" else None
    with Progress(TextColumn("evolving"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("best {task.fields[best]:.2f} cycles"), TimeElapsedColumn(),
                  console=err, transient=True,
                  disable=request.quiet or not progress_enabled()) as progress:
        if executor is not None:
            try:
                best, cases, evaluations, accepted, trace, extra = _run_search(
                    request, program, cases, budget, title, progress, log_improvement, fail,
                    executor)
            finally:
                executor.close()
            trend = "plateau" if trace.plateau_at < evaluations // 2 else "improving"
        else:
            classic_executor = _classic_executor(request)
            try:
                best, evaluations, accepted, trace, trend = _run_classic(
                    request, program, cases, before, budget, title, progress, log_improvement,
                    classic_executor)
            except TrustGateClosed as exc:
                fail(str(exc), 3)
            finally:
                if classic_executor is not None:
                    classic_executor.close()
            extra = {"executor": request.executor}
    after = score(best, cases, trust=request.trust)
    best_image = best.to_image()
    plot: Path | None = None
    try:
        request.output.write_text(disassemble(best_image))
        if request.plot:
            plot = request.output.with_name(request.output.stem + ".trend.png")
            plot_trend(trace, plot)
    except OSError as exc:  # checked before the run; changed since (permissions, a race)
        fail(f"cannot write {exc.filename or request.output}: {exc.strerror}", 2)
    summary: dict[str, Any] = {
        "before": {"cycles_per_result": before.cycles_per_result, "fitness": before.fitness,
                   "confidence": before.confidence},
        "after": {"cycles_per_result": after.cycles_per_result, "fitness": after.fitness,
                  "confidence": after.confidence},
        "engine": request.engine, "generations": request.generations, "budget": budget,
        "evaluations": evaluations, "accepted": accepted, "trend": trend,
        "plateau_at": trace.plateau_at, "tests": len(cases), **extra,
        "output": str(request.output), "plot": str(plot) if plot else None, "patch": None,
    }
    if not request.quiet:
        err.print(f"cycles per result: {before.cycles_per_result:g} -> {after.cycles_per_result:g}"
                  f"   fitness: {before.fitness:.5f} -> {after.fitness:.5f}   trend: {trend}")
        if "equivalence" in extra:
            err.print(f"equivalent to {request.source.name}: {extra['equivalence']['status']} "
                      f"({extra['equivalence']['detail']}); "
                      f"{extra['counterexamples']} counterexample(s) became test cases")
        err.print(f"best program: {request.output}"
                  + (f"   trend plot: {plot}" if plot else ""), markup=False)
    code = 0
    if rt is not None:
        value = governance.bytecode_value(best_image, cases, after, {
            "source": request.source.name, "seed": request.seed, "engine": request.engine,
            "evaluations": evaluations, "size": len(best_image.code)})
        # One line: a name with a line break could write the gate's "regression:" line.
        name = " ".join(request.source.name.splitlines())
        outcome = governance.submit_program(
            rt, request.target, value,
            f"evolved {name}: {before.cycles_per_result:g} -> "
            f"{after.cycles_per_result:g} cycles per result (seed {request.seed}, "
            f"{request.engine})")
        summary["patch"] = {"status": outcome.status, "hash": outcome.patch_hash,
                            "stage": getattr(outcome, "stage", None),
                            "reason": getattr(outcome, "reason", None)}
        code = STATUS_CODES.get(outcome.status, 1)
        if not request.quiet:
            err.print(f"bytecode patch {outcome.status}: {outcome.patch_hash}"
                      + (f" ({outcome.stage}: {outcome.reason})" if outcome.status != "applied"
                         else ""))
    return summary, code


def _search_executor(request: EvolveRequest, budget: int) -> Executor:
    """Started here, before the progress bar's thread exists (workers are forked)."""
    from ouroboros.capabilities.evolve.executor import default_workers, make_executor
    from ouroboros.capabilities.flux.search import SearchConfig

    config = SearchConfig(budget=budget)
    workers = request.workers or default_workers(budget // config.epochs)
    return make_executor(request.executor, min(workers, config.islands),
                         ray_address=request.ray_address)


def _classic_executor(request: EvolveRequest) -> Executor | None:
    """Ray, or a pool the engine starts itself (None), or none at all (local)."""
    from ouroboros.capabilities.evolve.executor import default_workers, make_executor

    if request.executor != "ray":
        return None
    workers = request.workers or max(2, default_workers(request.population))
    return make_executor("ray", workers, ray_address=request.ray_address)


def _run_search(request: EvolveRequest, program: Program, cases: tuple[TestCase, ...],
                budget: int, title: str, progress: Progress,
                log: Callable[[dict[str, Any]], None], fail: Fail, executor: Executor,
                ) -> tuple[Program, tuple[TestCase, ...], int, int, Trace, dict[str, Any]]:
    from ouroboros.capabilities.flux.search import SearchConfig, superoptimise
    from ouroboros.kernel.errors import UsageError

    config = SearchConfig(budget=budget)
    task = progress.add_task("evolve", total=budget, best=before_cycles(program, cases))
    improvements = 0

    def on_epoch(evaluations: int, best: float, improved: bool) -> None:
        nonlocal improvements
        progress.update(task, completed=evaluations, best=best)
        if improved:
            improvements += 1
            log({"evaluations": evaluations, "penalised_cycles": best, "engine": "search"})

    try:
        result = superoptimise(program, cases, config=config, seed=request.seed,
                               executor=executor, progress=on_epoch)
    except UsageError as exc:
        fail(f"{request.source}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), 2)
    extra = {"equivalence": {"status": result.verdict.status, "method": result.verdict.method,
                             "detail": result.verdict.detail},
             "counterexamples": result.counterexamples, "checks": result.checks,
             "lifts": result.lifts, "finish_evaluations": result.finish_evaluations,
             "improved_by": result.improved_by,
             "executor": request.executor, "workers": executor.workers}
    trace = Trace(title, result.history, result.plateau_at, result.evaluations)
    return result.best, result.cases, result.evaluations, improvements, trace, extra


def before_cycles(program: Program, cases: tuple[TestCase, ...]) -> float:
    return score(program, cases).penalised_cycles


def _run_classic(request: EvolveRequest, program: Program, cases: tuple[TestCase, ...],
                 before: Score, budget: int, title: str, progress: Progress,
                 log: Callable[[dict[str, Any]], None], executor: Executor | None,
                 ) -> tuple[Program, int, int, Trace, str]:
    problem = FluxProblem.for_program(program, cases, trust=request.trust)
    workers = 1 if request.executor == "local" else request.workers
    policy = EvolutionPolicy(population=request.population)
    generations = max(1, budget // request.population)

    def on_accept(record: EvolutionRecord, genome: Program) -> None:
        log({**record.to_json(), "size": genome.size})

    with Evolver(problem, program, policy, seed=request.seed, trust=request.trust,
                 workers=workers, on_accept=on_accept, executor=executor) as evolver:
        task = progress.add_task("evolve", total=generations, best=before.penalised_cycles)

        def advance(record: EvolutionRecord) -> None:
            best = evolver.best.fitness
            progress.update(task, advance=1, best=request.trust / best if best else 0.0)

        best = evolver.run(generations, progress=advance)
        history, evaluations, trend = evolver.history, evolver.evaluations, evolver.trend()
    trace = classic_trace(title, history, before.fitness, request.trust)
    return best.genome, evaluations, sum(r.accepted for r in history), trace, trend.value


def demo(rt: Runtime, say: Callable[[str], None], examples: Path) -> None:
    """FLUX and evolve in a few narrated steps on the runtime's workspace."""
    from ouroboros.capabilities.evolve.governance import submit_routing, tune_routing
    from ouroboros.capabilities.evolve.vector import EXAMPLE_ROUTES, example_fitness
    from ouroboros.capabilities.flux.examples import SUM2X_SOURCE, SUM2X_TESTS

    source = (examples / "sum2x.fasm").read_text() if examples.is_dir() else SUM2X_SOURCE
    cases = parse_tests(SUM2X_TESTS)
    program = Program.from_image(assemble(source))
    before = score(program, cases)
    say(f"FLUX: a + 2b written in {len(program)} instructions costs "
        f"{before.cycles_per_result:g} cycles per result")
    with Evolver(FluxProblem.for_program(program, cases), program, EvolutionPolicy(population=12), seed=1,
                 on_accept=lambda r, g: governance.record_generation(
                     rt, "flux/programs/sum2x", r.to_json())) as evolver:
        best = evolver.run(60)
    after = score(best.genome, cases)
    say(f"60 generations ({evolver.evaluations} candidates, one ledger event per accepted "
        f"generation): {after.cycles_per_result:g} cycles, trend {evolver.trend().value}")
    say("best program: " + "; ".join(str(i) for i in best.genome.instrs))
    image = best.genome.to_image()
    outcome = governance.submit_program(rt, "flux/programs/sum2x",
                                        governance.bytecode_value(image, cases, after),
                                        "demo: evolved sum2x")
    say(f"submitted as a bytecode patch: {outcome.status} ({outcome.patch_hash[:19]}...)")
    # Passes its own test, but the stack depth differs where the two paths meet: the
    # verifier (the bytecode audit) refuses it.
    sloppy = assemble("SENSE 0\nJZ skip\nPUSH 7\nskip: SENSE 0\nACT 0\nHALT\n")
    value = governance.bytecode_value(sloppy, parse_tests('[{"input": [5], "output": [5]}]'))
    outcome = governance.submit_program(rt, "flux/programs/sloppy", value,
                                        "demo: passes its test, fails verification")
    say(f"a program that passes its test but not the verifier: {outcome.status} at the "
        f"{outcome.stage} gate ({outcome.reason})")
    weights, fitness, _ = tune_routing(EXAMPLE_ROUTES, example_fitness, generations=40, seed=3)
    outcome = submit_routing(rt, "routing/models", weights, fitness,
                             "demo: evolved routing weights")
    say(f"the same engine tuned routing weights {weights} (fitness {fitness:.3f}): "
        f"routing patch {outcome.status}")
