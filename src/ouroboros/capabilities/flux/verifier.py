"""The FLUX verifier: the audit gate for bytecode patches.

A verified image cannot underflow its stack, exceed the depth bound, jump off an
instruction boundary, fall off the end of its code, recurse, or enter a loop it can
never leave. The only run-time traps left are division by zero and fuel exhaustion,
which is what lets the fast engine drop per-instruction checks.

Stack depth is checked per *function* (the entry point and each CALL target): every
instruction has one depth relative to its function's entry, a callee's net effect is
the same at all its RETs, and a CALL applies that effect at the call site.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ouroboros.capabilities.flux.isa import (
    BRANCHES,
    JUMPS,
    MAX_CALL_DEPTH,
    MAX_CODE_BYTES,
    MAX_STACK,
    MEMORY_SLOTS,
    OPS,
    PARAM_OPERAND,
    SLOT_OPERAND,
    Decoded,
    DecodeError,
    Image,
    Opcode,
    decode_code,
)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reasons: tuple[str, ...]
    max_depth: int = 0
    instructions: tuple[Decoded, ...] = ()


@dataclass
class _Function:
    entry: int
    needs: int = 0  # values it reads from its caller's stack
    peak: int = 0  # highest depth relative to entry
    effect: int | None = None  # net depth change at RET; None: never returns
    call_depth: int = 0  # deepest call nesting below it
    halts: bool = False  # a HALT is reachable inside it (or in a callee)


@dataclass
class _Analysis:
    params: tuple[int, ...]
    code_end: int
    at: dict[int, Decoded]
    reasons: list[str] = field(default_factory=list)
    functions: dict[int, _Function] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)

    def reason(self, text: str) -> None:
        if text not in self.reasons:
            self.reasons.append(text)


def verify(image: Image, *, max_bytes: int = MAX_CODE_BYTES) -> Verdict:
    """Check an image against every rule in docs/flux.md; list every reason it fails."""
    if not image.code:
        return Verdict(False, ("program is empty",))
    if len(image.code) > max_bytes:
        # Refused before decoding: analysing megabytes of code (a patch value, a file)
        # took the verifier minutes and gigabytes, and the size alone is the verdict.
        return Verdict(False, (f"program is {len(image.code)} bytes; the size bound is "
                               f"{max_bytes}",))
    try:
        decoded = decode_code(image.code)
    except DecodeError as exc:
        return Verdict(False, (str(exc),))
    return verify_instructions(decoded, image.params, len(image.code), max_bytes=max_bytes)


def verify_instructions(decoded: Sequence[Decoded], params: tuple[int, ...], code_size: int, *,
                        max_bytes: int = MAX_CODE_BYTES) -> Verdict:
    """The rules after decoding (evolution calls this straight from an instruction list)."""
    reasons: list[str] = []
    if code_size > max_bytes:
        reasons.append(f"program is {code_size} bytes; the size bound is {max_bytes}")
    if not decoded:
        return Verdict(False, (*reasons, "program is empty"))
    at = {ins.offset: ins for ins in decoded}
    analysis = _Analysis(params, code_size, at, reasons)
    if not _check_operands(analysis, decoded):  # no control-flow graph without good jumps
        return Verdict(False, tuple(analysis.reasons), 0, tuple(decoded))
    main = _function(analysis, 0, is_main=True)
    if main is not None:
        if main.peak > MAX_STACK:
            analysis.reason(f"stack depth can reach {main.peak}; the bound is {MAX_STACK}")
        if main.call_depth > MAX_CALL_DEPTH:
            analysis.reason(f"calls nest {main.call_depth} deep; the bound is {MAX_CALL_DEPTH}")
    peak = main.peak if main is not None else 0
    return Verdict(not analysis.reasons, tuple(analysis.reasons), peak, tuple(decoded))


def _check_operands(analysis: _Analysis, decoded: Iterable[Decoded]) -> bool:
    """Record operand faults; False if a jump target is bad (the CFG cannot be built)."""
    nparams = len(analysis.params)
    jumps_ok = True
    for ins in decoded:
        name = f"{ins.opcode.name} at offset {ins.offset}"
        if ins.opcode in JUMPS and ins.args[0] not in analysis.at:
            analysis.reason(f"{name} targets {ins.args[0]}, not an instruction boundary")
            jumps_ok = False
        if ins.opcode in SLOT_OPERAND and ins.args[SLOT_OPERAND[ins.opcode]] >= MEMORY_SLOTS:
            analysis.reason(f"{name} uses memory slot {ins.args[SLOT_OPERAND[ins.opcode]]}; "
                            f"slots are 0..{MEMORY_SLOTS - 1}")
        if ins.opcode in PARAM_OPERAND and ins.args[PARAM_OPERAND[ins.opcode]] >= nparams:
            analysis.reason(f"{name} uses parameter {ins.args[PARAM_OPERAND[ins.opcode]]}; "
                            f"the program declares {nparams}")
    return jumps_ok


def _function(analysis: _Analysis, entry: int, *, is_main: bool) -> _Function | None:
    """Analyse one function (memoised); None if it cannot be summarised."""
    if entry in analysis.functions:
        return analysis.functions[entry]
    if entry in analysis.active:
        analysis.reason(f"recursive CALL into offset {entry}: recursion is not allowed")
        return None
    analysis.active.add(entry)
    fn = _Function(entry)
    depth = {entry: 0}
    work = [entry]
    lowest = 0
    ret_depths: set[int] = set()
    code_end = analysis.code_end
    edges: dict[int, set[int]] = {}
    exits: set[int] = set()
    while work:
        pc = work.pop()
        ins = analysis.at[pc]
        d = depth[pc]
        following = pc + ins.size
        succ: list[tuple[int, int]] = []
        out = edges.setdefault(pc, set())
        if ins.opcode is Opcode.CALL:
            callee = _function(analysis, ins.args[0], is_main=False)
            if callee is None:
                exits.add(pc)  # already rejected; do not also report a loop
                continue
            if callee.halts:
                exits.add(pc)
                fn.halts = True
            low = d - callee.needs
            if is_main and low < 0:
                analysis.reason(f"stack underflow at offset {pc}: CALL needs {callee.needs} "
                                f"value(s), the stack holds {d}")
            lowest = min(lowest, low)
            fn.peak = max(fn.peak, d + callee.peak)
            fn.call_depth = max(fn.call_depth, callee.call_depth + 1)
            if callee.effect is not None:
                succ.append((following, d + callee.effect))
        else:
            info = OPS[ins.opcode]
            low = d - info.pops
            if is_main and low < 0:
                analysis.reason(f"stack underflow at offset {pc}: {ins.opcode.name} needs "
                                f"{info.pops} value(s), the stack holds {d}")
            lowest = min(lowest, low)
            after = low + info.pushes
            fn.peak = max(fn.peak, after)
            if ins.opcode is Opcode.HALT or ins.opcode is Opcode.RET:
                exits.add(pc)
                fn.halts = fn.halts or ins.opcode is Opcode.HALT
                if ins.opcode is Opcode.RET and not is_main:
                    ret_depths.add(d)
            elif ins.opcode is Opcode.JMP:
                succ.append((ins.args[0], after))
            else:
                if ins.opcode in BRANCHES:
                    succ.append((ins.args[0], after))
                succ.append((following, after))
        for target, nd in succ:
            if target >= code_end:
                analysis.reason(f"execution can run past the end of the code after offset {pc}")
                continue
            out.add(target)
            if target not in depth:
                depth[target] = nd
                work.append(target)
            elif depth[target] != nd:
                analysis.reason(f"inconsistent stack depth at offset {target} ({depth[target]} "
                                f"vs {nd}): every path must reach it with the same depth")
    analysis.active.discard(entry)
    fn.needs = -lowest
    if len(ret_depths) > 1:
        analysis.reason(f"function at offset {entry} returns with different stack depths "
                        f"{sorted(ret_depths)}")
    fn.effect = min(ret_depths) if ret_depths else None
    _check_termination(analysis, edges, exits)
    analysis.functions[entry] = fn
    return fn


def _check_termination(analysis: _Analysis, edges: dict[int, set[int]], exits: set[int]) -> None:
    """Reject any instruction of a function from which no HALT or RET can be reached.

    A CALL counts as an exit only if its callee can HALT; a callee's RET leads back to
    the instruction after the CALL, so `L: CALL f; JMP L` is still an infinite loop.
    """
    reverse: dict[int, set[int]] = {}
    for src, targets in edges.items():
        for dst in targets:
            reverse.setdefault(dst, set()).add(src)
    can_exit = set(exits)
    work = list(can_exit)
    while work:
        node = work.pop()
        for prev in reverse.get(node, ()):
            if prev not in can_exit:
                can_exit.add(prev)
                work.append(prev)
    stuck = sorted(set(edges) - can_exit)
    if stuck:
        analysis.reason(f"infinite loop: no HALT or RET is reachable from offset {stuck[0]}")
