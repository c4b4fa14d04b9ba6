"""STOKE-style stochastic superoptimisation of FLUX programs, on islands, with CEGIS.

The search (docs/flux.md, "Search") keeps one Markov chain per *island*. A step proposes
a move (`moves.MoveSet`: one edit or several at once), scores the candidate with the
graded cost (`cost.evaluate`), and accepts it by the Metropolis rule: always when the
cost does not rise, else with probability `exp(-beta x rise)`. Islands run at different
temperatures (`betas`), so hot islands wander through wrong-but-close programs while
cold ones polish; an island that has not improved for `restart_after` steps restarts
from the best program found so far (migration). Islands run in epochs: one epoch of one
island is one batch of work for the executor, so workers never exchange single
candidates, and the result is the same on any number of workers.

Correct on the tests is not enough. A candidate that passes every case and beats the
best so far is checked against the original program (`equivalence.check`): proved, or
failing that tested on generated inputs with extremes. A counterexample becomes a new
test case (counterexample-guided, CEGIS) that every island sees from the next epoch on,
and the candidate is scored again. Only checked programs become a best; the winner gets
one more, larger check at the end.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ouroboros.capabilities.evolve.executor import Executor, LocalExecutor
from ouroboros.capabilities.flux import analysis, equivalence, lift, rewrites, schedule, synth
from ouroboros.capabilities.flux.cost import Cost, evaluate
from ouroboros.capabilities.flux.fitness import TestCase, score
from ouroboros.capabilities.flux.isa import DEFAULT_FUEL, MAX_CODE_BYTES, Opcode
from ouroboros.capabilities.flux.moves import MoveSet, Vocabulary
from ouroboros.capabilities.flux.program import Instr, Program
from ouroboros.capabilities.flux.rewrites import peephole
from ouroboros.capabilities.flux.vm import run
from ouroboros.kernel.errors import UsageError

EPS = 1e-9
COMPILE_ABOVE = 3000  # cycles over all cases: beyond this, compiling a candidate pays off


@dataclass(frozen=True)
class SearchConfig:
    budget: int = 5000  # candidate evaluations in all (every proposal counts)
    islands: int = 4
    epochs: int = 10
    betas: tuple[float, ...] = (0.4, 1.0, 2.5, 6.0)  # inverse temperature per island
    correctness_weight: float = 1.0
    restart_after: int = 150  # island steps without a new island best
    from_best: float = 0.1  # chance that a step proposes from the island's best instead
    check_inputs: int = 300  # generated inputs when a proof is out of reach (during search)
    final_check_inputs: int = 3000
    weights: tuple[tuple[str, float], ...] = ()  # move weights overriding moves.MOVES
    # Window synthesis (synth.py): the share of steps that rewrite a random window of the
    # step's program with the cheapest sequence of the same effect on the test contexts,
    # the states one such call may expand, and whether a new island best is polished
    # window by window (widest first) before the chain moves on.
    synth_rate: float = 0.02
    synth_states: int = 800
    polish: bool = True
    polish_states: int = 3000
    synth_budget: int = 3000  # states one island may expand in one epoch, in all
    # Candidates already scored in this epoch are not scored again (no evaluation spent).
    dedupe: bool = True
    # Lifting (lift.py): the share of steps that propose a lowering of a region of the
    # step's program (a counted loop, a block, the whole program), and whether the
    # liftings of the starting program are tried before the first epoch.
    lift: bool = True
    lift_rate: float = 0.02
    # Finishing: the share of the budget kept for a deterministic descent on the best
    # program at the end of the run (every sound single edit, deletion, lifting and
    # wider window synthesis, to a fixed point); the same descent, capped at
    # `start_finish` of the budget, also runs on the starting program.
    finish: float = 0.15
    start_finish: float = 0.05
    finish_states: int = 3000
    # Value reuse (schedule.py): the finishing descent also proposes computing a value
    # that is computed twice once, kept on the stack by a DUP.
    reuse: bool = True
    # If/else diamonds (lift.merged): a region with one branch on a non-constant value
    # is lifted along both paths and lowered branchless where the arms differ by a
    # constant or one of them is zero.
    diamonds: bool = True
    # Loop rotation (schedule.py): a loop tested at the top also tested at the bottom.
    # Off until measured: a tuning3 bench worker with it and hoist on was OOM-killed (24
    # GB) before the lifter bounded its expressions (lift.MAX_NODES).
    rotate: bool = False
    # Hoisting (schedule.py): a loop-invariant value computed once, before the loop.
    hoist: bool = False  # off with rotate (see above)
    # Round 7 (lift.py, stackgen.py): a lowered region's values computed once each and
    # kept on the stack by DUP/OVER/SWAP where several outputs share them (`shared`),
    # and more algebraic shapes for a value (`algebra`: division by 2^k as shifts, a
    # factor taken out with a remainder, `(a | b) - (a & b)` as `a ^ b`).
    shared: bool = True
    algebra: bool = True
    # Round 8 (lift.split): the code from the entry (or from after a loop) to the HALTs,
    # when every path through it halts, re-laid as a tree of its branches with each
    # path lowered on its own (at most lift.MAX_PATHS paths).
    paths: bool = True
    # Round 8 (lift.Lowerer): an atom taken out of the terms of a sum that have it
    # (ka + b(c - k) = (a - b)k + cb) and a power of a binomial ((x + c)^n, n <= 4).
    factor: bool = True

    def __post_init__(self) -> None:
        if self.budget < 1 or self.islands < 1 or self.epochs < 1:
            raise ValueError("budget, islands and epochs must be at least 1")


@dataclass(frozen=True)
class Spec:
    """What every worker needs to know about the problem."""

    original: Program
    fuel: int
    vocab: Vocabulary
    compiled: bool = False  # candidates run long: compile them (compiled.py)


@dataclass(frozen=True)
class Island:
    index: int
    rng_state: Any
    current: Program
    current_cost: Cost
    best: Program
    best_cost: Cost
    stale: int = 0


@dataclass(frozen=True)
class EpochTask:
    spec: Spec
    config: SearchConfig
    cases: tuple[TestCase, ...]
    island: Island
    steps: int
    global_best: Program
    global_best_cost: float


@dataclass(frozen=True)
class EpochReport:
    island: Island
    evaluations: int
    new_cases: tuple[TestCase, ...]
    improvements: tuple[tuple[int, float], ...]  # (evaluation within the epoch, penalised)
    checks: int
    counterexamples: int
    moves: tuple[tuple[str, int], ...]  # accepted moves by name
    probes: int = 0  # window syntheses run (not candidate evaluations)
    sources: tuple[str, ...] = ()  # the move behind each of `improvements`
    lifts: int = 0  # liftings run (not candidate evaluations)


@dataclass
class SearchResult:
    best: Program
    original: Program
    cases: tuple[TestCase, ...]  # the given cases plus every counterexample found
    evaluations: int
    history: list[tuple[int, float]]  # (evaluations so far, best penalised cycles)
    verdict: equivalence.Verdict
    counterexamples: int
    checks: int
    accepted_moves: dict[str, int] = field(default_factory=dict)
    probes: int = 0  # window syntheses run besides the evaluations
    lifts: int = 0  # liftings run besides the evaluations (memoised calls included)
    improved_by: dict[str, int] = field(default_factory=dict)  # new global bests by move
    finish_evaluations: int = 0  # evaluations the finishing descents spent
    # Round-6 proposals generated (value reuse, reordering, rotation, hoisting) besides the
    # evaluations: each one scored is also one evaluation.
    schedules: int = 0

    @property
    def plateau_at(self) -> int:
        """Evaluations after which the best never improved again."""
        return self.history[-1][0] if self.history else 0


_SPECS: dict[tuple[Any, ...], equivalence.SymbolicSpec] = {}


def _symbolic(original: Program) -> equivalence.SymbolicSpec:
    """The original's symbolic paths, built once per process (z3 objects do not pickle)."""
    key = (original.instrs, original.params)
    spec = _SPECS.get(key)
    if spec is None:
        if len(_SPECS) > 64:
            _SPECS.clear()
        spec = _SPECS[key] = equivalence.SymbolicSpec(
            original, max(1, equivalence.input_count(original)))
    return spec


