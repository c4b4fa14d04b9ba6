"""The ANN first stage: it ranks by the same score as brute force (cosine minus hub
penalty), takes over at the threshold, survives a restart without a rebuild, follows
appends and supersessions incrementally, and rebuilds from anything it cannot trust."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from ouroboros.capabilities.skills.retrieval import SkillIndex, tool_text
from ouroboros.capabilities.skills.retrieval import ann as ann_mod
from ouroboros.capabilities.skills.retrieval.ann import (
    ANN_THRESHOLD,
    AnnIndex,
    BruteForce,
    ann_threshold,
)

VERBS = ["convert", "parse", "count", "hash", "sort", "validate", "compress", "translate",
         "summarise", "extract", "format", "merge"]
THINGS = ["csv rows", "json documents", "dates", "temperatures", "email addresses", "invoices",
          "log lines", "markdown tables", "phone numbers", "currency amounts", "urls",
          "timestamps", "xml files", "street addresses", "song lyrics", "recipes"]
HOW = ["quickly", "for a spreadsheet", "into a report", "with validation", "for an api",
       "in bulk"]


def library() -> list[tuple[str, str, str]]:
    rows = []
    for n, (v, t, h) in enumerate(itertools.product(VERBS, THINGS, HOW)):
        name = f"{v}_{t.replace(' ', '_')}_{n}"
        rows.append((name, f"sha256:{n:064x}", tool_text(name, f"{v.title()} {t} {h}.")))
    return rows


QUERIES = [f"please {v} my {t}" for v, t in itertools.product(VERBS[:6], THINGS[:6])]


def recall_at(k: int, exact: list[list[str]], approx: list[list[str]]) -> float:
    return float(np.mean([len(set(a[:k]) & set(e[:k])) / k
                          for a, e in zip(approx, exact, strict=True)]))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    SkillIndex(root, reranker=False).add_many(library())
    return root


def test_the_switch_follows_the_threshold(built: Path) -> None:
    n = len(library())
    assert isinstance(SkillIndex(built, reranker=False, ann_threshold=n + 1).dense_index(),
                      BruteForce)
    assert isinstance(SkillIndex(built, reranker=False, ann_threshold=n).dense_index(), AnnIndex)
    assert (built / "ann" / "index.usearch").is_file()


def test_ann_recall_at_10_against_brute_force(built: Path) -> None:
    exact = SkillIndex(built, reranker=False, ann_threshold=10**9)
    approx = SkillIndex(built, reranker=False, ann_threshold=1)
    e = [[h.tool_id for h in exact.search(q, k=10, mode="dense")] for q in QUERIES]
    a = [[h.tool_id for h in approx.search(q, k=10, mode="dense")] for q in QUERIES]
    assert recall_at(10, e, a) >= 0.95
    assert [x[0] for x in a] == [x[0] for x in e] or recall_at(1, e, a) >= 0.95
    # the whole pipeline on top of it answers the same, top hit for top hit
    full_e = [exact.search(q, k=3)[0].tool_id for q in QUERIES]
    full_a = [approx.search(q, k=3)[0].tool_id for q in QUERIES]
    assert sum(x == y for x, y in zip(full_e, full_a, strict=True)) >= 0.95 * len(QUERIES)


def test_the_penalty_is_part_of_the_ann_score() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((400, 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    penalty = np.zeros(400, dtype=np.float32)
    penalty[7] = 5.0  # a hub: its cosine to anything loses 5 points
    ann = AnnIndex.build(range(400), matrix, penalty)
    assert 7 not in ann.top(matrix[7], 10)  # not even for its own vector
    assert ann.top(matrix[8], 1) == [8]
    assert BruteForce(matrix, penalty).top(matrix[7], 10) == ann.top(matrix[7], 10)


def test_a_restart_loads_the_index_and_an_append_is_incremental(
        built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lib"
    SkillIndex(root, reranker=False).add_many(library())
    SkillIndex(root, reranker=False, ann_threshold=1).dense_index()  # the one build

    def no_rebuild(*args: object, **kwargs: object) -> AnnIndex:
        raise AssertionError("the saved index should have been reused")

    monkeypatch.setattr(AnnIndex, "build", classmethod(no_rebuild))
    index = SkillIndex(root, reranker=False, ann_threshold=1)
    assert isinstance(index.dense_index(), AnnIndex)
    first = library()[0]
    index.add_many([("geo_distance", "sha256:" + "f" * 64,
                     tool_text("geo_distance", "Great-circle distance between two cities."))])
    index.add_many([(first[0], "sha256:" + "e" * 64,
                     tool_text(first[0], "Render a chess board as ascii art."))])  # supersedes
    dense = index.dense_index()
    assert isinstance(dense, AnnIndex) and len(dense.keys) == len(library()) + 1
    assert len(dense.index) == len(library()) + 1  # the superseded row left the graph
    exact = SkillIndex(root, reranker=False, ann_threshold=10**9)
    for query in ("great-circle distance between two cities", "render a chess board as ascii"):
        want = [h.tool_id for h in exact.search(query, k=5, mode="dense")]
        got = [h.tool_id for h in index.search(query, k=5, mode="dense")]
        assert got[0] == want[0] and len(set(got) & set(want)) >= 4
    assert "geo_distance" in [h.tool_id for h in index.search("great-circle distance between "
                                                              "two cities", k=3, mode="dense")]


@pytest.mark.parametrize("damage", ["garbage index", "keys of another index", "other model",
                                    "truncated index", "manifest is not json"])
def test_an_index_it_cannot_trust_is_rebuilt(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "lib"
    SkillIndex(root, reranker=False).add_many(library())
    exact = [h.tool_id for h in SkillIndex(root, reranker=False, ann_threshold=10**9)
             .search(QUERIES[3], k=5, mode="dense")]
    SkillIndex(root, reranker=False, ann_threshold=1).dense_index()
    files = root / "ann"
    if damage == "garbage index":
        (files / "index.usearch").write_bytes(b"\x00not an index" * 100)
    elif damage == "keys of another index":
        np.save(files / "keys.npy", np.arange(len(library()), dtype=np.uint64))
    elif damage == "other model":
        manifest = json.loads((files / "manifest.json").read_text())
        (files / "manifest.json").write_text(json.dumps({**manifest, "tag": "x" * 32}))
    elif damage == "truncated index":
        data = (files / "index.usearch").read_bytes()
        (files / "index.usearch").write_bytes(data[: len(data) // 3])
    else:
        (files / "manifest.json").write_text("{not json")
    index = SkillIndex(root, reranker=False, ann_threshold=1)
    got = [h.tool_id for h in index.search(QUERIES[3], k=5, mode="dense")]
    assert len(set(got) & set(exact)) >= 4
    assert json.loads((files / "manifest.json").read_text())["count"] == len(library())


def test_the_threshold_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ann_mod.THRESHOLD_ENV, raising=False)
    assert ann_threshold() == ANN_THRESHOLD == 50_000
    assert ann_threshold(123) == 123
    monkeypatch.setenv(ann_mod.THRESHOLD_ENV, "2000")
    assert ann_threshold() == 2000
    for bad in ("lots", "", "1e9", "-5"):
        monkeypatch.setenv(ann_mod.THRESHOLD_ENV, bad)
        assert ann_threshold() in (ANN_THRESHOLD, 1)
