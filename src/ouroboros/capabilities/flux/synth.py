"""Window synthesis: a small superoptimiser for straight-line windows of a program.

Massalin's idea, bounded for a search budget. Pick a window of a program: consecutive
instructions inside one basic block (no jump lands strictly inside it, none of them is
a jump, an exit, a STORE or an instruction outside the table below), run once on each
test case, never in a loop. Running the program on the test cases gives each case's
*context* at the window's entry: the stack, the memory and the inputs. The window's
*effect* is what it does to those contexts: the stack it leaves and the values it emits
(with their channels).

`synthesise` searches, cheapest first (Dijkstra over cycles), for a sequence of
instructions with the same effect on every context, up to the window's own cost. Two
sequences that leave every context in the same state are one state of the search
(observational equivalence), so the search walks classes of programs, not programs.
Stack-depth and emission bounds prune states that cannot reach the target in the cycles
left, and `max_states` caps the work of one call.

The result agrees with the window *on the test contexts only*: it is a proposal, and
the search scores it like any other candidate (one evaluation) and checks it for
equivalence before it can become a best. Context-specific agreement is the point: it
is what lets `PUSH 0; LOAD 0; SUB` become `SENSE 0; NEG` where slot 0 holds input 0.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ouroboros.capabilities.flux.fitness import TestCase
from ouroboros.capabilities.flux.isa import OPS, Opcode, wrap64
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets
from ouroboros.capabilities.flux.vm import _State, _Trap

Column = tuple[int, ...]  # one stack slot's value on every context
Emitted = tuple[tuple[Column, int], ...]  # (values, channel) per emission
State = tuple[tuple[Column, ...], Emitted]

_H = 1 << 63
_M = (1 << 64) - 1
# wrap64 inlined: these run millions of times in one search.
_BINARY: dict[Opcode, Callable[[int, int], int]] = {
    Opcode.ADD: lambda a, b: ((a + b + _H) & _M) - _H,
    Opcode.SUB: lambda a, b: ((a - b + _H) & _M) - _H,
    Opcode.MUL: lambda a, b: ((a * b + _H) & _M) - _H,
    Opcode.AND: lambda a, b: a & b,
    Opcode.OR: lambda a, b: a | b,
    Opcode.XOR: lambda a, b: a ^ b,
    Opcode.SHL: lambda a, b: ((a << (b & 63)) + _H & _M) - _H,
    Opcode.SHR: lambda a, b: a >> (b & 63),
    Opcode.EQ: lambda a, b: int(a == b),
    Opcode.LT: lambda a, b: int(a < b),
    Opcode.GT: lambda a, b: int(a > b),
}
_UNARY: dict[Opcode, Callable[[int], int]] = {
    Opcode.NEG: lambda a: ((_H - a) & _M) - _H,
    Opcode.INC: lambda a: ((a + 1 + _H) & _M) - _H,
    Opcode.DEC: lambda a: ((a - 1 + _H) & _M) - _H,
    Opcode.NOT: lambda a: ~a,
}
_STACK_OPS = (Opcode.DUP, Opcode.SWAP, Opcode.OVER, Opcode.POP)
#: What a window may contain (and a replacement use): pure stack work, input and
#: memory reads, and emissions.
WINDOW_OPS = frozenset({*_BINARY, *_UNARY, *_STACK_OPS, Opcode.PUSH, Opcode.SENSE,
                        Opcode.LOAD, Opcode.ACT, Opcode.INSTINCT, Opcode.NOP})
_I32 = (-(1 << 31), (1 << 31) - 1)
MAX_EXCESS = 2  # a state may hold at most this many values beyond the target's depth


@dataclass(frozen=True)
class Context:
    """The machine at a window's entry on each test case that reaches it once."""

    stacks: tuple[tuple[int, ...], ...]
    memory: tuple[tuple[int, ...], ...]
    inputs: tuple[tuple[int, ...], ...]


class _Tracer(_State):
    """The reference interpreter, noting the machine before each instruction."""

    def __init__(self, program: Program, inputs: Sequence[int]) -> None:
        image = program.to_image()
        super().__init__(image, [wrap64(i) for i in inputs])
        offset = 0
        self.index: dict[int, int] = {}
        for i, ins in enumerate(program.instrs):
            self.index[offset] = i
            offset += ins.size
        self.first: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self.visits: dict[int, int] = {}

    def trace(self, fuel: int) -> bool:
        pc = 0
        try:
            while True:
                i = self.index.get(pc)
                if i is not None:
                    self.visits[i] = self.visits.get(i, 0) + 1
                    if i not in self.first:
                        self.first[i] = (tuple(self.stack), tuple(self.memory))
                ins = self.fetch(pc)
                cost = OPS[ins.opcode].cycles
                if self.cycles + cost > fuel:
                    return False
                self.cycles += cost
                pc = self.execute(ins, pc + ins.size)
                if pc < 0:
                    return True
        except _Trap:
            return False


