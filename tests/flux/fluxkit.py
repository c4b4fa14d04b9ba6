"""Small FLUX programs from a test's side: assemble one-liners, record their test cases."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from ouroboros.capabilities.evolve.executor import LocalExecutor, ProcessExecutor
from ouroboros.capabilities.flux import lift
from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import TestCase
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.search import SearchConfig, SearchResult, superoptimise
from ouroboros.capabilities.flux.vm import run


def prog(source: str) -> Program:
    """``"PUSH 1; HALT"``: instructions separated by ``;`` (or newlines)."""
    return Program.from_image(assemble(source.replace(";", "\n")))


def cases_of(p: Program, inputs: list[tuple[int, ...]]) -> tuple[TestCase, ...]:
    """What ``p`` does on each input, as test cases."""
    return tuple(TestCase.from_run(i, run(p.to_image(), i)) for i in inputs)


def locally_and_on_two_workers(source: Program, cases: tuple[TestCase, ...],
                               config: SearchConfig, seed: int
                               ) -> tuple[SearchResult, SearchResult]:
    """The same search in this process and on a pool of two worker processes."""
    local = superoptimise(source, cases, config=config, seed=seed, executor=LocalExecutor())
    pool = ProcessExecutor(2)
    try:
        return local, superoptimise(source, cases, config=config, seed=seed, executor=pool)
    finally:
        pool.close()


def search_with_planted(monkeypatch: pytest.MonkeyPatch, module: ModuleType, name: str,
                        corrupt: Callable[[Any], Any], source: Program,
                        cases: tuple[TestCase, ...], budget: int
                        ) -> tuple[SearchResult, list[Any]]:
    """Search `source` (seed 0, two epochs) with `module.name` wrapped so that each answer
    it gives is `corrupt`ed first; returns the result and the planted answers (the
    lifter's memo is cleared around it, so nothing planted outlives the test)."""
    planted: list[Any] = []
    real = getattr(module, name)

    def wrong(*args: object, **kwargs: object) -> Any:
        got = real(*args, **kwargs)
        if got is None:
            return None
        bad = corrupt(got)
        planted.append(bad)
        return bad

    monkeypatch.setattr(module, name, wrong)
    lift._MEMO.clear()
    try:
        result = superoptimise(source, cases, config=SearchConfig(budget=budget, epochs=2),
                               seed=0)
    finally:
        lift._MEMO.clear()
    return result, planted
