"""Skill retrieval benchmark: quality (recall@5, NDCG@10) and search latency.

Quality: the labelled set in bench/data (120 tools written from public API/tool catalogue
descriptions, 240 queries with graded labels), for BM25 alone, dense alone and fused (RRF).

Latency: top-5 search after the query is embedded, at 1k / 10k / 100k tools. The extra tools
are synthetic (their vectors are perturbed copies of real tool vectors, their texts random
mixes of catalogue words), since embedding 100k descriptions would take over an hour here;
search cost depends on the matrix and vocabulary sizes, not on what the rows mean.

    python bench/skills_retrieval.py [--quick] [--out FILE]

The dense stage is one matrix-vector product, memory-bound: BLAS threads only add
synchronisation on a shared 2-core machine, so the benchmark pins BLAS to one thread
(as a serving process would) unless OPENBLAS_NUM_THREADS is already set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ouroboros.capabilities.skills.embedding import default_embedder, normalise
from ouroboros.capabilities.skills.evaluation import (
    load_queries,
    load_tools,
    ndcg_at_k,
    recall_at_k,
)
from ouroboros.capabilities.skills.retrieval import MODES, SkillIndex, tokenize, tool_text

DATA = Path(__file__).parent / "data"


def quality(index: SkillIndex, queries: list[Any], qvecs: np.ndarray[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        recalls, ndcgs, misses = [], [], []
        for q, v in zip(queries, qvecs, strict=True):
            ranked = [h.tool_id for h in index.search_prepared(v, tokenize([q.query])[0], 10, mode)]
            recalls.append(recall_at_k(ranked, q.relevant, 5))
            ndcgs.append(ndcg_at_k(ranked, q.relevant, 10))
            if recalls[-1] < 1.0:
                misses.append({"query": q.query, "relevant": dict(q.relevant), "got": ranked[:5]})
        out[mode] = {
            "recall@5": round(statistics.fmean(recalls), 4),
            "ndcg@10": round(statistics.fmean(ndcgs), 4),
            "misses": misses,
        }
    return out


def synthetic_index(
    root: Path, base: SkillIndex, n: int, rng: random.Random
) -> SkillIndex:
    idx = SkillIndex(root, embedder=base.embedder)
    real = base.entries()
    vectors = np.stack([base.vector(e.tool_id) for e in real])
    vocab = sorted({w for e in real for w in e.text.lower().replace(":", " ").split()})
    items = [(e.tool_id, e.fingerprint, e.text) for e in real]
    nprng = np.random.default_rng(rng.randrange(2**32))
    extra = n - len(items)
    picks = nprng.integers(0, len(real), size=extra)
    noise = nprng.normal(0.0, 0.02, size=(extra, vectors.shape[1])).astype(np.float32)
    mats = [vectors, normalise(vectors[picks] + noise)]
    for i in range(extra):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 20)))
        items.append((f"synthetic_{i}", f"sha256:{i:064x}", text))
    idx.add_vectors(items, np.concatenate(mats), base.embedder.model_id)
    return idx


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def latency(index: SkillIndex, queries: list[Any], qvecs: np.ndarray[Any, Any], rounds: int
            ) -> dict[str, Any]:
    toks = [tokenize([q.query])[0] for q in queries]
    t0 = time.perf_counter()
    index.search_prepared(qvecs[0], toks[0], 5, "fused")  # builds the BM25 view
    build_ms = (time.perf_counter() - t0) * 1000
    out: dict[str, Any] = {"tools": len(index), "first_search_ms": round(build_ms, 1)}
    for mode in MODES:
        times = []
        for _ in range(rounds):
            for v, t in zip(qvecs, toks, strict=True):
                s = time.perf_counter()
                index.search_prepared(v, t, 5, mode)
                times.append((time.perf_counter() - s) * 1000)
        out[mode] = {"p50_ms": round(percentile(times, 50), 3),
                     "p95_ms": round(percentile(times, 95), 3)}
    # one more tool, then the first search: BM25 statistics are rebuilt from cached tokens
    base = index.entries()[0]
    index.add_vectors([("late_addition", "sha256:" + "e" * 64, "late addition: " + base.text)],
                      index.vector(base.tool_id)[None, :], base.model_id)
    t0 = time.perf_counter()
    index.search_prepared(qvecs[0], toks[0], 5, "fused")
    out["search_after_add_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1k and 10k only, fewer rounds")
    ap.add_argument("--out", type=Path, default=Path("bench/results/skills_retrieval.json"))
    args = ap.parse_args()

    tools = load_tools(DATA / "skills_tools.jsonl")
    queries = load_queries(DATA / "skills_queries.jsonl", {t.id for t in tools})
    emb = default_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        index = SkillIndex(Path(tmp) / "eval", emb)
        t0 = time.perf_counter()
        index.add_many([(t.id, f"sha256:{i:064x}", tool_text(t.name, t.description))
                        for i, t in enumerate(tools)])
        index_s = time.perf_counter() - t0
        qtimes = []
        qvecs_l = []
        for q in queries:
            s = time.perf_counter()
            qvecs_l.append(emb.embed_query(q.query))
            qtimes.append((time.perf_counter() - s) * 1000)
        qvecs = np.stack(qvecs_l)
        result: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "cpu": _cpu(), "python": platform.python_version(),
                        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")},
            "model_id": emb.model_id,
            "eval_set": {"tools": len(tools), "queries": len(queries)},
            "embed": {"index_tools_s": round(index_s, 2),
                      "query_p50_ms": round(percentile(qtimes, 50), 1),
                      "query_p95_ms": round(percentile(qtimes, 95), 1)},
            "quality": quality(index, queries, qvecs),
        }
        # incremental add: one new tool into the eval index (embedding + append + fsync)
        s = time.perf_counter()
        index.add("incremental_probe", "sha256:" + "f" * 64, "probe: a tool added on its own")
        result["embed"]["add_one_tool_ms"] = round((time.perf_counter() - s) * 1000, 1)

        rng = random.Random(7)
        sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
        rounds = 1 if args.quick else 3
        result["latency"] = []
        for n in sizes:
            big = synthetic_index(Path(tmp) / f"n{n}", index, n, rng)
            result["latency"].append(latency(big, queries, qvecs, rounds))
            del big
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _print(r: dict[str, Any]) -> None:
    print(f"model {r['model_id']}  ({r['eval_set']['tools']} tools, "
          f"{r['eval_set']['queries']} queries)")
    print(f"query embedding p50 {r['embed']['query_p50_ms']} ms, "
          f"p95 {r['embed']['query_p95_ms']} ms; add one tool {r['embed']['add_one_tool_ms']} ms")
    print(f"\n{'retriever':<10} {'recall@5':>9} {'NDCG@10':>9}")
    for mode in ("bm25", "dense", "fused"):
        q = r["quality"][mode]
        print(f"{mode:<10} {q['recall@5']:>9.3f} {q['ndcg@10']:>9.3f}")
    print(f"\n{'tools':>8} {'mode':<6} {'p50 ms':>8} {'p95 ms':>8}")
    for row in r["latency"]:
        for mode in ("bm25", "dense", "fused"):
            print(f"{row['tools']:>8} {mode:<6} {row[mode]['p50_ms']:>8.3f} "
                  f"{row[mode]['p95_ms']:>8.3f}")


if __name__ == "__main__":
    main()
