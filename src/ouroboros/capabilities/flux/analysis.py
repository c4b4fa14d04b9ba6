"""Static facts about a program as an instruction list: reachability, dead stores and
bounds on the value at the top of the stack.

Both are conservative: an instruction is *unreachable* only if no path from the entry
(jumps, fall-through, calls and the returns after them) reaches it, and a STORE is
*dead* only if no path from it reaches a LOAD of its slot (or a DECAY of it) before the
slot is stored again.
"""

from __future__ import annotations

from ouroboros.capabilities.flux.isa import BRANCHES, JUMPS, OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets

Interval = tuple[int, int] | None  # (lo, hi) bounds of a value, None when unknown

_STOPS = (Opcode.HALT, Opcode.RET, Opcode.JMP)


def successors(program: Program, index: int) -> list[int]:
    """Where control may go after instruction `index` (a CALL continues into its callee
    and, after the callee returns, to the next instruction)."""
    ins = program.instrs[index]
    out: list[int] = []
    if ins.op is Opcode.JMP or ins.op in BRANCHES or ins.op is Opcode.CALL:
        out.append(ins.args[0])
    if ins.op not in _STOPS:
        out.append(index + 1)
    return [t for t in out if 0 <= t < len(program)]


def predecessors(program: Program) -> dict[int, list[int]]:
    """For each instruction, the instructions control may come from (reachable ones)."""
    out: dict[int, list[int]] = {}
    for index in sorted(reachable(program)):
        for nxt in successors(program, index):
            out.setdefault(nxt, []).append(index)
    return out


def reachable(program: Program) -> set[int]:
    seen: set[int] = set()
    work = [0] if len(program) else []
    while work:
        index = work.pop()
        if index in seen:
            continue
        seen.add(index)
        work.extend(successors(program, index))
    return seen


def unreachable_count(program: Program) -> int:
    return len(program) - len(reachable(program))


def remove_unreachable(program: Program) -> Program:
    """Drop every unreachable instruction (jumps are re-targeted by Program.replace)."""
    live = reachable(program)
    result = program
    for index in range(len(program) - 1, -1, -1):
        if index not in live:
            result = result.delete(index)
    return result


def dead_stores(program: Program) -> list[int]:
    """Indices of STOREs whose value no later LOAD/DECAY of the slot can observe."""
    out = []
    for index, ins in enumerate(program.instrs):
        if ins.op is Opcode.STORE and not _observed(program, index + 1, ins.args[0]):
            out.append(index)
    return out


def observed(program: Program, start: int, slot: int) -> bool:
    """True if some path from `start` may read `slot` (LOAD, DECAY) before storing it."""
    return _observed(program, start, slot)


def _observed(program: Program, start: int, slot: int) -> bool:
    seen: set[int] = set()
    work = [start] if start < len(program) else []
    while work:
        index = work.pop()
        if index in seen:
            continue
        seen.add(index)
        ins = program.instrs[index]
        if ins.op in (Opcode.LOAD, Opcode.DECAY) and ins.args[0] == slot:
            return True
        if ins.op is Opcode.CALL or ins.op is Opcode.RET:
            return True  # across calls: give up, assume observed
        if ins.op is Opcode.STORE and ins.args[0] == slot:
            continue  # overwritten before any read on this path
        work.extend(successors(program, index))
    return False


def _interval_step(stack: list[Interval], ins: Instr) -> None:
    """One instruction of `top_intervals`: the stack holds
    a (lo, hi) bound or None (unknown) per known entry; deeper entries are unknown."""
    lo64, hi64 = -(1 << 63), (1 << 63) - 1

    def pop() -> Interval:
        return stack.pop() if stack else None

    def fits(lo: int, hi: int) -> Interval:
        return (lo, hi) if lo64 <= lo <= hi <= hi64 else None

    op = ins.op
    if op is Opcode.PUSH:
        stack.append((ins.args[0], ins.args[0]))
    elif op is Opcode.DUP:
        top = pop()
        stack.extend((top, top))
    elif op is Opcode.OVER:
        b, a = pop(), pop()
        stack.extend((a, b, a))
    elif op is Opcode.SWAP:
        b, a = pop(), pop()
        stack.extend((b, a))
    elif op in (Opcode.ADD, Opcode.SUB, Opcode.AND, Opcode.SHR, Opcode.DIV, Opcode.MOD,
                Opcode.OR, Opcode.XOR, Opcode.EQ, Opcode.LT, Opcode.GT):
        b, a = pop(), pop()
        out: Interval = None
        if op in (Opcode.EQ, Opcode.LT, Opcode.GT):
            out = (0, 1)
        elif op is Opcode.AND:
            bounds = [x[1] for x in (a, b) if x is not None and x[0] >= 0]
            out = (0, min(bounds)) if bounds else None
        elif a is not None and b is not None:
            if op is Opcode.ADD:
                out = fits(a[0] + b[0], a[1] + b[1])
            elif op is Opcode.SUB:
                out = fits(a[0] - b[1], a[1] - b[0])
            elif op is Opcode.SHR and b[0] == b[1]:
                out = (a[0] >> (b[0] & 63), a[1] >> (b[0] & 63))
            elif op is Opcode.DIV and b[0] == b[1] and b[0] > 0 and a[0] >= 0:
                out = (a[0] // b[0], a[1] // b[0])
            elif op is Opcode.MOD and b[0] == b[1] and b[0] != 0 and a[0] >= 0:
                out = (0, min(a[1], abs(b[0]) - 1))
            elif op in (Opcode.OR, Opcode.XOR) and a[0] >= 0 and b[0] >= 0:
                out = (0, (1 << max(a[1], b[1]).bit_length()) - 1)
        stack.append(out)
    elif op in (Opcode.INC, Opcode.DEC, Opcode.NEG, Opcode.NOT):
        a = pop()
        if a is None:
            stack.append(None)
        elif op is Opcode.INC:
            stack.append(fits(a[0] + 1, a[1] + 1))
        elif op is Opcode.DEC:
            stack.append(fits(a[0] - 1, a[1] - 1))
        elif op is Opcode.NEG:
            stack.append(fits(-a[1], -a[0]))
        else:
            stack.append((~a[1], ~a[0]))
    elif op is Opcode.THRESH:
        pop()
        stack.append((0, 1))
    elif op is Opcode.CALL:
        stack.clear()
    else:
        info = OPS[op]
        for _ in range(info.pops):
            pop()
        stack.extend([None] * info.pushes)


def top_intervals(program: Program, targets: set[int] | None = None) -> list[Interval]:
    """For each instruction, bounds (lo, hi) of the top of the stack when it starts, or
    None if unknown: an interval analysis of each basic block on its own (nothing is
    known at a block's start, so the bounds hold on every path)."""
    targets = jump_targets(program) if targets is None else targets
    instrs = program.instrs
    stack: list[Interval] = []
    out: list[Interval] = []
    for i, ins in enumerate(instrs):
        if i in targets or (i > 0 and instrs[i - 1].op in (*JUMPS, Opcode.HALT, Opcode.RET)):
            stack = []  # a block starts: nothing is known about what it is given
        out.append(stack[-1] if stack else None)
        _interval_step(stack, ins)
    return out