def counterexample_case(original: Program, inputs: Sequence[int]) -> TestCase:
    return TestCase.from_run(inputs, run(original.to_image(), inputs, fuel=DEFAULT_FUEL * 10))


def check_candidate(original: Program, candidate: Program, count: int,
                    seed: int = 0) -> equivalence.Verdict:
    return equivalence.check(original, candidate, spec=_symbolic(original), count=count,
                             seed=seed)


class _Windows:
    """Window synthesis for one epoch: traces and results cached per program."""

    def __init__(self, spec: Spec, config: SearchConfig) -> None:
        self.spec, self.config = spec, config
        self.traces: dict[Program, synth.Trace] = {}
        self.done: dict[tuple[Program, int, int, int], list[Program]] = {}
        self.probes = 0
        self.states = 0  # expanded in this epoch

    @property
    def spent(self) -> bool:
        return self.states >= self.config.synth_budget

    def reset(self) -> None:  # the cases grew: contexts and results are stale
        self.traces.clear()
        self.done.clear()

    def trace(self, program: Program, cases: Sequence[TestCase]) -> synth.Trace:
        tr = self.traces.get(program)
        if tr is None:
            if len(self.traces) > 64:
                self.traces.clear()
            tr = self.traces[program] = synth.trace(program, cases, self.spec.fuel)
        return tr

    def sites(self, program: Program, cases: Sequence[TestCase]) -> list[tuple[int, int]]:
        return synth.windows(program, self.trace(program, cases))

    def rewrite(self, program: Program, cases: Sequence[TestCase], site: tuple[int, int],
                states: int) -> list[Program]:
        key = (program, *site, states)
        out = self.done.get(key)
        if out is None:
            self.probes += 1
            if len(self.done) > 4096:
                self.done.clear()
            out, expanded = synth.candidates(program, self.trace(program, cases), site[0],
                                             site[1], max_states=states)
            self.states += expanded
            self.done[key] = out
        return out

    def polish_queue(self, program: Program, cases: Sequence[TestCase]) -> list[tuple[int, int]]:
        """Every window of two or more instructions, narrowest first (popped from the
        end: widest first)."""
        return sorted((s for s in self.sites(program, cases) if s[1] > 1),
                      key=lambda s: (s[1], -s[0]))


