"""The search's cost function: graded correctness plus performance (STOKE's shape).

    cost = correctness_weight x error + penalised_cycles

- **error** is the mean over the test cases of a *distance* between what the candidate
  emitted and what was expected, 0 only when every case passes:
  per emitted position, `min(popcount(a xor b), bit_length(|a - b|))` (so a value that
  is off by one costs 1 and a sign flip costs a few bits, not 64), 8 for a wrong channel,
  64 for each value missing or extra, and `TRAP_ERROR` when the run traps (division by
  zero, or fuel: the candidate ran far longer than the program it came from).
- **penalised_cycles** is the mean cycles over all cases plus the size and
  unreachable-code penalties of `fitness.penalised_cycles`.

A 0/1 score cannot tell a candidate that is almost right from one that is nonsense, so
a search driven by it never crosses a valley where two edits are needed at once. The
graded error lets a wrong-but-close stepping stone survive long enough for the second
edit. A program that does not verify has infinite cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ouroboros.capabilities.flux.compiled import run_compiled
from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
from ouroboros.capabilities.flux.fitness import TestCase, penalised_cycles
from ouroboros.capabilities.flux.isa import MASK64
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify_instructions
from ouroboros.capabilities.flux.vm import RunResult

TRAP_ERROR = 96.0
MISSING_ERROR = 64.0
CHANNEL_ERROR = 8.0


@dataclass(frozen=True)
class Cost:
    total: float
    error: float  # mean distance per case; 0 iff every case passes
    cycles: float  # mean cycles per case
    penalised: float  # cycles + size and unreachable penalties
    passed: int

    @property
    def correct(self) -> bool:
        return self.error == 0.0


INVALID = Cost(math.inf, math.inf, math.inf, math.inf, 0)


def value_distance(a: int, b: int) -> int:
    if a == b:
        return 0
    return min(((a ^ b) & MASK64).bit_count(), abs(a - b).bit_length())


def case_error(result: RunResult, case: TestCase) -> float:
    if not result.halted:
        return TRAP_ERROR
    out, expected = result.output, case.output
    error = 0.0
    for i in range(max(len(out), len(expected))):
        if i >= len(out) or i >= len(expected):
            error += MISSING_ERROR
            continue
        error += value_distance(out[i], expected[i])
        if case.channels is not None and result.channels[i] != case.channels[i]:
            error += CHANNEL_ERROR
    return error


def evaluate(program: Program, cases: Sequence[TestCase], *, fuel: int,
             correctness_weight: float = 1.0, compiled: bool = False) -> Cost:
    """The cost of one candidate on the cases (see the module docstring); `compiled`
    runs it as generated Python (`compiled.py`), which pays off for long runs."""
    try:
        decoded = program.decoded()
    except ValueError:
        return INVALID
    verdict = verify_instructions(decoded, program.params, program.size)
    if not verdict.ok:
        return INVALID
    flat = predecode(program.params, verdict.instructions)
    runner = run_compiled if compiled else run_predecoded
    error = 0.0
    cycles = 0
    passed = 0
    for case in cases:
        result = runner(flat, case.inputs, fuel=fuel)
        e = case_error(result, case)
        error += e
        passed += e == 0.0
        cycles += result.cycles
    n = max(1, len(cases))
    error /= n
    penalised = penalised_cycles(program, cycles / n)
    return Cost(correctness_weight * error + penalised, error, cycles / n, penalised, passed)
