"""The reference FLUX interpreter: the executable form of docs/flux.md.

It is written to be obviously right, not fast; it accepts unverified images and turns
every fault into a trap in the result, never a host exception. The fast engine
(`wasm.py`) is tested against it on random verified programs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ouroboros.capabilities.flux.isa import (
    DECAY_SCALE,
    DEFAULT_FUEL,
    MAX_CALL_DEPTH,
    MAX_STACK,
    MEMORY_SLOTS,
    OPS,
    Decoded,
    DecodeError,
    Image,
    Opcode,
    decode_at,
    wrap64,
)

TRAPS = (
    "stack_underflow",
    "stack_overflow",
    "division_by_zero",
    "bad_jump",
    "bad_opcode",
    "bad_operand",
    "call_overflow",
    "fuel_exhausted",
)


@dataclass(frozen=True)
class RunResult:
    output: tuple[int, ...]
    channels: tuple[int, ...]
    cycles: int
    halted: bool
    trap: str | None
    steps: int

    def to_json(self) -> dict[str, object]:
        """The `ouro flux run --json` contract: exactly these four keys."""
        return {"output": list(self.output), "cycles": self.cycles, "halted": self.halted,
                "trap": self.trap}


class _Trap(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def trunc_div(a: int, b: int) -> int:
    """Division truncated toward zero, wrapping INT64_MIN / -1 (as C and WASM do)."""
    q = abs(a) // abs(b)
    return wrap64(-q if (a < 0) != (b < 0) else q)


def trunc_rem(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    q = -q if (a < 0) != (b < 0) else q
    return wrap64(a - b * q)


_BINARY: dict[Opcode, Callable[[int, int], int]] = {
    Opcode.ADD: lambda a, b: wrap64(a + b),
    Opcode.SUB: lambda a, b: wrap64(a - b),
    Opcode.MUL: lambda a, b: wrap64(a * b),
    Opcode.AND: lambda a, b: a & b,
    Opcode.OR: lambda a, b: a | b,
    Opcode.XOR: lambda a, b: a ^ b,
    Opcode.SHL: lambda a, b: wrap64(a << (b & 63)),
    Opcode.SHR: lambda a, b: a >> (b & 63),
    Opcode.EQ: lambda a, b: int(a == b),
    Opcode.LT: lambda a, b: int(a < b),
    Opcode.GT: lambda a, b: int(a > b),
}
_UNARY: dict[Opcode, Callable[[int], int]] = {
    Opcode.NEG: lambda a: wrap64(-a),
    Opcode.INC: lambda a: wrap64(a + 1),
    Opcode.DEC: lambda a: wrap64(a - 1),
    Opcode.NOT: lambda a: ~a,
}


def run(image: Image, inputs: Sequence[int] = (), *, fuel: int = DEFAULT_FUEL) -> RunResult:
    """Run from offset 0 until HALT, RET with an empty call stack, or a trap."""
    state = _State(image, [wrap64(i) for i in inputs])
    try:
        state.loop(fuel)
    except _Trap as trap:
        return state.result(halted=False, trap=trap.name)
    return state.result(halted=True, trap=None)


class _State:
    def __init__(self, image: Image, inputs: list[int]) -> None:
        self.image = image
        self.inputs = inputs
        self.stack: list[int] = []
        self.calls: list[int] = []
        self.memory = [0] * MEMORY_SLOTS
        self.output: list[int] = []
        self.channels: list[int] = []
        self.cycles = 0
        self.steps = 0
        self.cache: dict[int, Decoded] = {}

    def result(self, *, halted: bool, trap: str | None) -> RunResult:
        return RunResult(tuple(self.output), tuple(self.channels), self.cycles, halted, trap,
                         self.steps)

    def fetch(self, pc: int) -> Decoded:
        ins = self.cache.get(pc)
        if ins is None:
            if not 0 <= pc < len(self.image.code):
                raise _Trap("bad_jump")
            try:
                ins = decode_at(self.image.code, pc)
            except DecodeError:
                raise _Trap("bad_opcode") from None
            self.cache[pc] = ins
        return ins

    def pop(self) -> int:
        if not self.stack:
            raise _Trap("stack_underflow")
        return self.stack.pop()

    def push(self, value: int) -> None:
        if len(self.stack) >= MAX_STACK:
            raise _Trap("stack_overflow")
        self.stack.append(value)

    def param(self, index: int) -> int:
        if index >= len(self.image.params):
            raise _Trap("bad_operand")
        return self.image.params[index]

    def slot(self, index: int) -> int:
        if index >= MEMORY_SLOTS:
            raise _Trap("bad_operand")
        return index

    def loop(self, fuel: int) -> None:
        pc = 0
        while True:
            ins = self.fetch(pc)
            cost = OPS[ins.opcode].cycles
            if self.cycles + cost > fuel:
                raise _Trap("fuel_exhausted")
            self.cycles += cost
            self.steps += 1
            pc = self.execute(ins, pc + ins.size)
            if pc < 0:
                return

    def execute(self, ins: Decoded, nxt: int) -> int:
        """Execute one instruction; return the next pc, or -1 to halt."""
        op, args = ins.opcode, ins.args
        if op in _BINARY:
            b, a = self.pop(), self.pop()
            self.push(_BINARY[op](a, b))
        elif op in _UNARY:
            self.push(_UNARY[op](self.pop()))
        elif op is Opcode.DIV or op is Opcode.MOD:
            b, a = self.pop(), self.pop()
            if b == 0:
                raise _Trap("division_by_zero")
            self.push(trunc_div(a, b) if op is Opcode.DIV else trunc_rem(a, b))
        elif op is Opcode.PUSH:
            self.push(args[0])
        elif op is Opcode.POP:
            self.pop()
        elif op is Opcode.DUP:
            a = self.pop()
            self.push(a)
            self.push(a)
        elif op is Opcode.SWAP:
            b, a = self.pop(), self.pop()
            self.push(b)
            self.push(a)
        elif op is Opcode.OVER:
            b, a = self.pop(), self.pop()
            for v in (a, b, a):
                self.push(v)
        elif op is Opcode.JMP:
            return args[0]
        elif op is Opcode.JZ:
            return args[0] if self.pop() == 0 else nxt
        elif op is Opcode.JNZ:
            return args[0] if self.pop() != 0 else nxt
        elif op is Opcode.CALL:
            if len(self.calls) >= MAX_CALL_DEPTH:
                raise _Trap("call_overflow")
            self.calls.append(nxt)
            return args[0]
        elif op is Opcode.RET:
            return self.calls.pop() if self.calls else -1
        elif op is Opcode.HALT:
            return -1
        elif op is Opcode.LOAD:
            self.push(self.memory[self.slot(args[0])])
        elif op is Opcode.STORE:
            self.memory[self.slot(args[0])] = self.pop()
        elif op is Opcode.SENSE:
            self.push(self.inputs[args[0]] if args[0] < len(self.inputs) else 0)
        elif op is Opcode.ACT:
            self.output.append(self.pop())
            self.channels.append(args[0])
        elif op is Opcode.PARAM:
            self.push(self.param(args[0]))
        elif op is Opcode.DECAY:
            s = self.slot(args[0])
            self.memory[s] = trunc_div(wrap64(self.memory[s] * self.param(args[1])), DECAY_SCALE)
        elif op is Opcode.THRESH:
            self.push(int(self.pop() >= self.param(args[0])))
        elif op is Opcode.INSTINCT:
            self.output.append(self.inputs[args[0]] if args[0] < len(self.inputs) else 0)
            self.channels.append(args[0])
        return nxt
