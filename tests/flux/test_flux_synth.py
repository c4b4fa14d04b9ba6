"""Window synthesis (synth.py) and tail duplication: what they find, where they may not
look, and that a rewrite right only on the test contexts never becomes the answer."""

from __future__ import annotations

from fluxkit import cases_of, prog

from ouroboros.capabilities.flux import equivalence, synth
from ouroboros.capabilities.flux.fitness import score
from ouroboros.capabilities.flux.isa import Opcode
from ouroboros.capabilities.flux.program import jump_targets
from ouroboros.capabilities.flux.rewrites import peephole, sites
from ouroboros.capabilities.flux.search import SearchConfig, superoptimise

INPUTS = [(0,), (1,), (-1,), (7,), (-13,), (1000,), (123456,), (-42,)]
ABS = prog("SENSE 0;STORE 0;LOAD 0;PUSH 0;LT;JZ pos;PUSH 0;LOAD 0;SUB;ACT 0;HALT;"
           "pos: LOAD 0;ACT 0;HALT")


def test_a_window_is_rewritten_cheaper_using_what_its_context_holds() -> None:
    """`PUSH 0; LOAD 0; SUB` (5 cycles) where slot 0 holds input 0 is -x in 3 cycles."""
    cases = cases_of(ABS, INPUTS)
    tr = synth.trace(ABS, cases, fuel=10_000)
    assert (6, 3) in synth.windows(ABS, tr)
    found = synth.synthesise(ABS, 6, 3, tr.contexts[6])  # type: ignore[arg-type]
    assert found and synth.cycles(found[0]) == 3 < synth.cycles(ABS.instrs[6:9])
    better = ABS.replace(6, 3, found[0])
    assert score(better, cases).confidence == 1.0
    assert equivalence.check(ABS, better).status == "proved"


def test_windows_never_cover_loops_jump_targets_or_side_effects() -> None:
    loop = prog("SENSE 0;PUSH 3;STORE 0;l: DEC;LOAD 0;DEC;DUP;STORE 0;JNZ l;"
                "PUSH 2;MUL;ACT 0;HALT")
    cases = cases_of(loop, INPUTS)
    tr = synth.trace(loop, cases, fuel=10_000)
    spans = synth.windows(loop, tr)
    assert spans and not any(3 <= start < 9 for start, _ in spans)  # nothing in the loop
    assert not any(start + width > 2 and start < 3 for start, width in spans)  # no STORE
    for start, width in spans:
        body = loop.instrs[start:start + width]
        assert all(i.op in synth.WINDOW_OPS for i in body)
        assert not any(start < t < start + width for t in jump_targets(loop))
    # A window no test case reaches twice or more is the only kind with a context.
    assert tr.contexts.get(3) is None


def test_a_window_only_one_case_reaches_is_not_rewritten() -> None:
    """One context proves nothing: `PUSH <its value>` would always match it."""
    cases = cases_of(ABS, [(-5,), (4,), (9,)])  # one negative input: one context
    tr = synth.trace(ABS, cases, fuel=10_000)
    assert tr.contexts.get(6) is None and (6, 3) not in synth.windows(ABS, tr)


def test_a_rewrite_right_only_on_the_tests_is_caught_and_never_wins() -> None:
    """Every training case has x == y, so on their contexts `SENSE 1` is `DUP` (cheaper):
    synthesis proposes it, and the search must find the counterexample instead of
    returning it."""
    product = prog("SENSE 0;SENSE 1;MUL;PUSH 0;ADD;ACT 0;HALT")
    cases = cases_of(product, [(k, k) for k in (0, 1, -1, 7, -13, 1000)])
    tr = synth.trace(product, cases, fuel=10_000)
    overfit = synth.synthesise(product, 0, 2, tr.contexts[0])  # type: ignore[arg-type]
    assert overfit and Opcode.DUP in {i.op for i in overfit[0]}  # the attack is live
    tempting = product.replace(0, 2, overfit[0])
    assert score(tempting, cases).confidence == 1.0
    assert equivalence.check(product, tempting).counterexample is not None
    result = superoptimise(product, cases, config=SearchConfig(budget=1200), seed=3)
    assert result.counterexamples >= 1
    assert equivalence.check(product, result.best).status == "proved"
    assert score(result.best, cases).cycles_per_result < score(product, cases).cycles_per_result


def test_synthesis_cost_is_charged_the_same_whether_or_not_it_was_memoised() -> None:
    cases = cases_of(ABS, INPUTS)
    tr = synth.trace(ABS, cases, fuel=10_000)
    ctx = tr.contexts[6]
    assert ctx is not None
    synth._CACHE.clear()
    first = synth.synthesise_counted(ABS, 6, 3, ctx, max_states=200)
    again = synth.synthesise_counted(ABS, 6, 3, ctx, max_states=200)
    assert first == again and first[1] > 0


def test_tail_duplication_copies_a_short_exit_block_over_its_jump() -> None:
    p = prog("SENSE 0;PUSH 100;LT;JNZ small;PUSH 100;JMP out;small: SENSE 0;"
             "out: ACT 0;HALT")
    assert any(s.replacement and s.replacement[-1].op is Opcode.HALT for s in sites(p))
    better, _ = peephole(p)
    assert Opcode.JMP not in {i.op for i in better.instrs}
    cases = cases_of(p, [(5,), (500,)])
    assert score(better, cases).cycles_per_result < score(p, cases).cycles_per_result
    assert equivalence.check(p, better).status == "proved"
    # A block that jumps on is not copied (only straight code ending in HALT).
    loop = prog("SENSE 0;JMP l;l: DEC;DUP;JNZ l;HALT")
    assert all(s.replacement[-1:] != (loop.instrs[-1],) or len(s.replacement) != 4
               for s in sites(loop))
