"""Hypothesis strategies: random FLUX programs, most of which verify by construction."""

from __future__ import annotations

from hypothesis import strategies as st

from ouroboros.capabilities.flux.isa import OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program

PARAMS = (900, 50)
STRAIGHT_OPS = [op for op in Opcode if op not in (
    Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL, Opcode.RET, Opcode.HALT)]
SMALL_INTS = st.one_of(st.integers(-4, 8), st.integers(-(1 << 31), (1 << 31) - 1))


def _args(draw: st.DrawFn, op: Opcode) -> tuple[int, ...]:
    if op is Opcode.PUSH:
        return (draw(SMALL_INTS),)
    if op in (Opcode.SENSE, Opcode.INSTINCT):
        return (draw(st.integers(0, 3)),)
    if op is Opcode.ACT:
        return (draw(st.integers(0, 2)),)
    if op in (Opcode.LOAD, Opcode.STORE):
        return (draw(st.integers(0, 3)),)
    if op in (Opcode.PARAM, Opcode.THRESH):
        return (draw(st.integers(0, 1)),)
    if op is Opcode.DECAY:
        return (draw(st.integers(0, 3)), draw(st.integers(0, 1)))
    return ()


def straight(draw: st.DrawFn, depth: int, most: int) -> tuple[list[Instr], int]:
    out = []
    for _ in range(draw(st.integers(0, most))):
        choices = [op for op in STRAIGHT_OPS
                   if OPS[op].pops <= depth and depth - OPS[op].pops + OPS[op].pushes <= 24]
        op = draw(st.sampled_from(choices))
        out.append(Instr(op, _args(draw, op)))
        depth += OPS[op].pushes - OPS[op].pops
    return out, depth


def balance(depth: int, target: int) -> list[Instr]:
    if depth > target:
        return [Instr(Opcode.POP)] * (depth - target)
    return [Instr(Opcode.PUSH, (0,))] * (target - depth)


@st.composite
def verified_programs(draw: st.DrawFn, most: int = 12) -> Program:
    """Straight code, an optional counted loop, an optional skipped block, an optional
    subroutine; jumps are instruction indices."""
    code, depth = straight(draw, 0, most)
    if draw(st.booleans()):  # counted loop: PUSH k; L: body; DEC; DUP; JNZ L; POP
        code.append(Instr(Opcode.PUSH, (draw(st.integers(0, 4)),)))
        start = len(code)
        body, after = straight(draw, depth + 1, most)
        code += body + balance(after, depth + 1)
        code += [Instr(Opcode.DEC), Instr(Opcode.DUP), Instr(Opcode.JNZ, (start,)),
                 Instr(Opcode.POP)]
    if draw(st.booleans()):  # SENSE 0; JZ over a balanced block
        code.append(Instr(Opcode.SENSE, (0,)))
        jump = len(code)
        code.append(Instr(Opcode.JZ, (0,)))
        block, after = straight(draw, depth, most)
        code += block + balance(after, depth)
        code[jump] = Instr(Opcode.JZ, (len(code),))
    call_sites = []
    if draw(st.booleans()):
        call_sites.append(len(code))
        code.append(Instr(Opcode.CALL, (0,)))
        sub, effect = straight(draw, 0, most)
    else:
        sub, effect = [], 0
    depth += effect
    tail, depth = straight(draw, depth, most)
    code += tail
    code.append(Instr(draw(st.sampled_from((Opcode.HALT, Opcode.RET)))))
    if call_sites:
        entry = len(code)
        code += [*sub, Instr(Opcode.RET)]
        for site in call_sites:
            code[site] = Instr(Opcode.CALL, (entry,))
    return Program(tuple(code), PARAMS)


@st.composite
def any_programs(draw: st.DrawFn) -> Program:
    """Arbitrary instruction lists (jumps anywhere): most do not verify."""
    n = draw(st.integers(1, 20))
    instrs = []
    for _ in range(n):
        op = draw(st.sampled_from(list(Opcode)))
        if op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL):
            instrs.append(Instr(op, (draw(st.integers(0, n - 1)),)))
        else:
            instrs.append(Instr(op, _args(draw, op)))
    return Program(tuple(instrs), PARAMS)


inputs = st.lists(st.one_of(st.integers(-10, 10), st.integers(-(1 << 63), (1 << 63) - 1)),
                  max_size=4)
