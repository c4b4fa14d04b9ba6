from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ouroboros.capabilities.skills.evaluation import (
    load_queries,
    load_tools,
    ndcg_at_k,
    recall_at_k,
)

DATA = Path(__file__).resolve().parents[2] / "bench" / "data"


def test_perfect_ranking_scores_one() -> None:
    rel = {"a": 2, "b": 1}
    assert recall_at_k(["a", "b", "c"], rel, 5) == 1.0
    assert ndcg_at_k(["a", "b", "c"], rel, 10) == 1.0


def test_recall_counts_only_primary_tools() -> None:
    assert recall_at_k(["b"], {"a": 2, "b": 1}, 5) == 0.0
    assert recall_at_k(["x", "y", "z", "w", "v", "a"], {"a": 2}, 5) == 0.0


def test_swapping_grades_lowers_ndcg() -> None:
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) < 1.0


@given(st.permutations(["a", "b", "c", "d", "e", "f"]))
def test_metrics_stay_in_unit_interval(ranked: list[str]) -> None:
    rel = {"a": 2, "c": 1, "f": 2}
    assert 0.0 <= ndcg_at_k(ranked, rel, 10) <= 1.0
    assert 0.0 <= recall_at_k(ranked, rel, 5) <= 1.0


def test_shipped_eval_set_is_large_enough_and_consistent() -> None:
    tools = load_tools(DATA / "skills_tools.jsonl")
    queries = load_queries(DATA / "skills_queries.jsonl", {t.id for t in tools})
    assert len(tools) >= 100
    assert len(queries) >= 200
    assert {t for q in queries for t in q.relevant} == {t.id for t in tools}
