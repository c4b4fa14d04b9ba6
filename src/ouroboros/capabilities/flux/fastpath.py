"""The candidate-evaluation engine: a pre-decoded dispatch loop for verified images.

Evolution runs each new candidate only a handful of times, so a compile step of any
kind (wasmtime's milliseconds, even Python's `compile`) costs more than the runs. This
loop decodes once into flat lists indexed by instruction number and dispatches on
opcode groups. Verification has ruled out every trap but three (fuel, division by
zero, call depth), which it reports exactly as the reference interpreter does: cycles
include the trapping instruction's cost except for fuel exhaustion, where that
instruction never starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ouroboros.capabilities.flux.isa import (
    DECAY_SCALE,
    DEFAULT_FUEL,
    INT64_MAX,
    INT64_MIN,
    MAX_CALL_DEPTH,
    OPS,
    Decoded,
    Opcode,
    wrap64,
)
from ouroboros.capabilities.flux.vm import RunResult, trunc_div, trunc_rem


@dataclass(frozen=True)
class Predecoded:
    ops: tuple[int, ...]
    arg0: tuple[int, ...]  # jump operands as instruction indices
    arg1: tuple[int, ...]
    costs: tuple[int, ...]


def predecode(params: tuple[int, ...], instructions: Sequence[Decoded]) -> Predecoded:
    """Flatten verified instructions (from `verify(image).instructions`)."""
    index = {ins.offset: i for i, ins in enumerate(instructions)}
    ops, arg0, arg1, costs = [], [], [], []
    for ins in instructions:
        op = ins.opcode
        ops.append(int(op))
        first = ins.args[0] if ins.args else 0
        if op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL):
            first = index[first]
        elif op in (Opcode.PARAM, Opcode.THRESH):
            first = params[first]
        arg0.append(first)
        arg1.append(params[ins.args[1]] if op is Opcode.DECAY else 0)
        costs.append(OPS[op].cycles)
    return Predecoded(tuple(ops), tuple(arg0), tuple(arg1), tuple(costs))


def run_predecoded(
    program: Predecoded, inputs: Sequence[int] = (), *, fuel: int = DEFAULT_FUEL
) -> RunResult:
    return _loop(program, [wrap64(v) for v in inputs], fuel)


def _loop(p: Predecoded, inp: list[int], fuel: int) -> RunResult:
    ops, arg0, arg1, costs = p.ops, p.arg0, p.arg1, p.costs
    s: list[int] = []
    push, pop = s.append, s.pop
    mem = [0] * 16
    out: list[int] = []
    chan: list[int] = []
    calls: list[int] = []
    n_in = len(inp)
    lo, hi = INT64_MIN, INT64_MAX
    i = cyc = steps = 0
    while True:
        op = ops[i]
        cyc += costs[i]
        if cyc > fuel:
            return RunResult(tuple(out), tuple(chan), cyc - costs[i], False, "fuel_exhausted",
                             steps)
        steps += 1
        i += 1
        if op < 0x10:
            if op == 0x01:
                push(arg0[i - 1])
            elif op == 0x03:
                push(s[-1])
            elif op == 0x02:
                pop()
            elif op == 0x04:
                s[-1], s[-2] = s[-2], s[-1]
            elif op == 0x05:
                push(s[-2])
        elif op < 0x20:
            if op <= 0x12:
                b = pop()
                v = s[-1] + b if op == 0x10 else s[-1] - b if op == 0x11 else s[-1] * b
                s[-1] = v if lo <= v <= hi else wrap64(v)
            elif op <= 0x14:
                b = pop()
                if b == 0:
                    return RunResult(tuple(out), tuple(chan), cyc, False, "division_by_zero",
                                     steps)
                s[-1] = trunc_div(s[-1], b) if op == 0x13 else trunc_rem(s[-1], b)
            elif op <= 0x17:
                v = -s[-1] if op == 0x15 else s[-1] + 1 if op == 0x16 else s[-1] - 1
                s[-1] = v if lo <= v <= hi else wrap64(v)
            elif op == 0x1B:
                s[-1] = ~s[-1]
            else:
                b = pop()
                if op == 0x18:
                    s[-1] &= b
                elif op == 0x19:
                    s[-1] |= b
                elif op == 0x1A:
                    s[-1] ^= b
                elif op == 0x1C:
                    s[-1] = wrap64(s[-1] << (b & 63))
                else:
                    s[-1] >>= b & 63
        elif op < 0x30:
            b = pop()
            a = s[-1]
            s[-1] = int(a == b if op == 0x20 else a < b if op == 0x21 else a > b)
        elif op < 0x40:
            if op == 0x30:
                i = arg0[i - 1]
            elif op == 0x31:
                if pop() == 0:
                    i = arg0[i - 1]
            elif op == 0x32:
                if pop() != 0:
                    i = arg0[i - 1]
            elif op == 0x33:
                if len(calls) >= MAX_CALL_DEPTH:
                    return RunResult(tuple(out), tuple(chan), cyc, False, "call_overflow", steps)
                calls.append(i)
                i = arg0[i - 1]
            elif op == 0x35 or not calls:
                return RunResult(tuple(out), tuple(chan), cyc, True, None, steps)
            else:
                i = calls.pop()
        else:
            a0 = arg0[i - 1]
            if op == 0x42:
                push(inp[a0] if a0 < n_in else 0)
            elif op == 0x43:
                out.append(pop())
                chan.append(a0)
            elif op == 0x40:
                push(mem[a0])
            elif op == 0x41:
                mem[a0] = pop()
            elif op == 0x50:
                push(a0)
            elif op == 0x52:
                s[-1] = int(s[-1] >= a0)
            elif op == 0x51:
                mem[a0] = trunc_div(wrap64(mem[a0] * arg1[i - 1]), DECAY_SCALE)
            else:
                out.append(inp[a0] if a0 < n_in else 0)
                chan.append(a0)
