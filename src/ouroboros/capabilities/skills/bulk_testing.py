"""Testing many tools at once on any executor: a process pool, or Ray.

Each tool's cases (hidden ones too) are cut into batches of at most `CASES_PER_BATCH`;
every batch carries its checked module, source and limits (`testing.TestBatch`), so a
worker judges it in a sandbox of its own, under exactly the limits a call here gets.
The reports come back in the order of the tools asked for, each tool's cases in their
order, whatever ran where. The executor is anything with `map(fn, items)` (see
`capabilities/evolve/executor.py`); this module does not import one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .store import SkillStore
from .testing import CaseResult, TestBatch, TestReport, run_batch

CASES_PER_BATCH = 16  # a case costs ~1-50 ms; a batch must outweigh one message to a worker


class Mapper(Protocol):
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]: ...


def test_tools(store: SkillStore, tool_ids: Sequence[str], executor: Mapper, *,
               fingerprint: str | None = None,
               per_batch: int = CASES_PER_BATCH) -> list[TestReport]:
    """Re-run every case of each tool's current version (or, for one tool, the version
    `fingerprint`); one report per tool, in order.

    Raises:
        ToolNotFound, ToolCorrupt: before anything runs (every version is checked first).
    """
    owners: list[int] = []
    batches: list[TestBatch] = []
    if fingerprint is not None and len(tool_ids) != 1:
        raise ValueError("a fingerprint names the version of exactly one tool")
    heads = [store.test_batch(tool_id, fingerprint) for tool_id in tool_ids]
    for n, whole in enumerate(heads):
        for batch in whole.split(per_batch):
            owners.append(n)
            batches.append(batch)
    results: list[list[CaseResult]] = [[] for _ in heads]
    for n, part in zip(owners, executor.map(run_batch, batches), strict=True):
        results[n].extend(part)
    return [TestReport(h.tool_id, h.fingerprint, r) for h, r in zip(heads, results, strict=True)]
