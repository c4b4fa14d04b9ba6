"""The evidence benchmark's scenario, small: self-graded tools are all served, independently
judged wrong ones never are (bench/llm_evidence.py runs the full 30 x 5)."""

from __future__ import annotations

from types import ModuleType

import pytest

from benchkit import load_bench
from ouroboros.capabilities.skills.runtimes import Runtimes


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("llm_evidence")


def test_every_wrong_variant_differs_from_the_right_one_on_its_edge_cases(
    bench: ModuleType
) -> None:
    for task in bench.TASKS:
        assert any(bench.evaluate(task.right, x) != bench.evaluate(task.wrong, x)
                   for x in bench.EDGES[task.name]), task.name


def test_wrong_tools_are_served_when_self_graded_and_not_when_judged_independently(
    bench: ModuleType, runtimes: Runtimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {"max_list", "count_vowels", "clamp", "word_count", "reverse_string", "double"}
    wrong = {"max_list", "count_vowels", "clamp"}
    tasks = [t for t in bench.TASKS if t.name in names]

    def layout(mode: str, seed: int) -> dict[str, object]:
        return {n: bench.Plan(code_wrong=n in wrong, examples=False,
                              writer="none" if mode == "baseline" else "right") for n in names}

    monkeypatch.setattr(bench, "plans", layout)
    base = bench.run("baseline", 3, runtimes, tasks)
    assert base["wrong_served"] == base["wrong"] == 3 and base["right_served"] == 3
    judged = bench.run("independent", 3, runtimes, tasks)
    assert judged["wrong"] == 3 and judged["wrong_served"] == 0
    assert judged["right_served"] == judged["right"] == 3
