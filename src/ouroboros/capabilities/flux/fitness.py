"""Test cases, fitness, and FLUX as a problem for the generic evolution engine.

fitness = (1 / penalised_cycles) x confidence x trust, where
- confidence = passed cases / all cases (a case passes when the run halts without a
  trap and the values emitted by ACT/INSTINCT, in order, equal the expected output);
- cycles_per_result = mean cycles over the passing cases;
- trust = the agent's trust in [0, 1];
- penalised_cycles = cycles_per_result + 0.001 x code bytes + 0.25 x unreachable
  instructions (so of two equally fast programs the smaller wins, and code after HALT
  is never free).
A program that fails verification, or passes no case, has fitness 0.

Under evolution (`FluxProblem`) two guards keep the formula honest: a candidate that
passes fewer cases than `min_confidence` requires (by default the starting program's
confidence) scores 0, so speed is never bought with wrong answers; and each run gets
`fuel` cycles (by default 4 x the starting program's slowest passing case + 100), so a
candidate that loops far longer than its parent is cut off cheaply.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ouroboros.capabilities.flux import genome as genome_mod
from ouroboros.capabilities.flux.analysis import unreachable_count
from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
from ouroboros.capabilities.flux.isa import DEFAULT_FUEL, INT64_MAX, INT64_MIN
from ouroboros.capabilities.flux.mutations import Proposer, breed
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify_instructions
from ouroboros.capabilities.flux.vm import RunResult

MAX_CASES = 1000
_CASE_KEYS = {"input", "output", "channels"}


@dataclass(frozen=True)
class TestCase:
    """Inputs and the expected emitted values; `channels`, when given, must match too."""

    __test__ = False  # not a pytest class
    inputs: tuple[int, ...]
    output: tuple[int, ...]
    channels: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, list[int]]:
        out = {"input": list(self.inputs), "output": list(self.output)}
        if self.channels is not None:
            out["channels"] = list(self.channels)
        return out

    def passed_by(self, result: RunResult) -> bool:
        return result.halted and result.output == self.output and (
            self.channels is None or result.channels == self.channels)

    @classmethod
    def from_run(cls, inputs: Sequence[int], result: RunResult) -> TestCase:
        """The case a reference run defines: its outputs and their channels."""
        return cls(tuple(inputs), result.output, result.channels)


class TestsFileError(ValueError):
    """A malformed tests file; the message names the line or the case."""

    __test__ = False


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A case with a key twice reads as one thing and parses as another (the last)."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise TestsFileError(f"duplicate key {json.dumps(key)} in a case")
        out[key] = value
    return out


def parse_tests(text: str) -> tuple[TestCase, ...]:
    """Parse `[{"input": [ints], "output": [ints]}, ...]` strictly."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise TestsFileError(f"line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, list) or not data:
        raise TestsFileError("expected a non-empty JSON list of {\"input\": [...], \"output\": [...]}")
    if len(data) > MAX_CASES:
        raise TestsFileError(f"{len(data)} cases; at most {MAX_CASES}")
    cases = []
    for n, item in enumerate(data, start=1):
        if not isinstance(item, dict) or not {"input", "output"} <= set(item) <= _CASE_KEYS:
            raise TestsFileError(f"case {n}: must be an object with \"input\" and \"output\" "
                                 "(and optionally \"channels\")")
        for key in sorted(set(item)):
            values = item[key]
            if not isinstance(values, list) or not all(
                    type(v) is int and INT64_MIN <= v <= INT64_MAX for v in values):
                raise TestsFileError(f"case {n}: \"{key}\" must be a list of 64-bit integers")
        channels = item.get("channels")
        if channels is not None and (len(channels) != len(item["output"]) or
                                     not all(0 <= c <= 255 for c in channels)):
            raise TestsFileError(f"case {n}: \"channels\" needs one channel (0..255) per output")
        cases.append(TestCase(tuple(item["input"]), tuple(item["output"]),
                              None if channels is None else tuple(channels)))
    return tuple(cases)


