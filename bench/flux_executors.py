"""Executors side by side: the FLUX search (and classic generations) on this process, the
process pool and Ray, in one run, plus a scale-out estimate from measured per-task costs.

Run through `bench/flux.py --executor ray [--ray-address ADDR]`; writes
bench/results/flux_executors.json. The model (docs/scale.md, "The scale-out model"):

    one epoch  = t_driver + t_dispatch(n_tasks) + ceil(n_tasks / cpus) x t_task
    t_task     = steps per task x c_eval          (c_eval: one candidate, measured)
    t_dispatch = d_fixed + n_tasks x d_task        (fitted to Ray no-op maps of 2..16 tasks)

With one island per CPU (islands = cpus), a budget B over E epochs gives each task
B / (cpus x E) steps, so evaluations/s = B / (E x epoch). Every term is measured on this
machine in this run; only the cluster size is simulated.
"""

from __future__ import annotations

import os
import pickle
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, Evolver
from ouroboros.capabilities.evolve.executor import Executor, LocalExecutor, make_executor
from ouroboros.capabilities.flux.fitness import FluxProblem, TestCase
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.search import SearchConfig, superoptimise

T = TypeVar("T")
R = TypeVar("R")


class Timed:
    """A local executor that times every task and the bytes sent each way."""

    workers = 1

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.sent: list[int] = []
        self.received: list[int] = []

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        out = []
        for item in items:
            start = time.perf_counter()
            result = fn(item)
            self.seconds.append(time.perf_counter() - start)
            self.sent.append(len(pickle.dumps(item)))
            self.received.append(len(pickle.dumps(result)))
            out.append(result)
        return out

    def close(self) -> None:
        pass


def echo(item: Any) -> Any:
    return item


def _search(executor: Executor, base: Program, cases: tuple[TestCase, ...],
            config: SearchConfig) -> tuple[float, Any]:
    start = time.perf_counter()
    result = superoptimise(base, cases, config=config, seed=0, executor=executor)
    return time.perf_counter() - start, result


def _classic(executor: Executor | None, workers: int, base: Program,
             cases: tuple[TestCase, ...], generations: int, population: int
             ) -> tuple[float, int, Any]:
    problem = FluxProblem.for_program(base, cases)
    with Evolver(problem, base, EvolutionPolicy(population=population), seed=0,
                 workers=workers, executor=executor) as evolver:
        start = time.perf_counter()
        best = evolver.run(generations)
        return time.perf_counter() - start, evolver.evaluations, (best.genome, evolver.history)


def dispatch_costs(executor: Executor, payload: Any, sizes: Sequence[int] = (2, 4, 8, 16),
                   rounds: int = 15) -> dict[int, float]:
    """Median seconds for one `map(echo, [payload] * n)`: pure dispatch and transfer."""
    executor.map(echo, [payload] * 2)  # warm the workers
    out = {}
    for n in sizes:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            executor.map(echo, [payload] * n)
            times.append(time.perf_counter() - start)
        out[n] = statistics.median(times)
    return out


def fit_line(points: dict[int, float]) -> tuple[float, float]:
    """Least squares t = a + b n."""
    xs, ys = list(points), list(points.values())
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mx) ** 2 for x in xs)
    return max(0.0, my - b * mx), max(0.0, b)


def scale_out(budget: int, epochs: int, c_eval: float, t_driver: float, d_fixed: float,
              d_task: float, cpus: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128)
              ) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in cpus:
        steps = budget / (n * epochs)
        epoch = t_driver + d_fixed + n * d_task + steps * c_eval
        seconds = epochs * epoch
        rows.append({"cpus (= islands)": n, "steps_per_task": round(steps),
                     "seconds": round(seconds, 3),
                     "evaluations_per_second": round(budget / seconds),
                     "efficiency": round((budget * c_eval) / (n * seconds), 2)})
    return rows


