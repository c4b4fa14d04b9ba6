"""The gate that lets the first stage answer without the e5 transformer."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from ouroboros.capabilities.skills.retrieval.index import SURE_DEPTH, first_stage_settles


def _matches(counts: dict[int, int]) -> Callable[[int], int]:
    return lambda row: counts.get(row, 0)


def test_agreement_on_a_tool_that_shares_two_words_settles() -> None:
    assert first_stage_settles([7, 1, 2], [7, 3], _matches({7: 2}), 3)
    # BM25's best is further down the static side's list, within SURE_DEPTH
    assert first_stage_settles([1, 2, 7], [7, 3], _matches({7: 2}), 3)
    # the static side's best is in BM25's top SURE_DEPTH
    assert first_stage_settles([7, 1, 2], [3, 4, 7], _matches({7: 2, 3: 0}), 2)


def test_one_shared_word_of_several_does_not_settle() -> None:
    """The do-anything tool: both sides put it first on one stuffed word."""
    assert not first_stage_settles([7, 1], [7, 1], _matches({7: 1, 1: 1}), 3)


def test_a_one_word_query_settles_on_that_word() -> None:
    assert first_stage_settles([7, 1], [7], _matches({7: 1}), 1)


def test_disagreement_or_an_abstaining_side_never_settles() -> None:
    assert not first_stage_settles([1, 2, 3, 7], [7, 8, 9, 1], _matches({7: 5, 1: 5}), 5)
    assert not first_stage_settles([7], [], _matches({7: 5}), 0)  # BM25 abstained
    assert not first_stage_settles([], [7], _matches({7: 5}), 2)
    assert not first_stage_settles([7], [7], _matches({7: 5}), 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=8, unique=True),
       st.lists(st.integers(0, 30), max_size=8, unique=True),
       st.dictionaries(st.integers(0, 30), st.integers(0, 6)), st.integers(0, 6))
def test_settling_needs_a_shared_top_and_enough_words(dense: list[int], lexical: list[int],
                                                      counts: dict[int, int],
                                                      n_terms: int) -> None:
    settled = first_stage_settles(dense, lexical, _matches(counts), n_terms)
    if settled:
        need = min(2, n_terms)
        assert need >= 1
        chosen = [r for r in (lexical[0], dense[0])
                  if r in dense[:SURE_DEPTH] and r in lexical[:SURE_DEPTH]
                  and counts.get(r, 0) >= need]
        assert chosen, (dense, lexical, counts, n_terms)
