"""The body of `ouro flux evolve` and the FLUX part of `ouro demo`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, EvolutionRecord, Evolver
from ouroboros.capabilities.flux import governance
from ouroboros.capabilities.flux.asm import assemble, disassemble
from ouroboros.capabilities.flux.fitness import FluxProblem, TestsFileError, parse_tests, score
from ouroboros.capabilities.flux.isa import Image
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify
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


def open_runtime(home: Path | None, fail: Fail) -> Runtime:
    try:
        rt = Runtime.open(home)
    except WorkspaceMissing:
        where = resolve_home(home)
        fail(f"no Ouroboros workspace at {where}: run `ouro init --home {where}` first, "
             "or pass --no-submit", 2)
    governance.register(rt)
    return rt


def plot_trend(history: list[EvolutionRecord], initial: float, path: Path) -> None:
    """Fitness kept per generation, best so far, and the accepted generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generations = [0] + [r.generation for r in history]
    kept = [initial] + [r.kept_fitness for r in history]
    best, running = [], initial
    for value in kept:
        running = max(running, value)
        best.append(running)
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.plot(generations, kept, label="kept fitness", linewidth=1)
    axes.plot(generations, best, label="best so far", linewidth=2)
    accepted = [r for r in history if r.accepted]
    axes.scatter([r.generation for r in accepted], [r.fitness_after for r in accepted],
                 s=8, label="accepted", color="tab:green")
    axes.set_xlabel("generation")
    axes.set_ylabel("fitness = confidence x trust / cycles")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def evolve(request: EvolveRequest, load_image: Callable[[Path], Image], fail: Fail,
           err: Console) -> tuple[dict[str, Any], int]:
    image = load_image(request.source)
    try:
        cases = parse_tests(request.tests.read_text())
    except OSError as exc:
        fail(f"cannot read {request.tests}: {exc.strerror}", 2)
    except TestsFileError as exc:
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
    with Evolver(problem, program, policy, seed=request.seed, trust=request.trust,
                 workers=request.workers, on_accept=on_accept) as evolver:
        with Progress(TextColumn("evolving"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("best {task.fields[best]:.5f}"), TimeElapsedColumn(),
                      console=err, disable=request.quiet) as progress:
            task = progress.add_task("evolve", total=request.generations, best=before.fitness)

            def advance(record: EvolutionRecord) -> None:
                progress.update(task, advance=1, best=evolver.best.fitness)

            best = evolver.run(request.generations, progress=advance)
        history, evaluations, trend = evolver.history, evolver.evaluations, evolver.trend()
    after = score(best.genome, cases, trust=request.trust)
    best_image = best.genome.to_image()
    request.output.write_text(disassemble(best_image))
    plot = request.output.with_name(request.output.stem + ".trend.png")
    plot_trend(history, before.fitness, plot)
    summary: dict[str, Any] = {
        "before": {"cycles_per_result": before.cycles_per_result, "fitness": before.fitness,
                   "confidence": before.confidence},
        "after": {"cycles_per_result": after.cycles_per_result, "fitness": after.fitness,
                  "confidence": after.confidence},
        "generations": request.generations, "evaluations": evaluations,
        "accepted": sum(r.accepted for r in history), "trend": trend.value,
        "output": str(request.output), "plot": str(plot), "patch": None,
    }
    if not request.quiet:
        err.print(f"cycles per result: {before.cycles_per_result:g} -> {after.cycles_per_result:g}"
                  f"   fitness: {before.fitness:.5f} -> {after.fitness:.5f}   trend: {trend.value}")
        err.print(f"best program: {request.output}   trend plot: {plot}")
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
