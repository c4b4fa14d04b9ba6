"""FLUX benchmarks: interpreter speed, candidate evaluations per second, and a
superoptimisation suite (evolution vs random search vs peephole at equal budgets).

Run: `.venv/bin/python bench/flux.py [--quick]`; prints tables and writes
bench/results/flux.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, Evolver
from ouroboros.capabilities.evolve.parallel import Evaluator
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
from ouroboros.capabilities.flux.fitness import FluxProblem, TestCase, score
from ouroboros.capabilities.flux.isa import Image, Opcode
from ouroboros.capabilities.flux.program import Instr, Program
from ouroboros.capabilities.flux.rewrites import peephole
from ouroboros.capabilities.flux.verifier import verify
from ouroboros.capabilities.flux.vm import RunResult, run
from ouroboros.capabilities.flux.wasm import WasmRunner

console = Console()
INPUTS = ((0, 0), (1, 2), (-1, 5), (7, -3), (-13, 11), (1000, 4), (123456, -98765))


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    optimal: str


SUITE = (
    Case("add_zero", "SENSE 0\nPUSH 0\nADD\nACT 0\nHALT", "SENSE 0\nACT 0\nHALT"),
    Case("double_by_mul", "SENSE 0\nPUSH 2\nMUL\nACT 0\nHALT", "SENSE 0\nDUP\nADD\nACT 0\nHALT"),
    Case("nops_dup_pop", "SENSE 0\nNOP\nDUP\nPOP\nNOP\nACT 0\nHALT", "SENSE 0\nACT 0\nHALT"),
    Case("swap_swap", "SENSE 0\nSENSE 1\nSWAP\nSWAP\nSUB\nACT 0\nHALT",
         "SENSE 0\nSENSE 1\nSUB\nACT 0\nHALT"),
    Case("double_negations", "SENSE 0\nNEG\nNEG\nNOT\nNOT\nACT 0\nHALT", "SENSE 0\nACT 0\nHALT"),
    Case("add_one_twice", "SENSE 0\nPUSH 1\nADD\nPUSH 1\nADD\nACT 0\nHALT",
         "SENSE 0\nINC\nINC\nACT 0\nHALT"),
    Case("xor_self", "SENSE 0\nDUP\nXOR\nSENSE 1\nADD\nACT 0\nHALT", "SENSE 1\nACT 0\nHALT"),
    Case("twice_product", "SENSE 0\nSENSE 1\nMUL\nSENSE 1\nSENSE 0\nMUL\nADD\nACT 0\nHALT",
         "SENSE 0\nSENSE 1\nMUL\nDUP\nADD\nACT 0\nHALT"),
    Case("dead_store", "SENSE 0\nSTORE 0\nLOAD 0\nPUSH 3\nADD\nACT 0\nHALT",
         "SENSE 0\nPUSH 3\nADD\nACT 0\nHALT"),
    Case("constant_fold", "PUSH 3\nPUSH 4\nADD\nSENSE 0\nMUL\nACT 0\nHALT",
         "PUSH 7\nSENSE 0\nMUL\nACT 0\nHALT"),
    Case("useless_jump", "SENSE 0\nJMP next\nnext: INC\nACT 0\nHALT", "SENSE 0\nINC\nACT 0\nHALT"),
    Case("mul_by_8", "SENSE 0\nPUSH 8\nMUL\nACT 0\nHALT", "SENSE 0\nPUSH 3\nSHL\nACT 0\nHALT"),
    Case("always_taken", "SENSE 0\nPUSH 1\nJNZ l\nNEG\nl: ACT 0\nHALT", "SENSE 0\nACT 0\nHALT"),
    Case("loop_times_3",
         "PUSH 0\nSTORE 0\nPUSH 3\nl: LOAD 0\nSENSE 0\nADD\nSTORE 0\nDEC\nDUP\nJNZ l\nPOP\n"
         "LOAD 0\nACT 0\nHALT",
         "SENSE 0\nDUP\nDUP\nADD\nADD\nACT 0\nHALT"),
)


def program(source: str) -> Program:
    return Program.from_image(assemble(source))


def cases_for(source: str) -> tuple[TestCase, ...]:
    image = assemble(source)
    return tuple(TestCase(i, run(image, i).output) for i in INPUTS)


def speed(seconds_hint: float) -> list[dict[str, object]]:
    """Instructions per second on a tight loop, per engine."""
    loop = assemble("SENSE 0\nl: DEC\nDUP\nJNZ l\nHALT")
    triangle = assemble((Path(__file__).parents[1] / "examples/flux/triangle.fasm").read_text())
    rows: list[dict[str, object]] = []
    wasm = WasmRunner()
    for name, image, n in (("countdown", loop, 10**9), ("triangle", triangle, 10**9)):
        engines: dict[str, Callable[[Image, int], RunResult]] = {
            "reference": lambda im, n: run(im, [n], fuel=2_000_000),
            "fast (python)": lambda im, n: run_predecoded(predecode(im.params, verify(im).instructions),
                                                           [n], fuel=20_000_000),
            "wasm": lambda im, n: wasm.run(im, [n], fuel=2_000_000_000),
        }
        wasm.compile(image)
        for engine, fn in engines.items():
            start = time.perf_counter()
            result = fn(image, n)
            elapsed = time.perf_counter() - start
            rows.append({"program": name, "engine": engine, "instructions": result.steps,
                         "seconds": round(elapsed, 4),
                         "instructions_per_second": round(result.steps / elapsed)})
    return rows


def fifty_instruction_program() -> Program:
    ops = (Opcode.ADD, Opcode.XOR, Opcode.SUB, Opcode.MUL, Opcode.OR, Opcode.ADD)
    instrs = [Instr(Opcode.SENSE, (0,))]
    for i in range(24):
        instrs += [Instr(Opcode.SENSE, (1,)), Instr(ops[i % len(ops)])]
    instrs += [Instr(Opcode.ACT, (0,)), Instr(Opcode.HALT)]
    return Program(tuple(instrs))


def evaluations(count: int) -> list[dict[str, object]]:
    base = fifty_instruction_program()
    cases = cases_for_program(base)
    problem = FluxProblem.for_program(base, cases)
    rng = random.Random(0)
    candidates: list[Program] = []
    while len(candidates) < count:
        mutated = problem.mutate(base, rng)
        if mutated is not None:
            candidates.append(mutated[0])
    rows: list[dict[str, object]] = []
    for workers in (1, 2):
        with Evaluator(problem, workers) as evaluator:
            evaluator.evaluate(candidates[:64])  # start the pool
            start, cpu = time.perf_counter(), time.process_time()
            evaluator.evaluate(candidates)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"workers": workers, "candidates": count, "program_instructions": len(base),
                     "test_cases": len(cases), "seconds": round(elapsed, 3),
                     "evaluations_per_second": round(count / elapsed),
                     "per_cpu_second": round(count / cpu) if workers == 1 else None,
                     "load_average": round(os.getloadavg()[0], 2)})
    return rows


def cases_for_program(p: Program) -> tuple[TestCase, ...]:
    image = p.to_image()
    return tuple(TestCase(i, run(image, i).output) for i in INPUTS[:5])


def random_search(original: Program, problem: FluxProblem, budget: int,
                  seed: int) -> tuple[float, int]:
    """Random programs ending in HALT, each instruction drawn half the time from the
    original's own (jump-free) instructions and half from the mutation vocabulary;
    lengths up to the original's. Keeps the best."""
    rng = random.Random(seed)
    own = [i for i in original.instrs if not i.is_jump and i.op is not Opcode.HALT]
    best, at = 0.0, 0
    for n in range(1, budget + 1):
        length = rng.randint(1, max(1, len(original) - 1))
        instrs = tuple(rng.choice(own) if rng.random() < 0.5 else
                       problem.proposer.random_instr(original, rng) for _ in range(length))
        fitness = problem.evaluate(Program((*instrs, Instr(Opcode.HALT)), original.params))
        if fitness > best:
            best, at = fitness, n
    return best, at


