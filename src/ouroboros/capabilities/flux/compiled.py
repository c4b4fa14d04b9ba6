"""FLUX compiled to a Python function: for candidates that run long.

The dispatch loop (`fastpath.py`) pays for decoding an opcode and moving values through
a list on every instruction. A verified program has one stack depth at every
instruction, so each stack slot can be a *local variable* (`s0`, `s1`, ...), and each
basic block becomes straight-line Python that adds its cycles and steps once and checks
fuel once. `compile()` costs a fraction of a millisecond, which pays off after a few
thousand instructions: the search uses it when the program it starts from runs long.

Results are identical to the reference interpreter (tests/flux/test_flux_engines.py),
traps included: a division by zero reports the cycles up to and including the DIV; when
a block would not fit in the remaining fuel the run is handed to the dispatch loop from
the start, which stops at the exact instruction (fuel exhaustion is rare: a candidate
that runs away). Programs with CALL are not compiled (`compile_program` returns None).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from ouroboros.capabilities.flux.fastpath import Predecoded, run_predecoded
from ouroboros.capabilities.flux.isa import (
    DECAY_SCALE,
    INT64_MAX,
    INT64_MIN,
    OPS,
    Decoded,
    Opcode,
    wrap64,
)
from ouroboros.capabilities.flux.vm import RunResult, trunc_div, trunc_rem

Compiled = Callable[[Sequence[int], int], RunResult | None]
_CACHE: OrderedDict[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], Compiled | None] = \
    OrderedDict()
_ARITH = {Opcode.ADD: "+", Opcode.SUB: "-", Opcode.MUL: "*"}
_BITS = {Opcode.AND: "&", Opcode.OR: "|", Opcode.XOR: "^"}
_CMP = {Opcode.EQ: "==", Opcode.LT: "<", Opcode.GT: ">"}


def _depths(ops: Sequence[int], arg0: Sequence[int]) -> list[int | None]:
    """The stack depth before each instruction (None where no path from 0 reaches)."""
    depth: list[int | None] = [None] * len(ops)
    depth[0] = 0
    work = [0]
    while work:
        i = work.pop()
        op = Opcode(ops[i])
        d = depth[i]
        assert d is not None
        after = d - OPS[op].pops + OPS[op].pushes
        nxt: list[int] = []
        if op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ):
            nxt.append(arg0[i])
        if op not in (Opcode.JMP, Opcode.HALT, Opcode.RET):
            nxt.append(i + 1)
        for t in nxt:
            if t < len(ops) and depth[t] is None:
                depth[t] = after
                work.append(t)
    return depth


def _source(p: Predecoded, decoded: Sequence[Decoded]) -> str | None:
    ops, arg0, arg1, costs = p.ops, p.arg0, p.arg1, p.costs
    if any(op == Opcode.CALL for op in ops):
        return None
    depth = _depths(ops, arg0)
    n = len(ops)
    leaders = {0}
    for i, op in enumerate(ops):
        if op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ):
            leaders.add(arg0[i])
            leaders.add(i + 1)
        elif op in (Opcode.HALT, Opcode.RET):
            leaders.add(i + 1)
    starts = sorted(t for t in leaders if t < n)
    block_of = {s: k for k, s in enumerate(starts)}
    inputs = sorted({arg0[i] for i, op in enumerate(ops) if op in (Opcode.SENSE, Opcode.INSTINCT)})
    slots = sorted({arg0[i] for i, op in enumerate(ops)
                    if op in (Opcode.LOAD, Opcode.STORE, Opcode.DECAY)})
    lines = ["def run(inp, fuel):", "    n_in = len(inp)"]
    lines += [f"    i{k} = inp[{k}] if n_in > {k} else 0" for k in inputs]
    lines += [f"    m{k} = 0" for k in slots]
    lines += ["    out = []", "    chan = []", "    cyc = 0", "    steps = 0", "    b = 0",
              "    while True:"]
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else n
        if depth[start] is None:
            continue  # unreachable: never entered, and its depths are unknown
        cost = sum(costs[start:end])
        lines.append(f"        {'if' if k == 0 else 'elif'} b == {k}:")
        lines.append(f"            if cyc + {cost} > fuel: return None")
        lines.append(f"            cyc += {cost}")
        lines.append(f"            steps += {end - start}")
        spent = 0
        for i in range(start, end):
            spent += costs[i]
            d = depth[i]
            assert d is not None  # a reached block is reached all the way through
            body = _instruction(ops[i], arg0[i], arg1[i], d, cost - spent, end - i - 1,
                                block_of, i)
            lines += ["            " + line for line in body]
        last = ops[end - 1]
        if last not in (Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.HALT, Opcode.RET):
            lines.append(f"            b = {block_of.get(end, -1)}")
    lines.append("        else: return RESULT(tuple(out), tuple(chan), cyc, False, 'bad_jump', "
                 "steps)")
    return "\n".join(lines) + "\n"


def _wrap(name: str) -> str:
    return f"if not LO <= {name} <= HI: {name} = WRAP({name})"


def _instruction(op: int, a0: int, a1: int, d: int, after: int, left: int,
                 block_of: dict[int, int], index: int) -> list[str]:
    top, second = f"s{d - 1}", f"s{d - 2}"
    code = Opcode(op)
    if code is Opcode.NOP:
        return []
    if code is Opcode.PUSH or code is Opcode.PARAM:
        return [f"s{d} = {a0}"]
    if code is Opcode.SENSE:
        return [f"s{d} = i{a0}"]
    if code is Opcode.LOAD:
        return [f"s{d} = m{a0}"]
    if code is Opcode.STORE:
        return [f"m{a0} = {top}"]
    if code is Opcode.POP:
        return []
    if code is Opcode.DUP:
        return [f"s{d} = {top}"]
    if code is Opcode.OVER:
        return [f"s{d} = {second}"]
    if code is Opcode.SWAP:
        return [f"{second}, {top} = {top}, {second}"]
    if code in _ARITH:
        return [f"{second} = {second} {_ARITH[code]} {top}", _wrap(second)]
    if code in _BITS:
        return [f"{second} = {second} {_BITS[code]} {top}"]
    if code in _CMP:
        return [f"{second} = 1 if {second} {_CMP[code]} {top} else 0"]
    if code is Opcode.SHL:
        return [f"{second} = WRAP({second} << ({top} & 63))"]
    if code is Opcode.SHR:
        return [f"{second} = {second} >> ({top} & 63)"]
    if code in (Opcode.DIV, Opcode.MOD):
        fn = "DIV" if code is Opcode.DIV else "REM"
        return [f"if {top} == 0: return RESULT(tuple(out), tuple(chan), cyc - {after}, False, "
                f"'division_by_zero', steps - {left})",
                f"{second} = {fn}({second}, {top})"]
    if code is Opcode.NEG:
        return [f"{top} = -{top}", _wrap(top)]
    if code is Opcode.INC:
        return [f"{top} += 1", _wrap(top)]
    if code is Opcode.DEC:
        return [f"{top} -= 1", _wrap(top)]
    if code is Opcode.NOT:
        return [f"{top} = ~{top}"]
    if code is Opcode.THRESH:
        return [f"{top} = 1 if {top} >= {a0} else 0"]
    if code is Opcode.DECAY:
        return [f"m{a0} = DIV(WRAP(m{a0} * {a1}), {DECAY_SCALE})"]
    if code is Opcode.ACT:
        return [f"out.append({top})", f"chan.append({a0})"]
    if code is Opcode.INSTINCT:
        return [f"out.append(i{a0})", f"chan.append({a0})"]
    if code is Opcode.JMP:
        return [f"b = {block_of[a0]}"]
    if code in (Opcode.JZ, Opcode.JNZ):
        test = "==" if code is Opcode.JZ else "!="
        return [f"b = {block_of[a0]} if {top} {test} 0 else {block_of.get(index + 1, -1)}"]
    # HALT, or RET with an empty call stack (no CALL is compiled)
    return ["return RESULT(tuple(out), tuple(chan), cyc, True, None, steps)"]


_NAMESPACE = {"LO": INT64_MIN, "HI": INT64_MAX, "WRAP": wrap64, "DIV": trunc_div,
              "REM": trunc_rem, "RESULT": RunResult}


def compile_program(program: Predecoded, decoded: Sequence[Decoded] = ()) -> Compiled | None:
    """A Python function for a verified, pre-decoded program (cached), or None."""
    key = (program.ops, program.arg0, program.arg1)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    source = _source(program, decoded)
    fn: Compiled | None = None
    if source is not None:
        namespace = dict(_NAMESPACE)
        exec(compile(source, "<flux>", "exec"), namespace)
        fn = namespace["run"]  # type: ignore[assignment]
    _CACHE[key] = fn
    if len(_CACHE) > 512:
        _CACHE.popitem(last=False)
    return fn


def run_compiled(program: Predecoded, inputs: Sequence[int] = (), *, fuel: int) -> RunResult:
    """Run compiled when possible; the dispatch loop takes over for exact fuel traps."""
    fn = compile_program(program)
    if fn is not None:
        result = fn([wrap64(v) for v in inputs], fuel)
        if result is not None:
            return result
    return run_predecoded(program, inputs, fuel=fuel)
