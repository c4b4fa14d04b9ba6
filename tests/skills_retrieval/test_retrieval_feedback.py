"""Learning from use: the tool that served a query is found first for similar queries, and
the memory can be neither read for the queries' text nor bent by floods or garbage."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ouroboros.capabilities.skills.retrieval import SkillIndex, ToolDocument, document_text
from ouroboros.capabilities.skills.retrieval import feedback as fb
from ouroboros.capabilities.skills.retrieval.feedback import (
    RECENT_FILE,
    USAGE_FILE,
    UsageMemory,
    credit_run,
    served_tools,
)

TOOLS = [
    ToolDocument("pdf_summary", "Summarise a PDF document given its link."),
    ToolDocument("web_summary", "Summarise the text of a web page."),
    ToolDocument("video_summary", "Summarise a YouTube video from its transcript."),
    ToolDocument("weather", "Daily weather forecast for a city."),
    ToolDocument("currency", "Convert an amount between currencies at today's rate."),
]


def make(root: Path) -> SkillIndex:
    index = SkillIndex(root)
    index.add_many([(d.name, f"sha256:{i:064x}", document_text(d))
                    for i, d in enumerate(TOOLS)])
    return index


def test_a_served_tool_rises_for_a_paraphrase(tmp_path: Path) -> None:
    index = make(tmp_path)
    query = "give me the gist of this lecture recording"
    before = [h.tool_id for h in index.search(query, k=5)]
    assert before[0] != "video_summary" or before.index("video_summary") == 0
    index.record_use("give me the gist of this lecture recording please", ["video_summary"])
    after = index.search(query, k=5)
    assert after[0].tool_id == "video_summary" and after[0].use_rank == 1
    assert make(tmp_path).search(query, k=1)[0].tool_id == "video_summary"  # persisted


def test_a_flood_of_uses_does_not_leak_into_unrelated_queries(tmp_path: Path) -> None:
    index = make(tmp_path)
    for _ in range(200):
        index.record_use("summarise this pdf for me", ["pdf_summary"])
    top = index.search("will it rain in Oslo tomorrow", k=1)[0]
    assert top.tool_id == "weather" and top.use_rank is None
    assert index.search("how many euros is 100 dollars", k=1)[0].tool_id == "currency"


def test_the_memory_holds_no_query_text(tmp_path: Path) -> None:
    index = make(tmp_path)
    secret = "summarise contract for Jane Doe, IBAN DE44500105175407324931"
    index.record_use(secret, ["pdf_summary"])
    raw = (tmp_path / USAGE_FILE).read_text()
    for word in ("Jane", "IBAN", "DE44500105175407324931", "contract"):
        assert word not in raw


def test_unknown_tools_and_empty_queries_are_not_recorded(tmp_path: Path) -> None:
    index = make(tmp_path)
    assert index.record_use("anything", ["not_a_tool"]) == 0
    assert index.record_use("   ", ["weather"]) == 0
    assert not (tmp_path / USAGE_FILE).exists()


def test_garbage_in_the_usage_file_is_skipped(tmp_path: Path) -> None:
    index = make(tmp_path)
    index.record_use("weather in paris", ["weather"])
    good = (tmp_path / USAGE_FILE).read_text()
    rec = json.loads(good)
    bad_lines = [
        "not json", "[1, 2]", json.dumps({**rec, "vec": "!!!"}),
        json.dumps({**rec, "vec": rec["vec"][:10]}),  # wrong dimension
        json.dumps({**rec, "vec": "AAAA" * 192}),  # all zeros: no direction
        json.dumps({**rec, "tool": 7}), json.dumps({**rec, "model": "other/model"}),
        "x" * (fb.MAX_LINE_BYTES + 10), "\xff\xfe garbage",
    ]
    with open(tmp_path / USAGE_FILE, "a", encoding="utf-8") as f:
        f.write("\n".join(bad_lines) + "\n")
    fresh = make(tmp_path)
    hits = fresh.search("weather in paris", k=5)
    assert hits[0].tool_id == "weather" and hits[0].use_rank == 1
    assert sum(h.use_rank is not None for h in hits) == 1


def test_usage_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fb, "MAX_USES", 40)
    index = make(tmp_path)
    for i in range(200):
        index.record_use(f"weather report number {i}", ["weather"])
    lines = (tmp_path / USAGE_FILE).read_text().splitlines()
    assert 40 <= len(lines) <= 50
    assert all(json.loads(ln)["tool"] == "weather" for ln in lines)


def _record_many(root: str, worker: int) -> None:
    index = SkillIndex(Path(root))
    for i in range(15):
        index.record_use(f"convert {i} dollars to yen, worker {worker}", ["currency"])


def test_concurrent_writers_never_tear_a_line(tmp_path: Path) -> None:
    make(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    lines = (tmp_path / USAGE_FILE).read_text().splitlines()
    assert len(lines) == 45
    assert all(json.loads(ln)["tool"] == "currency" for ln in lines)


def test_a_run_credits_the_search_that_listed_the_tool(tmp_path: Path) -> None:
    index = make(tmp_path)
    query = "what does this lecture video say"
    hits = index.search(query, k=3, remember=True)
    assert "video_summary" in [h.tool_id for h in hits]
    assert not credit_run(tmp_path, "weather_unlisted")
    assert credit_run(tmp_path, "video_summary")
    assert not credit_run(tmp_path, "video_summary")  # one search credits one run
    top = make(tmp_path).search(query, k=1)[0]
    assert top.tool_id == "video_summary" and top.use_rank == 1


def test_a_stale_search_credits_nothing(tmp_path: Path) -> None:
    index = make(tmp_path)
    index.search("summarise the pdf at this link", k=3, remember=True)
    later = time.time() + fb.RECENT_SECONDS + 5
    assert not UsageMemory(tmp_path).credit_run("pdf_summary", now=later)
    assert not (tmp_path / USAGE_FILE).exists()


def test_tampered_recent_searches_are_ignored(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / RECENT_FILE).write_text(
        "junk\n" + json.dumps({"tools": ["weather"], "t": "yesterday"}) + "\n"
        + json.dumps({"tools": "weather", "t": time.time()}) + "\n"
        + json.dumps({"tools": ["weather"], "t": time.time(), "model": 1, "key": "k",
                      "vec": "v"}) + "\n")
    assert not credit_run(tmp_path, "weather")
    assert not (tmp_path / USAGE_FILE).exists()


def test_served_tools_counts_only_successful_runs_of_answered_tasks() -> None:
    ok = SimpleNamespace(outcome="reused", ran=["a", "b!failed", "a", "c"])
    assert served_tools(ok) == ["a", "c"]
    for outcome in ("no_tool", "unsolved"):
        assert served_tools(SimpleNamespace(outcome=outcome, ran=["a"])) == []


def test_boost_needs_the_same_model(tmp_path: Path) -> None:
    memory = UsageMemory(tmp_path)
    v = np.ones(8, dtype=np.float32) / np.sqrt(8)
    memory.record("q", v, ["t"], "model/a")
    assert memory.boosts(v, "model/a", 8) == pytest.approx({"t": 1.1})
    assert memory.boosts(v, "model/b", 8) == {}


MB = 1 << 20


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_huge_recent_searches_file_is_read_a_line_at_a_time_and_purged(
        tmp_path: Path) -> None:
    """Every `ouro tool run` reads recent-searches.jsonl and every remembered search
    appends to it: 300 MiB of overlong lines (written sparsely) were read whole, twice."""
    index = make(tmp_path)
    query = "what does this lecture video say"
    index.search(query, k=3)  # the models are loaded before memory is measured
    path = tmp_path / RECENT_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(300):  # a hole of a MiB, then a newline
            os.lseek(fd, MB, os.SEEK_END)
            os.write(fd, b"\n")
    finally:
        os.close(fd)
    peak = _peak(lambda: index.search(query, k=3, remember=True))
    assert peak < 16 * MB, f"{peak / MB:.1f} MiB"
    assert path.stat().st_size < MB  # the overlong lines are gone, the search kept
    peak = _peak(lambda: credit_run(tmp_path, "video_summary") or pytest.fail("no credit"))
    assert peak < 16 * MB, f"{peak / MB:.1f} MiB"
    top = make(tmp_path).search(query, k=1)[0]
    assert top.tool_id == "video_summary" and top.use_rank == 1


def test_a_100_mb_usage_line_without_a_newline_neither_swallows_a_use_nor_is_held(
        tmp_path: Path) -> None:
    index = make(tmp_path)
    index.search("weather in paris", k=3)
    (tmp_path / USAGE_FILE).touch()
    os.truncate(tmp_path / USAGE_FILE, 100 * MB)  # NULs, no newline: a torn line
    peak = _peak(lambda: index.record_use("weather in paris", ["weather"]))
    assert peak < 16 * MB, f"{peak / MB:.1f} MiB"
    assert (tmp_path / USAGE_FILE).stat().st_size < MB
    hits = make(tmp_path).search("weather in paris", k=5)
    assert hits[0].tool_id == "weather" and hits[0].use_rank == 1