@dataclass(frozen=True)
class Score:
    fitness: float
    confidence: float
    cycles_per_result: float
    passed: int
    total: int
    reasons: tuple[str, ...] = ()
    worst_cycles: int = 0
    penalised_cycles: float = 0.0  # cycles per result + size and unreachable-code penalties

    @property
    def valid(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict[str, object]:
        return {"fitness": self.fitness, "confidence": self.confidence,
                "cycles_per_result": self.cycles_per_result, "passed": self.passed,
                "total": self.total, "reasons": list(self.reasons),
                "penalised_cycles": self.penalised_cycles}


def score(program: Program, cases: Sequence[TestCase], *, trust: float = 1.0,
          fuel: int = DEFAULT_FUEL) -> Score:
    """Score a program on its cases (see the module docstring for the definitions)."""
    try:
        decoded = program.decoded()
    except ValueError as exc:
        return Score(0.0, 0.0, 0.0, 0, len(cases), (str(exc),))
    verdict = verify_instructions(decoded, program.params, program.size)
    if not verdict.ok:
        return Score(0.0, 0.0, 0.0, 0, len(cases), verdict.reasons)
    compiled = predecode(program.params, verdict.instructions)
    cycles = []
    for case in cases:
        result = run_predecoded(compiled, case.inputs, fuel=fuel)
        if case.passed_by(result):
            cycles.append(result.cycles)
    if not cycles:
        return Score(0.0, 0.0, 0.0, 0, len(cases), (), 0)
    confidence = len(cycles) / len(cases)
    per_result = sum(cycles) / len(cycles)
    penalised = penalised_cycles(program, per_result)
    fitness = (1.0 / max(penalised, 1.0)) * confidence * trust
    return Score(fitness, confidence, per_result, len(cycles), len(cases), (), max(cycles),
                 penalised)


SIZE_PENALTY = 0.001  # cycles per code byte: breaks ties between equally fast programs
UNREACHABLE_PENALTY = 0.25  # cycles per instruction no path reaches (code after HALT)


def penalised_cycles(program: Program, cycles_per_result: float) -> float:
    """Cycles per result plus the size and unreachable-code penalties (docs/flux.md)."""
    return (cycles_per_result + SIZE_PENALTY * program.size
            + UNREACHABLE_PENALTY * unreachable_count(program))


@dataclass(frozen=True)
class FluxProblem:
    """FLUX programs under the generic engine (picklable, so it runs in workers)."""

    cases: tuple[TestCase, ...]
    trust: float = 1.0
    fuel: int = DEFAULT_FUEL
    min_confidence: float = 0.0
    genome_rate: float = 0.1
    proposer: Proposer = field(default_factory=Proposer)

    @classmethod
    def for_program(cls, program: Program, cases: Sequence[TestCase], *, trust: float = 1.0,
                    **options: object) -> FluxProblem:
        """Guards calibrated on the starting program (see the module docstring)."""
        start = score(program, cases, trust=trust)
        fuel = 4 * start.worst_cycles + 100 if start.worst_cycles else DEFAULT_FUEL
        return cls(tuple(cases), trust=trust, fuel=fuel, min_confidence=start.confidence,
                   **options)  # type: ignore[arg-type]

    def mutate(self, genome: Program, rng: random.Random) -> tuple[Program, str] | None:
        if rng.random() < self.genome_rate and len(genome) > 0:
            mutated, kind = genome_mod.mutate(genome_mod.encode(genome), rng)
            return genome_mod.decode(mutated), f"Genome:{kind}"
        for _ in range(4):
            mutation = self.proposer.propose(genome, rng)
            if mutation is not None:
                return mutation.program, mutation.kind.value
        return None

    def crossover(self, a: Program, b: Program, rng: random.Random) -> Program:
        return breed(a, b, rng)

    def evaluate(self, genome: Program) -> float:
        result = score(genome, self.cases, trust=self.trust, fuel=self.fuel)
        return result.fitness if result.confidence >= self.min_confidence else 0.0
