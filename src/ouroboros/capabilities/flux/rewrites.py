"""Sound local rewrites (peephole rules): OptimizeOpcode's table and the peephole baseline.

Each rule replaces a window of instructions with a cheaper sequence that computes the
same thing for every input. A rule only fires when no jump lands strictly inside the
window, since code entered in the middle would no longer mean the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ouroboros.capabilities.flux import analysis
from ouroboros.capabilities.flux.isa import BRANCHES, JUMPS, OPS, Opcode
from ouroboros.capabilities.flux.program import Instr, Program, jump_targets

Rule = Callable[[tuple[Instr, ...], int], tuple[Instr, ...] | None]


def _is_push(ins: Instr, value: int | None = None) -> bool:
    return ins.op is Opcode.PUSH and (value is None or ins.args[0] == value)


_IDENTITY_OPERANDS = {  # PUSH k; OP  ==  nothing
    Opcode.ADD: 0, Opcode.SUB: 0, Opcode.OR: 0, Opcode.XOR: 0, Opcode.SHL: 0, Opcode.SHR: 0, Opcode.MUL: 1, Opcode.DIV: 1, Opcode.AND: -1,
}
_CANCELLING = {(Opcode.SWAP, Opcode.SWAP), (Opcode.NEG, Opcode.NEG), (Opcode.NOT, Opcode.NOT), (Opcode.INC, Opcode.DEC),
               (Opcode.DEC, Opcode.INC), (Opcode.DUP, Opcode.POP)}
_FOLD = {Opcode.ADD: lambda a, b: a + b, Opcode.SUB: lambda a, b: a - b, Opcode.MUL: lambda a, b: a * b}


# Instructions that push one value and do nothing else: they commute with each other,
# and one followed by POP is no work at all.
PRODUCERS = frozenset({Opcode.PUSH, Opcode.SENSE, Opcode.LOAD, Opcode.PARAM})
COMMUTATIVE = frozenset({Opcode.ADD, Opcode.MUL, Opcode.AND, Opcode.OR, Opcode.XOR, Opcode.EQ})
# No side effect and no trap: safe to compute once instead of twice.
_PURE = PRODUCERS | {Opcode.DUP, Opcode.SWAP, Opcode.OVER, Opcode.POP, Opcode.ADD, Opcode.SUB,
                     Opcode.MUL, Opcode.NEG, Opcode.INC, Opcode.DEC, Opcode.AND, Opcode.OR,
                     Opcode.XOR, Opcode.NOT, Opcode.SHL, Opcode.SHR, Opcode.EQ, Opcode.LT,
                     Opcode.GT, Opcode.THRESH, Opcode.NOP}


def _pair_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b = w[0], w[1]
    if (a.op, b.op) in _CANCELLING:
        return ()
    if a.op is Opcode.PUSH:
        k = a.args[0]
        if b.op is Opcode.POP:
            return ()
        if _IDENTITY_OPERANDS.get(b.op) == k:
            return ()
        if k == 1 and b.op is Opcode.ADD:
            return (Instr(Opcode.INC),)
        if k == 1 and b.op is Opcode.SUB:
            return (Instr(Opcode.DEC),)
        if k == -1 and b.op is Opcode.MUL:
            return (Instr(Opcode.NEG),)
        if b.op is Opcode.MUL and k > 1 and k & (k - 1) == 0:
            return (Instr(Opcode.PUSH, (k.bit_length() - 1,)), Instr(Opcode.SHL))
    if a.op is Opcode.STORE and b.op is Opcode.LOAD and a.args == b.args:
        return (Instr(Opcode.DUP), Instr(Opcode.STORE, a.args))
    if a.op is Opcode.JMP and a.args[0] == index + 1:
        return (b,)
    return None


def _single_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    ins = w[0]
    if ins.op is Opcode.NOP:
        return ()
    if ins.op is Opcode.JMP and ins.args[0] == index + 1:
        return ()
    return None


def _fold_rule(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b, op = w
    if _is_push(a) and _is_push(b) and op.op in _FOLD:
        value = _FOLD[op.op](a.args[0], b.args[0])
        if -(1 << 31) <= value < (1 << 31):
            return (Instr(Opcode.PUSH, (value,)),)
    return None


def _pair_rule_more(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b = w
    if a.op in PRODUCERS and b.op is Opcode.POP:
        return ()
    if a.op is Opcode.NEG and b.op in (Opcode.ADD, Opcode.SUB):  # x + -y = x - y, x - -y = x + y
        return (Instr(Opcode.SUB if b.op is Opcode.ADD else Opcode.ADD),)
    if a.op is Opcode.SENSE and b.op is Opcode.ACT and a.args == b.args:
        return (Instr(Opcode.INSTINCT, a.args),)  # the fused reflex: same value, same channel
    if a.op is Opcode.SWAP and b.op in COMMUTATIVE:  # b op a = a op b
        return (b,)
    if a.op is Opcode.SWAP and b.op in (Opcode.LT, Opcode.GT):  # b < a is a > b
        return (Instr(Opcode.GT if b.op is Opcode.LT else Opcode.LT),)
    if a.op is Opcode.PUSH and b.op is Opcode.MUL and a.args[0] < -1 and _power_of_two(-a.args[0]):
        # x * -2^k = -(x << k), wrapping both ways
        return (Instr(Opcode.PUSH, ((-a.args[0]).bit_length() - 1,)), Instr(Opcode.SHL),
                Instr(Opcode.NEG))
    return None


def _power_of_two(k: int) -> bool:
    return k > 0 and k & (k - 1) == 0


def _triple_rule_more(w: tuple[Instr, ...], index: int) -> tuple[Instr, ...] | None:
    a, b, op = w
    if a.op in PRODUCERS and b.op in PRODUCERS and op.op is Opcode.SWAP:
        return (b, a)  # two independent pushes: push them the other way round
    return None


#: The seed's OptimizeOpcode table (what the classic engine and the peephole baseline
#: started with), and the table the search uses, which adds rules tuned on the tuning
#: suite (bench/data/flux_tuning.toml).
SEED_RULES: tuple[tuple[int, Rule], ...] = ((1, _single_rule), (2, _pair_rule),
                                            (3, _fold_rule))
RULES: tuple[tuple[int, Rule], ...] = (*SEED_RULES, (2, _pair_rule_more), (3, _triple_rule_more))


@dataclass(frozen=True)
class Site:
    index: int
    width: int
    replacement: tuple[Instr, ...]


def cost(instrs: tuple[Instr, ...]) -> int:
    return sum(OPS[i.op].cycles for i in instrs)


def self_contained(block: tuple[Instr, ...], pure: frozenset[Opcode] | set[Opcode] = _PURE
                   ) -> bool:
    """Only ``pure`` instructions, reads nothing it did not push, and leaves exactly one
    value (a producer: schedule.py passes its own, narrower set)."""
    depth = 0
    for ins in block:
        if ins.op not in pure:
            return False
        info = OPS[ins.op]
        if depth < info.pops:
            return False
        depth += info.pushes - info.pops
    return depth == 1


def _cse_sites(program: Program, targets: set[int]) -> Iterator[Site]:
    """`B; B` where B computes one value from nothing: `B; DUP` (common subexpression)."""
    instrs = program.instrs
    for index in range(len(instrs)):
        for width in (1, 2, 3):
            end = index + 2 * width
            block = instrs[index:index + width]
            if end > len(instrs) or instrs[index + width:end] != block:
                continue
            if any(index < t < end for t in targets) or not self_contained(block):
                continue
            if cost(block) > 1:
                yield Site(index + width, width, (Instr(Opcode.DUP),))


def _dead_store_sites(program: Program) -> Iterator[Site]:
    for index in analysis.dead_stores(program):
        yield Site(index, 1, (Instr(Opcode.POP),))


def _tail_sites(program: Program) -> Iterator[Site]:
    """`JMP L` where L starts a short exit block (at most 4 instructions, no jump, the
    last a HALT): a copy of the block instead saves the jump's cycles on that path (tail
    duplication; the original block stays for whoever else reaches it)."""
    instrs = program.instrs
    for index, ins in enumerate(instrs):
        if ins.op is not Opcode.JMP or ins.args[0] == index + 1:
            continue
        start = ins.args[0]
        block = instrs[start:start + 4]
        for end, b in enumerate(block):
            if b.op in (Opcode.JMP, Opcode.JZ, Opcode.JNZ, Opcode.CALL, Opcode.RET):
                break
            if b.op is Opcode.HALT:
                yield Site(index, 1, block[:end + 1])
                break


def _retarget(t: int, start: int, count: int, new_len: int) -> int:
    """Where a jump to `t` points once `count` instructions at `start` become `new_len`
    (a target inside the window goes to its start, as in Program.replace)."""
    if t < start:
        return t
    if t < start + count:
        return start
    return t + new_len - count


def _branch_sites(program: Program, targets: set[int]) -> Iterator[Site]:
    """Rewrites of conditional branches:
    - `PUSH 0; EQ; JZ L` -> `JNZ L` and `PUSH 0; EQ; JNZ L` -> `JZ L` (the test inverted);
    - `PUSH 2^k; MOD` right before `JZ`/`JNZ` or `PUSH 0; EQ` -> `PUSH 2^k - 1; AND`
      (x rem 2^k is zero exactly when the low k bits are, for either sign);
    - `JZ L`/`JNZ L` where L is the next instruction -> `POP`."""
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if ins.op not in BRANCHES:
            continue
        target = ins.args[0]
        if (i >= 2 and _is_push(instrs[i - 2], 0) and instrs[i - 1].op is Opcode.EQ
                and not any(i - 2 < t <= i for t in targets) and not i - 2 < target <= i):
            flipped = Opcode.JNZ if ins.op is Opcode.JZ else Opcode.JZ
            yield Site(i - 2, 3, (Instr(flipped, (_retarget(target, i - 2, 3, 1),)),))
        if target == i + 1:
            yield Site(i, 1, (Instr(Opcode.POP),))
    for i in range(len(instrs) - 2):
        a, b, c = instrs[i], instrs[i + 1], instrs[i + 2]
        zero_test = c.op in BRANCHES or (
            _is_push(c, 0) and i + 3 < len(instrs) and instrs[i + 3].op is Opcode.EQ)
        if (a.op is Opcode.PUSH and _power_of_two(a.args[0]) and a.args[0] > 1
                and b.op is Opcode.MOD and zero_test and i + 1 not in targets):
            yield Site(i, 2, (Instr(Opcode.PUSH, (a.args[0] - 1,)), Instr(Opcode.AND)))


def _thread_sites(program: Program) -> Iterator[Site]:
    """Jump threading: a jump whose target is `JMP M` (a chain of them) goes to M at
    once; the cycles of every skipped JMP are saved on that path."""
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if ins.op not in (Opcode.JMP, Opcode.JZ, Opcode.JNZ):
            continue
        t, seen = ins.args[0], {i}
        while 0 <= t < len(instrs) and instrs[t].op is Opcode.JMP and t not in seen:
            seen.add(t)
            t = instrs[t].args[0]
        if t != ins.args[0] and t not in seen and 0 <= t < len(instrs):
            yield Site(i, 1, (Instr(ins.op, (t,)),))


def _continuation(program: Program, index: int) -> int:
    """Where control really goes from `index`, through unconditional jumps."""
    seen: set[int] = set()
    while 0 <= index < len(program) and program.instrs[index].op is Opcode.JMP:
        if index in seen:
            return -1
        seen.add(index)
        index = program.instrs[index].args[0]
    return index


def _same_tail(program: Program, p: int, q: int, limit: int = 12) -> bool:
    """True if running on from `p` and from `q` does the same: they meet, or they run
    the same jump-free instructions up to a HALT (or the same JMP)."""
    instrs = program.instrs
    for _ in range(limit):
        p, q = _continuation(program, p), _continuation(program, q)
        if p == q and p >= 0:
            return True
        if not (0 <= p < len(instrs) and 0 <= q < len(instrs)) or instrs[p] != instrs[q]:
            return False
        op = instrs[p].op
        if op is Opcode.HALT:
            return True
        if op in JUMPS or op is Opcode.RET:
            return False
        p, q = p + 1, q + 1
    return False


def _from_boolean(one: int, zero: int) -> tuple[Instr, ...] | None:
    """Instructions mapping a boolean b (0 or 1) on the stack to `one` if b else `zero`,
    cheaper than a branch and a push (3 cycles), if known."""
    if (one, zero) == (1, 0):
        return ()
    if (one, zero) == (0, 1):
        return (Instr(Opcode.PUSH, (1,)), Instr(Opcode.XOR))
    if (one, zero) == (-1, 0):
        return (Instr(Opcode.NEG),)
    if (one, zero) == (0, -1):
        return (Instr(Opcode.DEC),)
    if one == zero:
        return (Instr(Opcode.POP), Instr(Opcode.PUSH, (one,)))
    if one == zero + 1 and -(1 << 31) <= zero < (1 << 31):
        return (Instr(Opcode.PUSH, (zero,)), Instr(Opcode.ADD))
    return None


def _select_sites(program: Program, targets: set[int],
                  tops: list[tuple[int, int] | None]) -> Iterator[Site]:
    """Branch to branch-free: `JZ L; PUSH c1; T` with `L: PUSH c0; T`, where the value
    tested is a boolean b (0 or 1: a comparison, `x & 1`, ... by `analysis.top_intervals`) and the
    two paths go on the same way, -> `f; T` where f maps the boolean to c1 or c0 (nothing for 1/0, `PUSH 1; XOR` for 0/1, `NEG`, `DEC`, `PUSH c0;
    ADD` for c1 = c0 + 1). `JNZ` the other way round. The PUSH at L stays for whoever
    else jumps there (else it is unreachable and goes)."""
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if ins.op not in BRANCHES or i < 1 or i + 2 >= len(instrs):
            continue
        top = tops[i]
        if top is None or top[0] < 0 or top[1] > 1 or i in targets or i + 1 in targets:
            continue
        taken, fall = ins.args[0], instrs[i + 1]
        if not _is_push(fall) or not 0 <= taken < len(instrs) - 1 or taken in (i, i + 1):
            continue
        if not _is_push(instrs[taken]) or not _same_tail(program, i + 2, taken + 1):
            continue
        c_taken, c_fall = instrs[taken].args[0], fall.args[0]
        one, zero = (c_fall, c_taken) if ins.op is Opcode.JZ else (c_taken, c_fall)
        new = _from_boolean(one, zero)
        if new is not None:
            yield Site(i, 2, new)


def _nonneg_sites(program: Program, targets: set[int],
                  tops: list[tuple[int, int] | None]) -> Iterator[Site]:
    """Strength reduction guarded by a proof of non-negativity: `PUSH 2^k; DIV` ->
    `PUSH k; SHR` and `PUSH 2^k; MOD` -> `PUSH 2^k - 1; AND` where the interval analysis
    (`analysis.top_intervals`) shows the dividend is >= 0 on every path (for a negative dividend
    both would be wrong: DIV truncates toward zero, MOD takes its sign)."""
    instrs = program.instrs
    for i, ins in enumerate(instrs):
        if (ins.op is Opcode.PUSH and _power_of_two(ins.args[0]) and i + 1 < len(instrs)
                and instrs[i + 1].op in (Opcode.DIV, Opcode.MOD) and i + 1 not in targets):
            top = tops[i]
            if top is not None and top[0] >= 0:
                k = ins.args[0]
                yield (Site(i, 2, (Instr(Opcode.PUSH, (k.bit_length() - 1,)), Instr(Opcode.SHR)))
                       if instrs[i + 1].op is Opcode.DIV else
                       Site(i, 2, (Instr(Opcode.PUSH, (k - 1,)), Instr(Opcode.AND))))


def sites(program: Program, *, seed_table: bool = False) -> Iterator[Site]:
    """Every place a rule applies, in program order (`seed_table`: only the seed's
    table, without common subexpressions and dead stores)."""
    targets = jump_targets(program)
    instrs = program.instrs
    for index in range(len(instrs)):
        for width, rule in (SEED_RULES if seed_table else RULES):
            window = instrs[index:index + width]
            if len(window) < width or any(index < t < index + width for t in targets):
                continue
            new = rule(window, index)
            if new is not None and cost(new) < cost(window):
                yield Site(index, width, new)
    if seed_table:
        return
    yield from _cse_sites(program, targets)
    yield from _dead_store_sites(program)
    yield from _tail_sites(program)
    yield from _branch_sites(program, targets)
    yield from _thread_sites(program)
    tops = analysis.top_intervals(program, targets)
    yield from _select_sites(program, targets, tops)
    yield from _nonneg_sites(program, targets, tops)


def neutral_sites(program: Program) -> Iterator[Site]:
    """Sound rewrites that cost the same but open the way to cheaper ones:
    - forwarding: `P; STORE n ... LOAD n` (or `P; DUP; STORE n ... LOAD n`) with P a
      producer and one path between them becomes `... P` (the STORE may then be dead);
    - commuting: `P1; P2; op` with op commutative becomes `P2; P1; op`."""
    instrs = program.instrs
    targets = jump_targets(program)
    for index, ins in enumerate(instrs):
        if ins.op is Opcode.LOAD:
            source = _forwarded(program, index, ins.args[0])
            if source is not None:
                yield Site(index, 1, (source,))
        if (ins.op in COMMUTATIVE and index >= 2 and instrs[index - 1].op in PRODUCERS
                and instrs[index - 2].op in PRODUCERS and instrs[index - 1] != instrs[index - 2]
                and not any(index - 2 < t <= index for t in targets)):
            yield Site(index - 2, 2, (instrs[index - 1], instrs[index - 2]))


def _forwarded(program: Program, index: int, slot: int) -> Instr | None:
    """The producer whose value slot `slot` holds at `index`, if a single path leads
    back to `P; STORE slot` without another write to the slot or to P's own source."""
    preds = analysis.predecessors(program)
    at = index
    seen: set[int] = set()
    while True:
        before = preds.get(at, [])
        if len(before) != 1 or before[0] in seen:
            return None
        at = before[0]
        seen.add(at)
        ins = program.instrs[at]
        if ins.op in (Opcode.CALL, Opcode.RET, Opcode.DECAY):
            return None
        if ins.op is Opcode.STORE and ins.args[0] == slot:
            producer = preds.get(at, [])
            if len(producer) != 1:
                return None
            source = program.instrs[producer[0]]
            if source.op is Opcode.DUP:  # `P; DUP; STORE n` stores P's value too
                producer = preds.get(producer[0], [])
                if len(producer) != 1:
                    return None
                source = program.instrs[producer[0]]
            if source.op in (Opcode.SENSE, Opcode.PUSH, Opcode.PARAM):
                return source
            return None


def apply_site(program: Program, site: Site) -> Program:
    return program.replace(site.index, site.width, site.replacement)


def peephole(program: Program, *, limit: int = 1000,
             seed_table: bool = False) -> tuple[Program, int]:
    """Apply rules to a fixed point; returns the program and the rewrites made."""
    steps = 0
    while steps < limit:
        site = next(sites(program, seed_table=seed_table), None)
        if site is None:
            break
        program = apply_site(program, site)
        steps += 1
    return program, steps