def compare(base: Program, cases: tuple[TestCase, ...], budget: int,
            ray_address: str | None) -> dict[str, Any]:
    config = SearchConfig(budget=budget)
    pool = make_executor("process", 2)  # forked before Ray's threads exist
    started = time.perf_counter()
    ray = make_executor("ray", 2, ray_address=ray_address)
    ray_startup = time.perf_counter() - started
    executors: dict[str, Executor] = {"local": LocalExecutor(), "process": pool, "ray": ray}
    try:
        seconds: dict[str, list[float]] = {k: [] for k in executors}
        bests = {}
        evaluations = 0
        for _ in range(2):  # interleaved: the machine is shared and noisy
            for kind, ex in executors.items():
                t, result = _search(ex, base, cases, config)
                seconds[kind].append(t)
                bests[kind] = (result.best, result.history)
                evaluations = result.evaluations
        timed = Timed()
        _, _ = _search(timed, base, cases, config)
        local_total = min(seconds["local"])
        task_seconds = sum(timed.seconds)
        steps_per_task = evaluations / len(timed.seconds)
        c_eval = task_seconds / evaluations
        t_driver = max(0.0, local_total - task_seconds) / config.epochs
        payload = pickle.loads(pickle.dumps(_first_task(base, cases, config)))
        ray_dispatch = dispatch_costs(ray, payload)
        pool_dispatch = dispatch_costs(pool, payload)
        d_fixed, d_task = fit_line(ray_dispatch)
        population, generations = 256, max(2, budget // 256)
        classic: dict[str, dict[str, object]] = {}
        histories = {}
        runs: dict[str, tuple[Executor | None, int]] = {"local": (None, 1), "process": (None, 2),
                                                        "ray": (ray, 2)}
        for kind, (engine_executor, workers) in runs.items():
            t, made, history = _classic(engine_executor, workers, base, cases, generations,
                                        population)
            histories[kind] = history
            classic[kind] = {"seconds": round(t, 3), "evaluations_per_second": round(made / t)}
        search_rows = {kind: {"seconds": round(min(t), 3),
                              "evaluations_per_second": round(evaluations / min(t)),
                              "vs_process": round(min(seconds["process"]) / min(t), 2)}
                       for kind, t in seconds.items()}
        return {
            "budget": budget, "islands": config.islands, "epochs": config.epochs,
            "search": search_rows,
            "search_same_result": bests["local"] == bests["process"] == bests["ray"],
            "classic_population_256": classic,
            "classic_same_result": histories["local"] == histories["process"] == histories["ray"],
            "ray_startup_seconds": round(ray_startup, 2),
            "measured": {
                "tasks": len(timed.seconds), "steps_per_task": round(steps_per_task),
                "c_eval_ms": round(c_eval * 1e3, 4),
                "task_ms_median": round(statistics.median(timed.seconds) * 1e3, 2),
                "driver_ms_per_epoch": round(t_driver * 1e3, 2),
                "task_bytes_sent_median": int(statistics.median(timed.sent)),
                "task_bytes_returned_median": int(statistics.median(timed.received)),
                "ray_map_ms": {n: round(v * 1e3, 2) for n, v in ray_dispatch.items()},
                "process_map_ms": {n: round(v * 1e3, 2) for n, v in pool_dispatch.items()},
                "ray_dispatch_fixed_ms": round(d_fixed * 1e3, 3),
                "ray_dispatch_per_task_ms": round(d_task * 1e3, 3),
            },
            "scale_out_estimate": {
                f"budget_{b}": scale_out(b, config.epochs, c_eval, t_driver, d_fixed, d_task)
                for b in (budget, 100 * budget)},
            "load_average": round(os.getloadavg()[0], 2),
        }
    finally:
        ray.close()
        pool.close()


def _first_task(base: Program, cases: tuple[TestCase, ...], config: SearchConfig) -> Any:
    """One real epoch task (what travels to a worker), captured from a tiny search."""
    captured: list[Any] = []

    class Capture(LocalExecutor):
        def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
            captured.extend(items)
            return [fn(item) for item in items]

    superoptimise(base, cases, config=SearchConfig(budget=config.islands * 3, epochs=1),
                  seed=0, executor=Capture())
    return captured[0]


