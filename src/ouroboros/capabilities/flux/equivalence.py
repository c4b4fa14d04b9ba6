"""Are two FLUX programs the same function? Proof by SMT, else a large differential test.

A run's observable behaviour is its *outcome*: the values it emits, in order, the channel
of each, and how it ends (halt, or which trap). Two programs are equivalent when every
input vector gives both the same outcome. Cycles and fuel are not behaviour: fuel is a
resource bound, and a run that exhausts it tells nothing about the function.

`check` first tries a proof. Both programs are executed *symbolically* over 64-bit
bit-vectors (z3): every input is a variable, the stack and the 16 memory slots hold
expressions, and a branch whose condition is not a constant forks the path. Loops whose
trip count is fixed unroll; loops bounded by a small input-dependent count fork a few
times. When the paths of both programs are known (within `MAX_PATHS` paths and
`MAX_STEPS` instructions a path), one query asks z3 for an input on which some pair of
paths is feasible and the outcomes differ: `unsat` is a proof, a model is a
counterexample. Beyond those bounds (a loop the inputs drive far), or when z3 gives up,
`check` falls back to running both programs on a generated input set that always
includes the extremes (INT64 min/max, 0, +-1, +-2, powers of two and their neighbours,
mixed signs) and a seeded random sample; a mismatch there is a counterexample too,
and agreement is reported as `tested`, never as `proved`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ouroboros.capabilities.flux.fastpath import predecode, run_predecoded
from ouroboros.capabilities.flux.isa import (
    DECAY_SCALE,
    INT64_MAX,
    INT64_MIN,
    MEMORY_SLOTS,
    Opcode,
)
from ouroboros.capabilities.flux.program import Program
from ouroboros.capabilities.flux.verifier import verify_instructions
from ouroboros.capabilities.flux.vm import RunResult

MAX_PATHS = 256
MAX_STEPS = 4096
MAX_PAIRS = 4096  # pairs of paths in one solver query
SOLVER_TIMEOUT_MS = 5000
TEST_FUEL = 200_000

Status = Literal["proved", "tested", "counterexample"]


@dataclass(frozen=True)
class Outcome:
    """What a run shows the world: emitted (value, channel) pairs and how it ended."""

    emitted: tuple[tuple[int, int], ...]
    end: str  # "halt" or a trap name

    @classmethod
    def of(cls, result: RunResult) -> Outcome:
        return cls(tuple(zip(result.output, result.channels, strict=True)),
                   "halt" if result.halted else str(result.trap))


@dataclass(frozen=True)
class Verdict:
    status: Status
    method: str  # "smt" or "testing"
    detail: str = ""
    counterexample: tuple[int, ...] | None = None
    inputs_tested: int = 0

    @property
    def equivalent(self) -> bool:
        return self.status != "counterexample"


class Unproven(Exception):
    """The symbolic executor left its bounds (or met an instruction it does not model)."""


def input_count(*programs: Program) -> int:
    """How many inputs the programs read (one past the highest SENSE/INSTINCT index)."""
    used = [ins.args[0] for p in programs for ins in p.instrs
            if ins.op in (Opcode.SENSE, Opcode.INSTINCT)]
    return max(used) + 1 if used else 0


# --------------------------------------------------------------------- symbolic execution
@dataclass
class _Path:
    pc: int
    stack: list[Any]
    memory: list[Any]
    emitted: list[tuple[Any, int]]
    calls: list[int]
    condition: list[Any]
    steps: int = 0


@dataclass(frozen=True)
class SymbolicPath:
    condition: Any  # z3 BoolRef
    emitted: tuple[tuple[Any, int], ...]
    end: str


def symbolic_paths(program: Program, inputs: Sequence[Any], *, ctx: Any = None,
                   max_paths: int = MAX_PATHS, max_steps: int = MAX_STEPS
                   ) -> list[SymbolicPath]:
    """Every path of a verified program as (condition, emitted values, end); raises
    Unproven beyond the bounds. Terms are made in z3 context ``ctx`` (the inputs' own)."""
    import z3

    zero = z3.BitVecVal(0, 64, ctx)
    one = z3.BitVecVal(1, 64, ctx)
    params = [z3.BitVecVal(p, 64, ctx) for p in program.params]
    instrs = program.instrs
    done: list[SymbolicPath] = []
    work = [_Path(0, [], [zero] * MEMORY_SLOTS, [], [], [])]

    def finish(path: _Path, end: str) -> None:
        done.append(SymbolicPath(z3.And(*path.condition) if path.condition
                                 else z3.BoolVal(True, ctx), tuple(path.emitted), end))

    def read(index: int) -> Any:
        return inputs[index] if index < len(inputs) else zero

    while work:
        path = work.pop()
        while True:
            if path.steps >= max_steps:
                raise Unproven(f"a path runs past {max_steps} instructions")
            if path.pc >= len(instrs):
                raise Unproven("execution runs past the end of the code")
            ins = instrs[path.pc]
            op, args, s = ins.op, ins.args, path.stack
            path.steps += 1
            path.pc += 1
            if op is Opcode.PUSH:
                s.append(z3.BitVecVal(args[0], 64, ctx))
            elif op is Opcode.POP:
                s.pop()
            elif op is Opcode.DUP:
                s.append(s[-1])
            elif op is Opcode.SWAP:
                s[-1], s[-2] = s[-2], s[-1]
            elif op is Opcode.OVER:
                s.append(s[-2])
            elif op in _SYM_BINARY:
                b = s.pop()
                s[-1] = z3.simplify(_SYM_BINARY[op](s[-1], b, one, zero))
            elif op in (Opcode.DIV, Opcode.MOD):
                b = s.pop()
                a = s[-1]
                is_zero = z3.simplify(b == zero)
                if z3.is_true(is_zero):
                    finish(path, "division_by_zero")
                    break
                if not z3.is_false(is_zero):
                    _check_paths(len(done) + len(work) + 2, max_paths)
                    finish(_Path(path.pc, [], [], list(path.emitted), [],
                                 [*path.condition, is_zero]), "division_by_zero")
                    path.condition.append(z3.Not(is_zero))
                s[-1] = z3.simplify(a / b if op is Opcode.DIV else z3.SRem(a, b))
            elif op is Opcode.NEG:
                s[-1] = z3.simplify(-s[-1])
            elif op is Opcode.INC:
                s[-1] = z3.simplify(s[-1] + one)
            elif op is Opcode.DEC:
                s[-1] = z3.simplify(s[-1] - one)
            elif op is Opcode.NOT:
                s[-1] = z3.simplify(~s[-1])
            elif op is Opcode.LOAD:
                s.append(path.memory[args[0]])
            elif op is Opcode.STORE:
                path.memory[args[0]] = s.pop()
            elif op is Opcode.SENSE:
                s.append(read(args[0]))
            elif op is Opcode.ACT:
                path.emitted.append((s.pop(), args[0]))
            elif op is Opcode.INSTINCT:
                path.emitted.append((read(args[0]), args[0]))
            elif op is Opcode.PARAM:
                s.append(params[args[0]])
            elif op is Opcode.THRESH:
                s[-1] = z3.simplify(z3.If(s[-1] >= params[args[0]], one, zero))
            elif op is Opcode.DECAY:
                slot = args[0]
                product = path.memory[slot] * params[args[1]]
                path.memory[slot] = z3.simplify(product / z3.BitVecVal(DECAY_SCALE, 64, ctx))
            elif op is Opcode.NOP:
                pass
            elif op is Opcode.JMP:
                path.pc = args[0]
            elif op in (Opcode.JZ, Opcode.JNZ):
                top = s.pop()
                taken = z3.simplify(top == zero if op is Opcode.JZ else top != zero)
                if z3.is_true(taken):
                    path.pc = args[0]
                elif not z3.is_false(taken):
                    _check_paths(len(done) + len(work) + 2, max_paths)
                    other = _Path(args[0], list(s), list(path.memory), list(path.emitted),
                                  list(path.calls), [*path.condition, taken], path.steps)
                    work.append(other)
                    path.condition.append(z3.Not(taken))
            elif op is Opcode.CALL:
                path.calls.append(path.pc)
                path.pc = args[0]
            elif op is Opcode.RET:
                if not path.calls:
                    finish(path, "halt")
                    break
                path.pc = path.calls.pop()
            elif op is Opcode.HALT:
                finish(path, "halt")
                break
            else:  # pragma: no cover - every opcode is handled above
                raise Unproven(f"{op.name} is not modelled")
    return done


def _check_paths(count: int, limit: int) -> None:
    if count > limit:
        raise Unproven(f"more than {limit} paths")


def _bool(cond: Any, one: Any, zero: Any) -> Any:
    import z3

    return z3.If(cond, one, zero)


_SYM_BINARY: dict[Opcode, Any] = {
    Opcode.ADD: lambda a, b, one, zero: a + b,
    Opcode.SUB: lambda a, b, one, zero: a - b,
    Opcode.MUL: lambda a, b, one, zero: a * b,
    Opcode.AND: lambda a, b, one, zero: a & b,
    Opcode.OR: lambda a, b, one, zero: a | b,
    Opcode.XOR: lambda a, b, one, zero: a ^ b,
    Opcode.SHL: lambda a, b, one, zero: a << (b & 63),
    Opcode.SHR: lambda a, b, one, zero: a >> (b & 63),  # z3's >> on bit-vectors is arithmetic
    Opcode.EQ: lambda a, b, one, zero: _bool(a == b, one, zero),
    Opcode.LT: lambda a, b, one, zero: _bool(a < b, one, zero),  # signed, as FLUX compares
    Opcode.GT: lambda a, b, one, zero: _bool(a > b, one, zero),
}


class SymbolicSpec:
    """A reference program's paths, computed once and compared with many candidates."""

    def __init__(self, program: Program, n_inputs: int) -> None:
        self.program = program
        self.n_inputs = n_inputs
        self.error: str | None = None
        try:  # the reference's paths, once: too many, or unbounded, and nothing is proved
            self.paths: list[SymbolicPath] | None = self._paths(program, *self._fresh())
        except Unproven as exc:
            self.paths, self.error = None, str(exc)

    def _fresh(self) -> tuple[Any, list[Any]]:
        import z3

        ctx = z3.Context()
        return ctx, [z3.BitVec(f"in{i}", 64, ctx) for i in range(self.n_inputs)]

    @staticmethod
    def _paths(program: Program, ctx: Any, inputs: list[Any]) -> list[SymbolicPath]:
        return symbolic_paths(program, inputs, ctx=ctx)

    def compare(self, candidate: Program) -> Verdict | None:
        """A proof or a counterexample; None when the solver cannot decide.

        Each comparison is made in a z3 context of its own (about 1 ms, and the reference's
        paths made again): which counterexample a `sat` model gives depends on everything
        made in the context before, so a shared context answered differently from one run
        to the next in a long-lived process, and between 1 and 2 workers (each worker's
        history its own). In a fresh context the answer is a function of the two programs.
        """
        import z3

        if self.paths is None or input_count(candidate) > self.n_inputs:
            return None
        ctx, inputs = self._fresh()
        try:
            ours = self._paths(self.program, ctx, inputs)
            theirs = self._paths(candidate, ctx, inputs)
        except Unproven:
            return None
        if len(ours) * len(theirs) > MAX_PAIRS:
            return None  # a query this large would not finish in time: test instead
        differs = []
        for a, b in itertools.product(ours, theirs):
            diff = _differ(a, b)
            if not z3.is_false(diff):
                differs.append(z3.And(a.condition, b.condition, diff))
        if not differs:
            return Verdict("proved", "smt", "no feasible pair of paths can differ")
        solver = z3.Solver(ctx=ctx)
        solver.set("timeout", SOLVER_TIMEOUT_MS)
        solver.add(z3.Or(*differs))
        answer = solver.check()
        if answer == z3.unsat:
            return Verdict("proved", "smt", f"{len(ours)}x{len(theirs)} paths, unsat")
        if answer == z3.sat:
            model = solver.model()
            values = tuple(_signed(model.eval(v, model_completion=True).as_long())
                           for v in inputs)
            return Verdict("counterexample", "smt", "the solver found a differing input",
                           values)
        return None


def _differ(a: SymbolicPath, b: SymbolicPath) -> Any:
    import z3

    ctx = a.condition.ctx
    if a.end != b.end or len(a.emitted) != len(b.emitted) or any(
            ca != cb for (_, ca), (_, cb) in zip(a.emitted, b.emitted, strict=True)):
        return z3.BoolVal(True, ctx)
    terms = [va != vb for (va, _), (vb, _) in zip(a.emitted, b.emitted, strict=True)]
    return z3.simplify(z3.Or(*terms)) if terms else z3.BoolVal(False, ctx)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


# ------------------------------------------------------------------- differential testing
_EXTREMES = (0, 1, -1, 2, -2, 3, 7, 8, 15, 16, 63, 64, 100, 255, 256, -255, -256,
             (1 << 31) - 1, -(1 << 31), 1 << 32, (1 << 62), -(1 << 62),
             INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1)


def generated_inputs(n_inputs: int, *, count: int = 2000, seed: int = 0) -> list[tuple[int, ...]]:
    """Extremes in every combination that fits, then mixed-sign random vectors."""
    rng = random.Random(seed)
    if n_inputs == 0:
        return [()]
    out: list[tuple[int, ...]] = []
    small = (*_EXTREMES[:12], INT64_MAX, INT64_MIN)
    pool = _EXTREMES if n_inputs == 1 else small
    if len(pool) ** n_inputs <= count // 2:
        out.extend(itertools.product(pool, repeat=n_inputs))
    else:
        out.extend(tuple(rng.choice(pool) for _ in range(n_inputs)) for _ in range(count // 2))
    while len(out) < count:
        out.append(tuple(_random_value(rng) for _ in range(n_inputs)))
    return out


def _random_value(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.4:
        return rng.randint(-300, 300)
    if kind < 0.6:
        return rng.choice(_EXTREMES) + rng.randint(-2, 2) if rng.random() < 0.5 else \
            rng.choice((1, -1)) * (1 << rng.randrange(64))
    value = rng.randint(INT64_MIN, INT64_MAX)
    return max(INT64_MIN, min(INT64_MAX, value))


def run_outcome(program: Program, inputs: Sequence[int], fuel: int = TEST_FUEL) -> Outcome | None:
    """The outcome of a verified program, or None when the run ran out of fuel."""
    compiled = _compiled(program)
    result = run_predecoded(compiled, inputs, fuel=fuel)
    if result.trap == "fuel_exhausted":
        return None
    return Outcome.of(result)


def _compiled(program: Program) -> Any:
    verdict = verify_instructions(program.decoded(), program.params, program.size)
    if not verdict.ok:
        raise ValueError("; ".join(verdict.reasons))
    return predecode(program.params, verdict.instructions)


def has_loop(program: Program) -> bool:
    return any(ins.is_jump and ins.args[0] <= i for i, ins in enumerate(program.instrs))


def _runner(program: Program) -> Callable[[Sequence[int], int], RunResult]:
    """A loop may run long on extreme inputs: compile it (wasm); else the Python loop."""
    if has_loop(program):
        from ouroboros.capabilities.flux.wasm import WasmRunner

        compiled_wasm = WasmRunner(cache_size=1).compile(program.to_image())
        return compiled_wasm.run
    compiled = _compiled(program)
    return lambda vector, fuel: run_predecoded(compiled, vector, fuel=fuel)


def differential(reference: Program, candidate: Program, *, count: int = 2000, seed: int = 0,
                 fuel: int = TEST_FUEL) -> Verdict:
    """Run both programs on the generated inputs; inputs on which the reference runs out
    of fuel say nothing and are skipped."""
    n = max(input_count(reference, candidate), 1)
    ref, cand = _runner(reference), _runner(candidate)
    tested = 0
    for vector in generated_inputs(n, count=count, seed=seed):
        expected = ref(vector, fuel)
        if expected.trap == "fuel_exhausted":
            continue
        got = cand(vector, fuel)
        tested += 1
        if Outcome.of(expected) != Outcome.of(got):
            return Verdict("counterexample", "testing", _describe(expected, got), vector, tested)
    return Verdict("tested", "testing", f"agreed on {tested} generated inputs", None, tested)


def _describe(expected: RunResult, got: RunResult) -> str:
    def show(r: RunResult) -> str:
        pairs = ", ".join(f"{v}@{c}" for v, c in zip(r.output, r.channels, strict=True))
        return f"[{pairs}]" + ("" if r.halted else f" then trap {r.trap}")
    return f"expected {show(expected)}, got {show(got)}"


def check(reference: Program, candidate: Program, *, spec: SymbolicSpec | None = None,
          count: int = 2000, seed: int = 0) -> Verdict:
    """Prove `candidate` equivalent to `reference`, or find an input where they differ."""
    n = input_count(reference, candidate)
    if spec is None or spec.n_inputs < n:
        spec = SymbolicSpec(reference, n)
    verdict = spec.compare(candidate)
    if verdict is not None:
        if verdict.counterexample is not None:
            # Confirm on the real engines; the symbolic model ignores fuel.
            ref, cand = (run_outcome(p, verdict.counterexample) for p in (reference, candidate))
            if ref is not None and ref != cand:
                return verdict
        else:
            return verdict
    return differential(reference, candidate, count=count, seed=seed)