def cycles_of(fitness: float) -> float | None:
    return round(1 / fitness, 2) if fitness > 0 else None


def superopt(budget: int, seeds: tuple[int, ...]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    population = 16
    for case in SUITE:
        original = program(case.source)
        cases = cases_for(case.source)
        optimal = score(program(case.optimal), cases)
        assert optimal.confidence == 1.0, f"{case.name}: the optimal program is wrong"
        problem = FluxProblem.for_program(original, cases)
        before = score(original, cases).cycles_per_result
        runs = []
        for seed in seeds:
            with Evolver(problem, original, EvolutionPolicy(population=population),
                         seed=seed) as evolver:
                best = evolver.run(max(1, (budget - 1) // population))
                used = 1 + sum(r.evaluations for r in evolver.history
                               if r.generation <= best.generation)
                runs.append((score(best.genome, cases).cycles_per_result, used))
        random_best, random_at = random_search(original, problem, budget, seeds[0])
        peep, steps = peephole(original)
        peep_score = score(peep, cases)
        reached = [c <= optimal.cycles_per_result for c, _ in runs]
        rows.append({
            "program": case.name, "cycles_before": before, "optimum": optimal.cycles_per_result,
            "evolved": runs[0][0], "evaluations_to_best": runs[0][1],
            "reached_optimum_runs": f"{sum(reached)}/{len(runs)}",
            "reached": reached[0],
            "random_search": cycles_of(random_best), "random_evaluations_to_best": random_at,
            "peephole": peep_score.cycles_per_result if peep_score.confidence == 1 else None,
            "peephole_rewrites": steps,
        })
    return rows


def table(title: str, rows: list[dict[str, object]]) -> None:
    t = Table(title=title)
    for key in rows[0]:
        t.add_column(key)
    for row in rows:
        t.add_row(*(str(v) for v in row.values()))
    console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller budgets")
    parser.add_argument("--budget", type=int, default=3000, help="evaluations per method")
    args = parser.parse_args()
    budget = 600 if args.quick else args.budget
    seeds = (0,) if args.quick else (0, 1, 2)
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
        "cpu": cpu, "python": platform.python_version(), "budget": budget, "seeds": list(seeds),
    }
    speed_rows = speed(1.0)
    table("Interpreter speed", speed_rows)
    eval_rows = evaluations(1000 if args.quick else 6000)
    table("Candidate evaluations (50-instruction programs)", eval_rows)
    suite_rows = superopt(budget, seeds)
    table(f"Superoptimisation at {budget} evaluations per method", suite_rows)
    reached = sum(bool(r["reached"]) for r in suite_rows)
    all_runs = [r["reached_optimum_runs"] for r in suite_rows]
    hits = sum(int(str(x).split("/")[0]) for x in all_runs)
    total = sum(int(str(x).split("/")[1]) for x in all_runs)
    random_hits = sum(r["random_search"] is not None and float(str(r["random_search"])) <=
                      float(str(r["optimum"])) for r in suite_rows)
    peephole_hits = sum(r["peephole"] is not None and float(str(r["peephole"])) <=
                        float(str(r["optimum"])) for r in suite_rows)
    summary = {"evolution_reached_seed0": f"{reached}/{len(suite_rows)}",
               "evolution_reached_all_seeds": f"{hits}/{total}",
               "random_search_reached": f"{random_hits}/{len(suite_rows)}",
               "peephole_reached": f"{peephole_hits}/{len(suite_rows)}",
               "median_evaluations_to_best": statistics.median(
                   int(str(r["evaluations_to_best"])) for r in suite_rows)}
    console.print(summary)
    results.update({"speed": speed_rows, "evaluations": eval_rows, "superopt": suite_rows,
                    "summary": summary})
    out = Path(__file__).parent / "results" / "flux.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
