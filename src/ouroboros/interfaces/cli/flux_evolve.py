"""The body of `ouro flux evolve` and the FLUX part of `ouro demo`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from ouroboros.capabilities.evolve.engine import (
    EvolutionPolicy,
    EvolutionRecord,
    Evolver,
    TrustGateClosed,
)
from ouroboros.capabilities.flux import governance
from ouroboros.capabilities.flux.asm import assemble, disassemble
from ouroboros.capabilities.flux.fitness import FluxProblem, TestsFileError, parse_tests, score
from ouroboros.capabilities.flux.isa import Image
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.interfaces.cli.inputs import read_text
from ouroboros.interfaces.cli.output import progress_bar
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
    workers: int
    trust: float
    target: str
    home: Path | None
    submit: bool
    quiet: bool
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


def plot_trend(history: list[EvolutionRecord], initial: float, path: Path, *,
               title: str, cycles_at_fitness: float) -> Any:
    """Cycles per result per generation: the kept program and the best so far, accepted
    generations as dots, and the plateau (no improvement since) shaded and labelled.

    ``cycles_at_fitness`` converts fitness back to cycles (fitness = confidence x trust /
    cycles, so cycles = confidence x trust / fitness for programs as correct as the start).
    """
    # The object API, not pyplot: it imports a fraction of matplotlib and no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def cycles(fitness: float) -> float:
        return cycles_at_fitness / fitness if fitness > 0 else float("nan")

    generations = [0] + [r.generation for r in history]
    kept = [initial] + [r.kept_fitness for r in history]
    best, running, improved_at = [], initial, 0
    for generation, value in zip(generations, kept, strict=True):
        if value > running:
            running, improved_at = value, generation
        best.append(running)
    figure = Figure(figsize=(7.5, 3.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(generations, [cycles(v) for v in kept], label="kept program", linewidth=1,
              color="tab:blue", alpha=0.6)
    axes.plot(generations, [cycles(v) for v in best], label="best so far", linewidth=2,
              color="tab:orange")
    accepted = [r for r in history if r.accepted]
    axes.scatter([r.generation for r in accepted], [cycles(r.fitness_after) for r in accepted],
                 s=10, label="accepted mutation", color="tab:green", zorder=3)
    last = generations[-1]
    if last - improved_at >= max(5, last // 10):
        axes.axvspan(improved_at, last, color="0.9", zorder=0)
        axes.text((improved_at + last) / 2, cycles(best[-1]),
                  f"plateau since generation {improved_at}\n({cycles(best[-1]):g} cycles)",
                  ha="center", va="bottom", fontsize=8, color="0.3")
    axes.set_title(title)
    axes.set_xlabel("generation")
    axes.set_ylabel("cycles per result (lower is better)")
    axes.set_xlim(0, max(1, last))
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure  # for tests: its axes say what a reader sees


def evolve(request: EvolveRequest, load_image: Callable[[Path], Image], fail: Fail,
           err: Console) -> tuple[dict[str, Any], int]:
    image = load_image(request.source)
    try:
        cases = parse_tests(read_text(request.tests, "tests file"))
    except (TestsFileError, ValueError, RecursionError) as exc:
        fail(f"{request.tests}: {exc}", 2)
    verdict = verify(image)
    if not verdict.ok:
        fail(f"{request.source} does not verify: " + "; ".join(verdict.reasons), 1)
    rt = open_runtime(request.home, fail) if request.submit else None
    program = Program.from_image(image)
    problem = FluxProblem.for_program(program, cases, trust=request.trust)
    before = score(program, cases, trust=request.trust)

    def on_accept(record: EvolutionRecord, genome: Program) -> None:
        if rt is not None:
            governance.record_generation(rt, request.target, {
                **record.to_json(), "size": genome.size, "seed": request.seed})

    policy = EvolutionPolicy(population=request.population)
    if request.trust < policy.min_trust:
        fail(f"trust {request.trust:g} is below the evolution policy's minimum "
             f"{policy.min_trust:g}: self-modification is refused until trust is restored", 3)
    cycles_at_fitness = before.confidence * request.trust
    with Evolver(problem, program, policy, seed=request.seed, trust=request.trust,
                 workers=request.workers, on_accept=on_accept) as evolver:
        with progress_bar("evolving", request.generations) as progress:
            task = progress.tasks[0].id

            def advance(record: EvolutionRecord) -> None:
                best_now = evolver.best.fitness
                shown = cycles_at_fitness / best_now if best_now > 0 else float("nan")
                progress.update(task, advance=1,
                                description=f"evolving · best {shown:g} cycles")

            try:
                best = evolver.run(request.generations, progress=advance)
            except TrustGateClosed as exc:
                fail(str(exc), 3)
        history, evaluations, trend = evolver.history, evolver.evaluations, evolver.trend()
    after = score(best.genome, cases, trust=request.trust)
    best_image = best.genome.to_image()
    request.output.write_text(disassemble(best_image))
    plot: Path | None = None
    if request.plot:
        plot = request.output.with_name(request.output.stem + ".trend.png")
        plot_trend(history, before.fitness, plot,
                   title=f"FLUX evolution of {request.source.name} (seed {request.seed})",
                   cycles_at_fitness=cycles_at_fitness)
    summary: dict[str, Any] = {
        "before": {"cycles_per_result": before.cycles_per_result, "fitness": before.fitness,
                   "confidence": before.confidence},
        "after": {"cycles_per_result": after.cycles_per_result, "fitness": after.fitness,
                  "confidence": after.confidence},
        "generations": request.generations, "evaluations": evaluations,
        "accepted": sum(r.accepted for r in history), "trend": trend.value,
        "output": str(request.output), "plot": str(plot) if plot else None, "patch": None,
    }
    if not request.quiet:
        err.print(f"cycles per result: {before.cycles_per_result:g} -> {after.cycles_per_result:g}"
                  f"   fitness: {before.fitness:.5f} -> {after.fitness:.5f}   trend: {trend.value}")
        err.print(f"best program: {request.output}"
                  + (f"   trend plot: {plot}" if plot else ""), markup=False)
    code = 0
    if rt is not None:
        value = governance.bytecode_value(best_image, cases, after, {
            "source": request.source.name, "seed": request.seed,
            "generations": request.generations, "size": len(best_image.code)})
        outcome = governance.submit_program(
            rt, request.target, value,
            f"evolved {request.source.name}: {before.cycles_per_result:g} -> "
            f"{after.cycles_per_result:g} cycles per result (seed {request.seed})")
        summary["patch"] = {"status": outcome.status, "hash": outcome.patch_hash,
                            "stage": getattr(outcome, "stage", None),
                            "reason": getattr(outcome, "reason", None)}
        code = STATUS_CODES.get(outcome.status, 1)
        if not request.quiet:
            err.print(f"bytecode patch {outcome.status}: {outcome.patch_hash}"
                      + (f" ({outcome.stage}: {outcome.reason})" if outcome.status != "applied"
                         else ""))
    return summary, code


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