def run_epoch(task: EpochTask) -> EpochReport:
    """One island's chain for `task.steps` proposals (runs in a worker)."""
    spec, config, island = task.spec, task.config, task.island
    rng = random.Random()
    rng.setstate(island.rng_state)
    moves = MoveSet(spec.vocab, dict(config.weights))
    beta = config.betas[island.index % len(config.betas)]
    cases = list(task.cases)
    new_cases: list[TestCase] = []
    improvements: list[tuple[int, float]] = []
    sources: list[str] = []
    lifts = 0
    accepted: dict[str, int] = {}
    scored: dict[Program, Cost] = {}
    win = _Windows(spec, config)
    queue: list[tuple[int, int]] = []  # windows of the island best still to polish
    queued: Program | None = None

    def cost(program: Program) -> Cost:
        return evaluate(program, cases, fuel=spec.fuel,
                        correctness_weight=config.correctness_weight, compiled=spec.compiled)

    current, current_cost = island.current, island.current_cost
    best, best_cost, stale = island.best, island.best_cost, island.stale
    bar = min(best_cost.penalised, task.global_best_cost)
    evaluations = checks = found = attempts = 0
    while evaluations < task.steps and attempts < 4 * task.steps:
        attempts += 1
        if queue and queued is best and not win.spent:  # polish the new best, widest first
            site = queue.pop()
            rewrites = win.rewrite(best, cases, site, config.polish_states)
            if not rewrites or rewrites[0] in scored:
                continue
            base, base_cost = best, best_cost
            candidate, name = rewrites[0], "synth"
            evaluations += 1
        else:
            evaluations += 1
            stale += 1
            if stale > config.restart_after:
                stale = 0
                current = task.global_best if task.global_best_cost < best_cost.penalised else best
                current_cost = cost(current)
                continue
            base, base_cost = current, current_cost
            if rng.random() < config.from_best:
                base, base_cost = best, best_cost
            proposal: tuple[Program, str] | None = None
            if config.lift and config.lift_rate and rng.random() < config.lift_rate:
                lifts += 1
                lowered = lift.proposals(base, diamonds=config.diamonds, shared=config.shared,
                                               algebra=config.algebra,
                                               split_paths=config.paths,
                                               factor=config.factor)
                if lowered:
                    proposal = rng.choice(lowered), "lift"
            if (proposal is None and config.synth_rate and rng.random() < config.synth_rate
                    and not win.spent):
                sites = win.sites(base, cases)
                if sites:
                    options = win.rewrite(base, cases, rng.choice(sites),
                                          config.synth_states)
                    if options:
                        proposal = rng.choice(options), "synth"
            if proposal is None:
                proposal = moves.propose(base, rng)
            if proposal is None:
                continue
            candidate, name = proposal
            if config.dedupe and candidate in scored:
                evaluations -= 1  # already scored in this epoch: nothing spent
                c = scored[candidate]
                rise = c.total - base_cost.total
                if rise <= 0 or rng.random() < math.exp(-beta * rise):
                    current, current_cost = candidate, c
                continue
        c = cost(candidate)
        if config.dedupe:
            if len(scored) > 20000:
                scored.clear()
            scored[candidate] = c
        if c.total == math.inf:
            continue
        if c.correct and c.penalised < bar - EPS:
            checks += 1
            verdict = check_candidate(spec.original, candidate, config.check_inputs,
                                      seed=rng.randrange(1 << 30))
            if verdict.counterexample is not None:
                found += 1
                case = counterexample_case(spec.original, verdict.counterexample)
                cases.append(case)
                new_cases.append(case)
                scored.clear()
                win.reset()
                current_cost = cost(current)
                c = cost(candidate)
            else:
                best, best_cost, bar, stale = candidate, c, c.penalised, 0
                improvements.append((evaluations, c.penalised))
                sources.append(name)
                if config.polish:
                    queue, queued = win.polish_queue(best, cases), best
        rise = c.total - base_cost.total
        if rise <= 0 or rng.random() < math.exp(-beta * rise):
            current, current_cost = candidate, c
            accepted[name] = accepted.get(name, 0) + 1
    out = Island(island.index, rng.getstate(), current, current_cost, best, best_cost, stale)
    return EpochReport(out, evaluations, tuple(new_cases), tuple(improvements), checks, found,
                       tuple(sorted(accepted.items())), win.probes, tuple(sources), lifts)