@dataclass(frozen=True)
class Trace:
    """Per instruction index: its context, or None if some case ran it more than once or
    fewer than two cases ran it."""

    contexts: dict[int, Context | None]


def trace(program: Program, cases: Sequence[TestCase], fuel: int) -> Trace:
    firsts: dict[int, list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]] = {}
    looped: set[int] = set()
    for case in cases:
        tracer = _Tracer(program, case.inputs)
        tracer.trace(fuel)
        for i, (stack, memory) in tracer.first.items():
            firsts.setdefault(i, []).append((stack, memory, tuple(tracer.inputs)))
        looped.update(i for i, n in tracer.visits.items() if n > 1)
    contexts: dict[int, Context | None] = {}
    for i, rows in firsts.items():
        depths = {len(s) for s, _, _ in rows}
        if i in looped or len(depths) != 1 or len(rows) < 2:  # one context proves little
            contexts[i] = None
            continue
        contexts[i] = Context(tuple(s for s, _, _ in rows), tuple(m for _, m, _ in rows),
                              tuple(x for _, _, x in rows))
    return Trace(contexts)


def windows(program: Program, tr: Trace, max_width: int = 6) -> list[tuple[int, int]]:
    """(start, width) of every window that `synthesise` may rewrite."""
    targets = jump_targets(program)
    out = []
    n = len(program)
    for start in range(n):
        if tr.contexts.get(start) is None:
            continue
        for width in range(1, max_width + 1):
            end = start + width
            if end > n or program.instrs[end - 1].op not in WINDOW_OPS:
                break
            if end - 1 > start and end - 1 in targets:
                break
            out.append((start, width))
    return out


def _start(ctx: Context) -> State:
    depth = len(ctx.stacks[0])
    return tuple(tuple(s[j] for s in ctx.stacks) for j in range(depth)), ()


def step(state: State, ins: Instr, ctx: Context) -> State | None:
    """One instruction on every context at once; None if it underflows or is unknown."""
    stack, emitted = state
    op = ins.op
    if op in _BINARY:
        if len(stack) < 2:
            return None
        return (*stack[:-2], tuple(map(_BINARY[op], stack[-2], stack[-1]))), emitted
    if op in _UNARY:
        if not stack:
            return None
        return (*stack[:-1], tuple(map(_UNARY[op], stack[-1]))), emitted
    if op is Opcode.PUSH:
        return (*stack, (ins.args[0],) * len(ctx.inputs)), emitted
    if op is Opcode.SENSE:
        k = ins.args[0]
        return (*stack, tuple(x[k] if k < len(x) else 0 for x in ctx.inputs)), emitted
    if op is Opcode.LOAD:
        return (*stack, tuple(m[ins.args[0]] for m in ctx.memory)), emitted
    if op is Opcode.DUP:
        return (None if not stack else ((*stack, stack[-1]), emitted))
    if op is Opcode.POP:
        return (None if not stack else (stack[:-1], emitted))
    if op is Opcode.SWAP:
        return (None if len(stack) < 2 else ((*stack[:-2], stack[-1], stack[-2]), emitted))
    if op is Opcode.OVER:
        return (None if len(stack) < 2 else ((*stack, stack[-2]), emitted))
    if op is Opcode.ACT:
        return (None if not stack else (stack[:-1], (*emitted, (stack[-1], ins.args[0]))))
    if op is Opcode.INSTINCT:
        k = ins.args[0]
        col = tuple(x[k] if k < len(x) else 0 for x in ctx.inputs)
        return stack, (*emitted, (col, k))
    if op is Opcode.NOP:
        return state
    return None


def effect(window: Sequence[Instr], ctx: Context) -> State | None:
    state: State | None = _start(ctx)
    for ins in window:
        if state is None:
            return None
        state = step(state, ins, ctx)
    return state


def cycles(window: Sequence[Instr]) -> int:
    return sum(OPS[i.op].cycles for i in window)


def program_inputs(program: Program) -> tuple[int, ...]:
    return tuple(sorted({i.args[0] for i in program.instrs
                         if i.op in (Opcode.SENSE, Opcode.INSTINCT)}))


