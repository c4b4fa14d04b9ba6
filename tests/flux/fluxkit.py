"""Small FLUX programs from a test's side: assemble one-liners, record their test cases."""

from __future__ import annotations

from ouroboros.capabilities.flux.asm import assemble
from ouroboros.capabilities.flux.fitness import TestCase
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.vm import run


def prog(source: str) -> Program:
    """``"PUSH 1; HALT"``: instructions separated by ``;`` (or newlines)."""
    return Program.from_image(assemble(source.replace(";", "\n")))


def cases_of(p: Program, inputs: list[tuple[int, ...]]) -> tuple[TestCase, ...]:
    """What ``p`` does on each input, as test cases."""
    return tuple(TestCase.from_run(i, run(p.to_image(), i)) for i in inputs)