def default_fuel(program: Program, cases: Sequence[TestCase]) -> int:
    start = score(program, cases)
    return 4 * start.worst_cycles + 100 if start.worst_cycles else DEFAULT_FUEL


def superoptimise(original: Program, cases: Sequence[TestCase], *,
                  config: SearchConfig | None = None, seed: int = 0,
                  executor: Executor | None = None,
                  progress: Callable[[int, float, bool], None] | None = None) -> SearchResult:
    """Search for a faster program equivalent to `original` (which must pass `cases`).

    `progress(evaluations, best penalised cycles, improved)` runs after every epoch.
    """
    config = config or SearchConfig()
    executor = executor or LocalExecutor()
    start_score = score(original, cases)
    if not start_score.valid:
        raise UsageError("the program does not verify: " + "; ".join(start_score.reasons))
    if start_score.passed != start_score.total:
        raise UsageError(f"the program fails {start_score.total - start_score.passed} of its "
                         f"{start_score.total} test cases",
                         "the search keeps the program's behaviour: fix the program or its "
                         "tests first")
    spec = Spec(original, default_fuel(original, cases), Vocabulary.of(original),
                compiled=start_score.cycles_per_result * len(cases) > COMPILE_ABOVE)
    all_cases = list(cases)

    def cost(program: Program) -> Cost:
        return evaluate(program, all_cases, fuel=spec.fuel,
                        correctness_weight=config.correctness_weight, compiled=spec.compiled)

    evaluations = 1
    start_cost = cost(original)
    global_best, global_cost = original, start_cost
    history: list[tuple[int, float]] = [(1, start_cost.penalised)]
    bests: list[Program] = [original]
    improved_by: dict[str, int] = {}
    # The sound rewrite table to a fixed point is a free first step for every island.
    polished, steps = peephole(original)
    if steps:
        evaluations += 1
        polished_cost = cost(polished)
        if polished_cost.correct and polished_cost.penalised < global_cost.penalised - EPS:
            verdict = check_candidate(original, polished, config.check_inputs)
            if verdict.counterexample is None:
                global_best, global_cost = polished, polished_cost
                history.append((evaluations, polished_cost.penalised))
                bests.append(polished)
                improved_by["table"] = 1
                if progress is not None:
                    progress(evaluations, polished_cost.penalised, True)
    finisher = _Finisher(spec, config, all_cases, cost)
    lifts = 0

    def finish(cap: int) -> None:
        """The finishing descent on the global best; reports to `progress`."""
        nonlocal global_best, global_cost, evaluations, lifts
        before, lifted, improved = len(all_cases), finisher.lifts, False
        for program, c, name in finisher.descend(global_best, global_cost, cap):
            global_best, global_cost, improved = program, c, True
            bests.append(program)
            improved_by[name] = improved_by.get(name, 0) + 1
            history.append((evaluations + finisher.spent, c.penalised))
        evaluations += finisher.spent
        lifts += finisher.lifts - lifted
        if len(all_cases) != before:
            global_cost = cost(global_best)
        if progress is not None:
            progress(evaluations, global_cost.penalised, improved)

    reserve = int(config.budget * config.finish)
    starts = [(global_best, global_cost)]
    if config.start_finish > 0:
        finish(min(int(config.budget * config.start_finish), config.budget - evaluations))
        # A greedy descent can settle in a basin the chains would not have chosen: the
        # odd islands start from the program before it, the even ones from its result.
        starts.insert(0, (global_best, global_cost))
        starts[1] = (starts[1][0], cost(starts[1][0])) if len(all_cases) > len(cases) \
            else starts[1]
    islands = [Island(i, random.Random(f"{seed}:{i}").getstate(), *starts[i % len(starts)],
                      *starts[i % len(starts)]) for i in range(config.islands)]
    checks = found = probes = 0
    accepted: dict[str, int] = {}

    def chains(until: int, epochs: int) -> None:
        """`epochs` epochs of every island, spending evaluations up to `until`."""
        nonlocal islands, evaluations, checks, found, probes, lifts, global_best, global_cost
        for epoch in range(epochs):
            remaining = until - evaluations
            if remaining < config.islands:
                break
            per_island = remaining // (config.islands * (epochs - epoch))
            if per_island < 1:
                per_island = remaining // config.islands
            tasks = [EpochTask(spec, config, tuple(all_cases), island, per_island, global_best,
                               global_cost.penalised) for island in islands]
            reports = executor.map(run_epoch, tasks)
            base = evaluations
            for n, report in enumerate(reports):
                for at, value in report.improvements:
                    if value < history[-1][1] - EPS:
                        history.append((base + n * per_island + at, value))
                evaluations += report.evaluations
                checks += report.checks
                found += report.counterexamples
                probes += report.probes
                lifts += report.lifts
                for name, count in report.moves:
                    accepted[name] = accepted.get(name, 0) + count
                known = {c.inputs for c in all_cases}
                for case in report.new_cases:
                    if case.inputs not in known:
                        known.add(case.inputs)
                        all_cases.append(case)
            islands = [r.island for r in reports]
            if any(r.new_cases for r in reports):  # rescore every island on the grown suite
                rescored = []
                for island in islands:
                    evaluations += 2
                    rescored.append(replace(island, current_cost=cost(island.current),
                                            best_cost=cost(island.best)))
                islands = rescored
                global_cost = cost(global_best)
            improved = False
            for island, report in zip(islands, reports, strict=True):
                if island.best_cost.correct and island.best_cost.penalised < global_cost.penalised - EPS:
                    global_best, global_cost = island.best, island.best_cost
                    bests.append(global_best)
                    improved = True
                    name = report.sources[-1] if report.sources else "?"
                    improved_by[name] = improved_by.get(name, 0) + 1
            if progress is not None:
                progress(evaluations, global_cost.penalised, improved)
    chains(config.budget - reserve, config.epochs)
    if config.finish > 0:
        # Finish; what the descent leaves at its fixed point goes back to the chains
        # (two thirds of it, in one epoch), then finish again; three rounds.
        for _ in range(3):
            if config.budget <= evaluations:
                break
            finish(config.budget - evaluations)
            spare = config.budget - evaluations
            if spare < 8 * config.islands:
                break
            chains(evaluations + 2 * spare // 3, 1)
    checks += finisher.checks
    found += finisher.found
    probes += finisher.probes
    verdict, winner = _final(original, bests, all_cases, config)
    if winner is not global_best:
        history.append((evaluations, cost(winner).penalised))
    return SearchResult(winner, original, tuple(all_cases), evaluations, history, verdict, found,
                        checks, accepted, probes, lifts, improved_by, finisher.total,
                        finisher.schedules)


def _without_slot(program: Program, slot: int) -> Program:
    """Every STORE and LOAD of `slot` gone: a value kept in a slot (a loop counter or
    accumulator, a round trip) stays on the stack instead. Often wrong or unverifiable;
    scored and checked like any candidate."""
    result = program
    for index in range(len(program) - 1, -1, -1):
        ins = program.instrs[index]
        if ins.op in (Opcode.STORE, Opcode.LOAD) and ins.args[0] == slot:
            result = result.delete(index)
    return result


class _Finisher:
    """Deterministic descent on a program (docs/flux.md, "Finishing"): every sound
    single edit of the cheap kinds, every deletion of 1-3 instructions, every lifting
    and every window synthesis at a wider bound, each put through the rewrite table,
    scored in a fixed order; the first that is correct, cheaper and passes the
    equivalence check becomes the program, and the descent starts again, until no
    neighbour is cheaper or the evaluations given run out. It runs in the calling
    process, in order, so the result does not depend on the workers."""

    def __init__(self, spec: Spec, config: SearchConfig, cases: list[TestCase],
                 cost: Callable[[Program], Cost]) -> None:
        self.spec, self.config, self.cases, self.cost = spec, config, cases, cost
        self.scored: dict[Program, Cost] = {}
        self.known = len(cases)
        self.settled: Program | None = None  # the last fixed point reached
        self.spent = self.total = self.checks = self.found = self.probes = self.lifts = 0
        self.schedules = 0

    def neighbours(self, program: Program) -> Iterator[tuple[Program, str]]:
        self.lifts += 1
        for lowered in lift.proposals(program, diamonds=self.config.diamonds,
                                       shared=self.config.shared,
                                       algebra=self.config.algebra,
                                       split_paths=self.config.paths,
                                       factor=self.config.factor):
            yield lowered, "lift"
        kinds = ((self.config.reuse, schedule.reuses, "reuse"),
                 (self.config.reuse, schedule.reorders, "reorder"),
                 (self.config.rotate, schedule.rotations, "rotate"),
                 (self.config.hoist, schedule.hoists, "hoist"))
        for on, generate, name in kinds:
            if on:
                proposed = generate(program)
                self.schedules += len(proposed)
                for candidate in proposed:
                    yield candidate, name
        for site in rewrites.sites(program):
            yield rewrites.apply_site(program, site), "peephole"
        for index in analysis.dead_stores(program):
            yield program.replace(index, 1, (Instr(Opcode.POP),)), "cleanup"
        if analysis.unreachable_count(program):
            yield analysis.remove_unreachable(program), "cleanup"
        for site in rewrites.neutral_sites(program):
            yield rewrites.apply_site(program, site), "rewrite"
        for slot in sorted({i.args[0] for i in program.instrs if i.op is Opcode.STORE}):
            yield _without_slot(program, slot), "promote"
        exits = {i for i, ins in enumerate(program.instrs) if ins.op in (Opcode.HALT,
                                                                         Opcode.RET)}
        for width in (1, 2, 3):
            for index in range(len(program) - width + 1):
                if not exits & set(range(index, index + width)):
                    yield program.delete(index, width), "delete"
        tr = synth.trace(program, self.cases, self.spec.fuel)
        states = 0
        for start, width in sorted(synth.windows(program, tr), key=lambda s: (-s[1], s[0])):
            if width < 2 or states >= 4 * self.config.finish_states:
                continue
            self.probes += 1
            found, expanded = synth.candidates(program, tr, start, width,
                                               max_states=self.config.finish_states)
            states += expanded
            for candidate in found:
                yield candidate, "synth"

    def descend(self, best: Program, best_cost: Cost,
                cap: int) -> Iterator[tuple[Program, Cost, str]]:
        """Yield each new best (program, cost, move); `self.spent` counts evaluations."""
        self.spent = 0
        if len(self.cases) != self.known:  # the chains found counterexamples since
            self.scored.clear()
            self.known = len(self.cases)
            self.settled = None
        if best == self.settled:  # a fixed point already: the same descent again
            return
        improved = True
        while improved and self.spent < cap:
            improved = False
            for raw, name in self.neighbours(best):
                if self.spent >= cap:
                    break
                candidate = peephole(raw)[0] if raw != best else raw
                if candidate == best or candidate in self.scored:
                    continue
                if not len(candidate) or candidate.size > MAX_CODE_BYTES:
                    continue
                self.spent += 1
                self.total += 1
                c = self.cost(candidate)
                if len(self.scored) > 20000:
                    self.scored.clear()
                self.scored[candidate] = c
                if not (c.correct and c.penalised < best_cost.penalised - EPS):
                    continue
                self.checks += 1
                verdict = check_candidate(self.spec.original, candidate,
                                          self.config.check_inputs, seed=self.total)
                if verdict.counterexample is not None:  # CEGIS, as in the chains
                    self.found += 1
                    self.cases.append(counterexample_case(self.spec.original,
                                                          verdict.counterexample))
                    self.scored.clear()
                    self.known = len(self.cases)
                    best_cost = self.cost(best)
                    continue
                best, best_cost = candidate, c
                improved = True
                yield best, best_cost, name
                break
        if not improved:
            self.settled = best


def _final(original: Program, bests: list[Program], cases: list[TestCase],
           config: SearchConfig) -> tuple[equivalence.Verdict, Program]:
    """The latest best that survives a larger check (the original always does)."""
    for candidate in reversed(bests):
        if candidate is original:
            break
        verdict = check_candidate(original, candidate, config.final_check_inputs, seed=1)
        if verdict.counterexample is None:
            return verdict, candidate
        cases.append(counterexample_case(original, verdict.counterexample))
    return equivalence.Verdict("proved", "identity", "the original program"), original
