"""The dense first stage at scale: brute force vs the ANN index (retrieval/ann.py) on
synthetic 384-d vectors, 10k / 100k / 1M rows.

Run: `.venv/bin/python bench/skills_retrieval_scale.py [--sizes 10000,100000,1000000]`;
prints a table and writes bench/results/skills_retrieval_scale.json.

The vectors imitate sentence embeddings: clustered points in a 24-dimensional latent space
projected to 384 dimensions plus noise, L2-normalised (uniform random 384-d vectors have no
neighbourhood structure and no index finds their neighbours; real embeddings do). Each row
has a hub penalty in [0, 0.2). Queries are 200 rows perturbed by noise. Recall@10 is the
share of the exact top 10 (cosine minus penalty) that the ANN index returns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ouroboros.capabilities.skills.retrieval.ann import AnnIndex, BruteForce

DIM = 384
QUERIES = 200


def vectors(n: int, seed: int = 0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    latent = 24
    proj = rng.standard_normal((latent, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    centers = rng.standard_normal((max(1, n // 50), latent)).astype(np.float32)
    for lo in range(0, n, 100_000):  # in slices: 1M rows never need two copies at once
        hi = min(n, lo + 100_000)
        z = centers[rng.integers(0, len(centers), hi - lo)] + \
            0.5 * rng.standard_normal((hi - lo, latent)).astype(np.float32)
        block = z @ proj + 0.5 * rng.standard_normal((hi - lo, DIM)).astype(np.float32)
        out[lo:hi] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(fn: Any, queries: np.ndarray[Any, Any]) -> tuple[list[list[int]], float]:
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(fn(q, 10))
        times.append(time.perf_counter() - start)
    return found, statistics.median(times)


def measure(n: int) -> dict[str, object]:
    matrix = vectors(n)
    rng = np.random.default_rng(1)
    penalty = (0.2 * rng.random(n)).astype(np.float32)
    queries = matrix[rng.integers(0, n, QUERIES)] + \
        0.05 * rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    brute = BruteForce(matrix, penalty)
    exact, brute_p50 = timed(brute.top, queries)
    start = time.perf_counter()
    ann = AnnIndex.build(range(n), matrix, penalty)
    build = time.perf_counter() - start
    approx, ann_p50 = timed(ann.top, queries)
    recall = statistics.mean(len(set(a) & set(e)) / 10 for a, e in zip(approx, exact,
                                                                         strict=True))
    return {"rows": n, "brute_p50_ms": round(brute_p50 * 1e3, 3),
            "brute_memory_mb": round((matrix.nbytes + penalty.nbytes) / 2**20, 1),
            "ann_build_s": round(build, 1), "ann_p50_ms": round(ann_p50 * 1e3, 3),
            "ann_recall_at_10": round(recall, 4),
            "ann_memory_mb": round(int(ann.index.memory_usage) / 2**20, 1),
            "speedup": round(brute_p50 / ann_p50, 1),
            "load_average": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "nproc": os.cpu_count(), "dim": DIM, "queries": QUERIES,
                               "rows": []}
    out = Path(__file__).parent / "results" / "skills_retrieval_scale.json"
    out.parent.mkdir(exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        row = measure(n)
        results["rows"].append(row)
        print(json.dumps(row), flush=True)
        out.write_text(json.dumps(results, indent=2))  # a long 1M run keeps what it has
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
