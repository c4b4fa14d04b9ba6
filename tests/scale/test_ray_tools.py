"""Tool tests in bulk on Ray: hostile tools meet the same sandbox limits inside a Ray
worker (fuel, memory, deadline, output), the worker survives them, and `ouro tool test
--executor ray` reports exactly what the process pool and this process report."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from ouroboros.capabilities.evolve.executor import make_executor
from ouroboros.capabilities.evolve.ray_backend import RayExecutor
from ouroboros.capabilities.skills import Limits, SkillStore, ToolSpec
from ouroboros.capabilities.skills.bulk_testing import test_tools as bulk_test
from ouroboros.capabilities.skills.spec import TestCase as Case
from ouroboros.capabilities.skills.starter import starter_dirs
from ouroboros.capabilities.skills.testing import CaseResult, run_batch
from ouroboros.capabilities.skills.testing import TestBatch as Batch
from ouroboros.kernel import Runtime

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from clikit import run as ouro

# Honest on its registered case; told "spin", "grow", "flood" or "sleep" it attacks.
HOSTILE = """import json, sys
x = json.loads(sys.stdin.read())
if x == "spin":
    while True:
        pass
elif x == "grow":
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))
elif x == "flood":
    while True:
        print("A" * 1000)
print(json.dumps(x))
"""
LIMITS = Limits(fuel=20_000_000, deadline_s=2.0, memory_bytes=32 << 20, output_bytes=4096)


def judged_where(batch: Batch) -> tuple[int, list[CaseResult]]:
    return os.getpid(), run_batch(batch)


@pytest.fixture
def hostile_batch(tmp_path: Path) -> Batch:
    store = SkillStore(tmp_path / "store", limits=LIMITS)
    spec = ToolSpec(name="hostile", description="honest once, hostile on demand",
                    language="python", runtime="micropython",
                    files={"src/main.py": HOSTILE.encode(),
                           "tests/cases.json": b'[{"input": 1, "expected": 1}]'})
    store.add(spec)
    return store.test_batch("hostile")


def test_a_hostile_tool_meets_every_limit_inside_a_ray_worker(
        ray_cluster: RayExecutor, hostile_batch: Batch) -> None:
    attacks = {"spin": "FuelExhausted", "grow": "MemoryLimitExceeded",
               "flood": "OutputTooLarge"}
    cases = tuple(Case(a, "done", index=i) for i, a in enumerate(attacks))
    no_fuel = dataclasses.replace(hostile_batch, cases=(Case("spin", "done"),),
                                  limits=dataclasses.replace(LIMITS, fuel=None, deadline_s=0.5))
    batches = [dataclasses.replace(hostile_batch, cases=cases), no_fuel, hostile_batch]
    (pid, limited), (pid2, deadline), (pid3, honest) = ray_cluster.map(judged_where, batches)
    assert os.getpid() not in (pid, pid2, pid3)  # judged in Ray workers, not here
    assert [r.error_type for r in limited] == list(attacks.values())
    assert not any(r.ok for r in limited)
    assert [r.error_type for r in deadline] == ["DeadlineExceeded"]
    assert [r.ok for r in honest] == [True]  # the worker that met the attacks still serves
    # and the same batch judged here says the same, limit for limit
    assert [r.error_type for r in run_batch(batches[0])] == list(attacks.values())


def test_a_limit_cannot_be_widened_by_the_batch_split(ray_cluster: RayExecutor,
                                                      hostile_batch: Batch) -> None:
    many = tuple(Case("spin" if i % 3 == 0 else i, i, index=i) for i in range(7))
    batch = dataclasses.replace(hostile_batch, cases=many)
    parts = batch.split(3)
    assert [len(p.cases) for p in parts] == [3, 3, 1]
    assert all(p.limits == LIMITS for p in parts)
    results = [r for part in ray_cluster.map(run_batch, parts) for r in part]
    assert [r.case.index for r in results] == list(range(7))
    assert [r.error_type for r in results if not r.ok] == ["FuelExhausted"] * 3


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    for d in starter_dirs():
        if json.loads((d / "meta.json").read_text())["language"] == "wat" or \
                d.name == "word_stats":
            assert ouro("tool", "add", str(d), "--home", str(home), "--json").code == 0
    return home


def test_tool_test_on_ray_reports_what_the_pool_and_this_process_report(
        ray_cluster: RayExecutor, workspace: Path) -> None:
    reports = {}
    for executor in ("local", "process", "ray"):
        r = ouro("tool", "test", "--all", "--executor", executor, "--home", str(workspace),
                 "--json", timeout=300)
        assert r.code == 0, r.describe()
        body = r.json()
        assert body["executor"] == executor and body["passed"] is True
        reports[executor] = body["tools"]
    assert len(reports["ray"]) >= 2
    assert reports["local"] == reports["process"] == reports["ray"]
    assert all(t["total"] == len(t["cases"]) > 0 for t in reports["ray"])


def test_tool_test_names_its_usage_errors(workspace: Path) -> None:
    for args, message in ((["sum_ints", "--all"], "not both"), ([], "name a tool"),
                          (["sum_ints", "sum_ints"], "given twice"),
                          (["sum_ints", "word_stats", "--version", "x"], "exactly one tool")):
        r = ouro("tool", "test", *args, "--home", str(workspace), "--json")
        assert r.code == 2 and message in r.json()["error"]["message"], r.describe()


def test_bulk_tests_check_every_version_before_anything_runs(tmp_path: Path,
                                                             hostile_batch: Batch) -> None:
    store = SkillStore(tmp_path / "store", limits=LIMITS)
    version = store.get("hostile")
    (version.path / "src" / "main.py").write_text("print(1)\n")  # edited after registration
    from ouroboros.capabilities.skills import ToolCorrupt

    executor = make_executor("local")
    with pytest.raises(ToolCorrupt):
        bulk_test(store, ["hostile"], executor)
