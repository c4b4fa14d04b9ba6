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
from typing import Any, TypeVar

from ouroboros.storage.files import UnsafeFile, read_text_file

#: The most of an evaluation set read (the public set's largest file is about 1 MB).
MAX_EVAL_FILE = 256 << 20


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
    tools = [_make(EvalTool, path, n, row) for n, row in _rows(path)]
    ids = [t.id for t in tools]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate tool ids")
    return tools


def load_queries(path: Path, tool_ids: set[str] | None = None) -> list[EvalQuery]:
    queries = [_make(EvalQuery, path, n, row) for n, row in _rows(path)]
    for q in queries:
        if not q.relevant:
            raise ValueError(f"{path}: query {q.id} has no relevant tool")
        unknown = set(q.relevant) - tool_ids if tool_ids is not None else set()
        if unknown:
            raise ValueError(f"{path}: query {q.id} names unknown tools {sorted(unknown)}")
    return queries


_Row = TypeVar("_Row", EvalTool, EvalQuery)


def _make(kind: type[_Row], path: Path, number: int, row: dict[str, Any]) -> _Row:
    try:
        return kind(**row)
    except TypeError as e:  # a missing or unknown field
        raise ValueError(f"{path}: line {number} is not a {kind.__name__}: {e}") from None


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSON-lines file with their line numbers; anything else is a `ValueError`
    naming the file (and the line).

    An evaluation set is data the user supplies, not a file of the runtime's: a link is
    read through (a set kept in a data folder, git-annex or a checkout of another repo),
    but only to a regular file of at most `MAX_EVAL_FILE` bytes, so a FIFO or device
    behind the name never blocks the run or fills its memory."""
    try:
        text = read_text_file(path, MAX_EVAL_FILE, follow_links=True)
    except UnsafeFile as e:  # a FIFO, device, folder, too large, not UTF-8: it names it
        raise ValueError(str(e)) from None
    except OSError as e:  # a dangling link, a folder we may not read
        raise ValueError(f"{path}: {e.strerror or e}") from None
    if text is None:
        raise ValueError(f"{path}: no such file")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"{path}: line {number} is not JSON ({type(e).__name__})") \
                from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        rows.append((number, row))
    return rows