def alphabet(inputs: Sequence[int], window: Sequence[Instr], ctx: Context) -> list[Instr]:
    """The instructions a replacement may use: stack and ALU operations, the program's
    inputs and slots, emissions on the window's channels, and a few constants (the
    window's, small ones, pairwise folds of the window's, and any value the window
    computes that is the same on every context)."""
    slots = sorted({i.args[0] for i in window if i.op is Opcode.LOAD})
    channels = sorted({i.args[0] for i in window if i.op is Opcode.ACT})
    reflexes = sorted({i.args[0] for i in window if i.op is Opcode.INSTINCT} |
                      ({*inputs} & {*channels}))
    base = [i.args[0] for i in window if i.op is Opcode.PUSH]
    consts = {0, 1, 2, -1, *base}
    for a in base:
        for b in base:
            consts.update(f(a, b) for f in _BINARY.values())
    state: State | None = _start(ctx)
    for ins in window:  # constants the window computes along the way
        state = step(state, ins, ctx) if state is not None else None
        if state is not None and state[0] and len(set(state[0][-1])) == 1:
            consts.add(state[0][-1][0])
    out = [Instr(Opcode.PUSH, (c,)) for c in sorted(consts) if _I32[0] <= c <= _I32[1]]
    out += [Instr(Opcode.SENSE, (k,)) for k in inputs]
    out += [Instr(Opcode.LOAD, (s,)) for s in slots]
    out += [Instr(op) for op in (*_STACK_OPS, *_UNARY, *_BINARY)]
    out += [Instr(Opcode.ACT, (c,)) for c in channels]
    out += [Instr(Opcode.INSTINCT, (k,)) for k in reflexes]
    return out


_CACHE: dict[tuple[Any, ...], tuple[tuple[tuple[Instr, ...], ...], int]] = {}


def synthesise(program: Program, start: int, width: int, ctx: Context, *,
               max_states: int = 400, limit: int = 3) -> tuple[tuple[Instr, ...], ...]:
    """Up to `limit` sequences with the window's effect on `ctx`, cheapest first, none
    dearer than the window and none equal to it."""
    return synthesise_counted(program, start, width, ctx, max_states=max_states,
                              limit=limit)[0]


def synthesise_counted(program: Program, start: int, width: int, ctx: Context, *,
                       max_states: int = 400,
                       limit: int = 3) -> tuple[tuple[tuple[Instr, ...], ...], int]:
    """`synthesise` and the states it expanded. A chain meets the same window in the
    same context often, so answers are memoised per process; a memoised answer reports
    the states it once cost, so what a caller charges for it does not depend on which
    process (with which memory) computed it."""
    key = (program.instrs[start:start + width], program_inputs(program), ctx, max_states,
           limit)
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 8192:
            _CACHE.clear()
        hit = _CACHE[key] = _synthesise(*key)
    return hit


def _synthesise(window: tuple[Instr, ...], inputs: tuple[int, ...], ctx: Context,
                max_states: int, limit: int) -> tuple[tuple[tuple[Instr, ...], ...], int]:
    target = effect(window, ctx)
    if target is None:
        return (), 0
    bound = cycles(window)
    alpha = [(ins, OPS[ins.op].cycles, ins.op in _BINARY, ins.op in _UNARY or
              ins.op is Opcode.DUP) for ins in alphabet(inputs, window, ctx)]
    t_stack, t_emitted = target
    t_depth, t_emits = len(t_stack), len(t_emitted)
    begin = _start(ctx)
    seen = {begin: 0}
    heap: list[tuple[int, int, State, tuple[Instr, ...]]] = [(0, 0, begin, ())]
    tie = 0
    found: list[tuple[Instr, ...]] = []
    expanded = 0
    while heap and expanded < max_states and len(found) < limit:
        cost, _, state, seq = heapq.heappop(heap)
        if seen.get(state, cost) < cost:
            continue
        if state == target:
            if seq != tuple(window):
                found.append(seq)
            continue
        expanded += 1
        stack0 = state[0]
        # Folding constants is PUSH's job: no operation on values that are the same on
        # every context (lossy on purpose; it keeps the classes the search walks few).
        top_const = bool(stack0) and len(set(stack0[-1])) == 1
        both_const = top_const and len(stack0) > 1 and len(set(stack0[-2])) == 1
        for ins, c, binary, unary in alpha:
            total = cost + c
            if total > bound or (binary and both_const) or (unary and top_const):
                continue
            nxt = step(state, ins, ctx)
            if nxt is None:
                continue
            stack, emitted = nxt
            n = len(emitted)
            if n > t_emits or (n and emitted[-1] != t_emitted[n - 1]):
                continue
            left = bound - total
            if len(stack) - t_depth > min(left, MAX_EXCESS) or 2 * (t_emits - n) > left:
                continue
            if seen.get(nxt, total + 1) <= total:
                continue
            seen[nxt] = total
            tie += 1
            heapq.heappush(heap, (total, tie, nxt, (*seq, ins)))
    return tuple(found), expanded


def candidates(program: Program, tr: Trace, start: int, width: int,
               max_states: int = 400) -> tuple[list[Program], int]:
    """The window's rewrites as whole programs, and the states expanded to find them."""
    ctx = tr.contexts.get(start)
    if ctx is None:
        return [], 0
    found, expanded = synthesise_counted(program, start, width, ctx, max_states=max_states)
    return [program.replace(start, width, seq) for seq in found], expanded
