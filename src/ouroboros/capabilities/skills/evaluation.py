"""Retrieval quality metrics (recall@k, NDCG@k) and the labelled evaluation set format.

Labels are graded: 2 = the tool does what the query asks, 1 = a related tool a user might
accept. Recall@k counts only grade-2 tools (did we surface the right tool?); NDCG@k uses
every grade (is the ranking sensible?), with the usual 2^grade - 1 gain.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalTool:
    id: str
    name: str
    description: str
    input_fields: Sequence[str] = ()
    source: str = ""
    role: str = "target"  # or "distractor": no query is answered by it
    split: str = ""  # public set: "tune", "heldout" or "distractor"


@dataclass(frozen=True)
class EvalQuery:
    id: str
    query: str
    relevant: Mapping[str, int]
    source: str = ""
    split: str = ""


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Share of the grade-2 tools that appear in the first k results."""
    wanted = {t for t, g in relevant.items() if g >= 2} or {t for t, g in relevant.items() if g > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of the first k results (0..1)."""

    def gain(grade: int, position: int) -> float:
        return (2.0**grade - 1.0) / math.log2(position + 2)

    dcg = sum(gain(relevant.get(t, 0), i) for i, t in enumerate(ranked[:k]))
    ideal_grades = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(gain(g, i) for i, g in enumerate(ideal_grades))
    return dcg / idcg if idcg > 0 else 0.0


def load_tools(path: Path) -> list[EvalTool]:
    tools = [EvalTool(**json.loads(line)) for line in _lines(path)]
    ids = [t.id for t in tools]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate tool ids")
    return tools


def load_queries(path: Path, tool_ids: set[str] | None = None) -> list[EvalQuery]:
    queries = [EvalQuery(**json.loads(line)) for line in _lines(path)]
    for q in queries:
        if not q.relevant:
            raise ValueError(f"{path}: query {q.id} has no relevant tool")
        unknown = set(q.relevant) - tool_ids if tool_ids is not None else set()
        if unknown:
            raise ValueError(f"{path}: query {q.id} names unknown tools {sorted(unknown)}")
    return queries


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
