"""Small FLUX programs from a test's side: assemble one-liners, record their test cases."""

from __future__ import annotations

from ouroboros.capabilities.evolve.executor import LocalExecutor, ProcessExecutor
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
