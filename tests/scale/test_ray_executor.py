"""The Ray executor: the same results as the process pool for the same seed (FLUX search,
the classic engine, the generic engine), errors that reach the caller as themselves, and
a worker killed mid-batch reported once, never retried."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ouroboros.capabilities.evolve.engine import EvolutionPolicy, Evolver
from ouroboros.capabilities.evolve.executor import (
    ExecutorFailed,
    LocalExecutor,
    make_executor,
)
from ouroboros.capabilities.evolve.params import NamedProblem, parse_params
from ouroboros.capabilities.evolve.ray_backend import RayExecutor, resolve_address
from ouroboros.capabilities.evolve.vector import VectorProblem
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import FluxProblem, TestCase
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.search import SearchConfig, superoptimise
from ouroboros.capabilities.flux.vm import run
from ouroboros.kernel import UsageError

WIDE = Program.from_image(assemble(
    "SENSE 0\nPUSH 0\nADD\nSENSE 1\nSWAP\nSWAP\nMUL\nPUSH 1\nMUL\nNOP\nDUP\nPOP\nACT 0\nHALT"))
WIDE_CASES = tuple(TestCase.from_run(i, run(WIDE.to_image(), i))
                   for i in [(0, 0), (1, 2), (-1, 5), (7, -3), (-13, 11), (1000, 4)])


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def refuse(x: int) -> int:
    raise UsageError(f"item {x} is refused", "a hint from the worker")


def die_once(marker: str) -> int:
    with open(marker, "a") as f:
        f.write("ran\n")
    os._exit(3)


def sphere(v: tuple[float, ...]) -> float:
    return 1.0 / (1.0 + sum((x - 0.3) ** 2 for x in v))


def parabola(candidate: dict[str, float]) -> float:
    return 100 - (candidate["x"] - 3) ** 2 - (candidate["y"] + 1) ** 2


def test_map_keeps_the_order_and_runs_in_ray_workers(ray_cluster: RayExecutor) -> None:
    out = ray_cluster.map(square_and_pid, list(range(12)))
    assert [v for v, _ in out] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for _, pid in out}
    assert ray_cluster.map(square_and_pid, []) == []


def test_the_private_ray_is_bounded_and_quiet(ray_cluster: RayExecutor) -> None:
    import ray

    assert ray_cluster.workers == 2
    assert ray.cluster_resources()["CPU"] == 2  # not every core of the machine
    assert ray_cluster._temp_dir is not None
    assert Path(ray_cluster._temp_dir).name.startswith("ouro-ray-")
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    node = ray.nodes()[0]
    assert node["NodeManagerAddress"] == "127.0.0.1"  # loopback only
    assert node["Resources"]["object_store_memory"] <= 128 * 2**20
    # a second executor joins the running Ray and must not shut it down
    joined = make_executor("ray", 2)
    assert isinstance(joined, RayExecutor) and not joined._owned
    joined.close()
    assert ray.is_initialized()


def test_an_error_raised_in_a_task_reaches_the_caller_as_itself(ray_cluster: RayExecutor
                                                                ) -> None:
    with pytest.raises(UsageError) as err:
        ray_cluster.map(refuse, [1, 2])
    assert type(err.value) is UsageError
    assert err.value.message.startswith("item ") and err.value.hint == "a hint from the worker"


def test_a_worker_killed_mid_batch_is_reported_once_and_never_retried(
        ray_cluster: RayExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ExecutorFailed, match="Ray worker was lost") as err:
        ray_cluster.map(die_once, [str(marker)])
    assert err.value.exit_code == 1
    assert marker.read_text() == "ran\n"  # max_retries=0: the hostile batch ran once
    assert [v for v, _ in ray_cluster.map(square_and_pid, [3, 4])] == [9, 16]  # still serves


def test_flux_search_is_identical_on_ray_the_pool_and_locally(ray_cluster: RayExecutor) -> None:
    config = SearchConfig(budget=1200, epochs=4)
    results = []
    for executor in (LocalExecutor(), make_executor("process", 2), ray_cluster):
        try:
            r = superoptimise(WIDE, WIDE_CASES, config=config, seed=7, executor=executor)
        finally:
            if executor is not ray_cluster:
                executor.close()
        results.append((r.best, r.history, r.cases, r.evaluations, r.accepted_moves))
    assert results[0][0] != WIDE  # the search did find something, so the runs can differ
    assert results[0] == results[1] == results[2]


def test_the_classic_engine_is_identical_on_ray_and_the_pool(ray_cluster: RayExecutor) -> None:
    problem = FluxProblem.for_program(WIDE, WIDE_CASES)
    runs = []
    for workers, executor in ((2, None), (1, None), (2, ray_cluster)):
        with Evolver(problem, WIDE, EvolutionPolicy(population=24), seed=5, workers=workers,
                     executor=executor) as evolver:
            best = evolver.run(8)
            runs.append((best.genome, [r.to_json() for r in evolver.history]))
    assert any(r["accepted"] for r in runs[0][1])
    assert runs[0] == runs[1] == runs[2]


def test_the_generic_engine_is_identical_on_ray_and_the_pool(ray_cluster: RayExecutor) -> None:
    problems = [VectorProblem(sphere),
                NamedProblem.for_params(parse_params({"x": 0, "y": 2}),
                                        __import__("ouroboros.capabilities.evolve.fitness_fn",
                                                   fromlist=["x"]).FitnessFunction(
                                            f"{__name__}:parabola"))]
    for problem, start in zip(problems, [(0.9, 0.1, 0.5), (0.0, 2.0)], strict=True):
        runs = []
        for workers, executor in ((2, None), (2, ray_cluster)):
            with Evolver(problem, start, EvolutionPolicy(population=16), seed=3,
                         workers=workers, executor=executor) as evolver:
                best = evolver.run(6)
                runs.append((best.genome, best.fitness, evolver.history))
        assert runs[0] == runs[1]
        assert runs[0][1] > problem.evaluate(start)


def test_an_address_that_is_not_one_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_address(None) is None
    assert resolve_address("ray://head.example:10001") == "ray://head.example:10001"
    monkeypatch.setenv("OURO_RAY_ADDRESS", "10.1.2.3:6379")
    assert resolve_address(None) == "10.1.2.3:6379"
    for bad in ("head; rm -rf /", "http://x:1", "host", "host:port", "a b:1", "\u200bx:1"):
        with pytest.raises(UsageError, match="is not auto, HOST:PORT"):
            resolve_address(bad)


def test_without_ray_installed_the_ray_executor_is_a_usage_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match="needs Ray, which is not installed") as err:
        make_executor("ray", 2)
    assert "ouroboros[ray]" in err.value.hint and err.value.exit_code == 2
