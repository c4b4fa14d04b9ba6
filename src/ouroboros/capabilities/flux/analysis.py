"""Static facts about a program as an instruction list: reachability and dead stores.

Both are conservative: an instruction is *unreachable* only if no path from the entry
(jumps, fall-through, calls and the returns after them) reaches it, and a STORE is
*dead* only if no path from it reaches a LOAD of its slot (or a DECAY of it) before the
slot is stored again.
"""

from __future__ import annotations

from ouroboros.capabilities.flux.isa import BRANCHES, Opcode
from ouroboros.capabilities.flux.program import Program

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
