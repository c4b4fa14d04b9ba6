"""Skill retrieval benchmark: quality on public catalogues, latency, and indexing speed.

Quality (recall@1, recall@5, NDCG@10) of BM25, dense, fused (plain RRF) and the full
pipeline, next to the old pipeline (e5-small dense + BM25 over name and description, RRF),
on:
- the public set (bench/data/public: MetaTool + BFCL, split by tool, see PROVENANCE.md),
  its held-back half and its tuning half, each alone and with distractors (every other
  tool of the set: the other half, plus 819 tools no query is about);
- with the held-back half, the fresh held-back sample (queries_fresh.jsonl: 850 MetaTool
  queries never used before, of the held-back tools; PROVENANCE.md), alone and with
  distractors;
- the project's own set (bench/data/skills_*.jsonl, 120 tools, 240 queries).

Learning from use, on the held-back half: half of each tool's queries are recorded as
served by that tool, the other half are measured with and without that memory.

Latency: end-to-end search (query embedding included, query cache cleared) at 10k tools,
new pipeline and old pipeline in the same run; indexing time of the public catalogue.

    python bench/skills_retrieval.py [--split heldout|tune|all] [--out FILE]

Tuning uses `--split tune` only; the held-back half is read when it is asked for.
The dense product and BLAS are pinned to one thread, as a serving process on a shared
2-core machine would run.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ouroboros.capabilities.skills.embedding import E5Embedder, Matrix, default_embedder
from ouroboros.capabilities.skills.evaluation import (
    EvalQuery,
    EvalTool,
    load_queries,
    load_tools,
    ndcg_at_k,
    recall_at_k,
)
from ouroboros.capabilities.skills.retrieval import (
    MODES,
    FusionWeights,
    Mode,
    SkillIndex,
    ToolDocument,
    document_text,
)
from ouroboros.capabilities.skills.retrieval.documents import display_line
from ouroboros.capabilities.skills.retrieval.minilm import default_minilm
from ouroboros.capabilities.skills.retrieval.rerank import Reranker
from ouroboros.capabilities.skills.retrieval.static import default_static_embedder

DATA = Path(__file__).parent / "data"
PUBLIC = DATA / "public"


def old_text(t: EvalTool) -> str:
    """What the old pipeline indexed: the name as words and the description."""
    words = t.name.replace("_", " ").replace("-", " ").replace(".", " ")
    return f"{words}: {t.description.strip()}"


def new_text(t: EvalTool) -> str:
    return document_text(ToolDocument(t.name, t.description, tuple(t.input_fields)))


class CachedE5:
    """The e5 model with an optional on-disk memo of its vectors (for repeated dev runs)."""

    def __init__(self, model: E5Embedder, cache: Path | None) -> None:
        self.model, self.model_id, self.dim = model, model.model_id, model.dim
        self._path = cache / "e5-vectors.npz" if cache else None
        self._memo: dict[str, Matrix] = {}
        if self._path is not None and self._path.exists():
            with np.load(self._path) as data:
                self._memo = {k: data[k] for k in data.files}

    def _key(self, kind: str, text: str) -> str:
        import hashlib

        return hashlib.sha256(f"{self.model_id}\0{kind}\0{text}".encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> Matrix:
        keys = [self._key("p", t) for t in texts]
        todo = [t for t, k in zip(texts, keys, strict=True) if k not in self._memo]
        if todo:
            for t, v in zip(todo, self.model.embed_documents(todo), strict=True):
                self._memo[self._key("p", t)] = v
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memo[k] for k in keys]).astype(np.float32)

    def embed_query(self, text: str) -> Matrix:
        k = self._key("q", text)
        if k not in self._memo:
            self._memo[k] = self.model.embed_query(text)
        return self._memo[k]

    def save(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._path, "wb") as f:
                np.savez(f, **self._memo)  # type: ignore[arg-type]


def percentile(values: Sequence[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- quality -----------------------------------------------------------------------------
def measure(index: SkillIndex, queries: Sequence[EvalQuery], qvecs: dict[str, Matrix],
            modes: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        r1: list[float] = []
        r5: list[float] = []
        nd: list[float] = []
        by_source: dict[str, list[float]] = {}
        for q in queries:
            vec = qvecs.get(q.query) if mode != "bm25" else None
            hits = index.search_prepared(vec, q.query, 10, mode)  # type: ignore[arg-type]
            ranked = [h.tool_id for h in hits]
            r1.append(recall_at_k(ranked, q.relevant, 1))
            r5.append(recall_at_k(ranked, q.relevant, 5))
            nd.append(ndcg_at_k(ranked, q.relevant, 10))
            by_source.setdefault(q.source or "own", []).append(r5[-1])
        out[mode] = {"recall@1": round(statistics.fmean(r1), 4),
                     "recall@5": round(statistics.fmean(r5), 4),
                     "ndcg@10": round(statistics.fmean(nd), 4),
                     "recall@5_by_source": {s: round(statistics.fmean(v), 4)
                                            for s, v in sorted(by_source.items())}}
    return out


# the pipeline before the semantic stage (commit f1062fc): no MiniLM, e5 weighted 0.12
BEFORE_MINILM = FusionWeights(rerank=0.12, semantic=0.0, semantic_rescore=0.0)


def build(root: Path, tools: Sequence[EvalTool], text: Callable[[EvalTool], str],
          embedder: Any, vectors: dict[str, Matrix] | None = None, rerank: Any = None,
          semantic: bool | None = None, weights: FusionWeights = FusionWeights()
          ) -> SkillIndex:
    """An index of `tools`; `rerank` (an e5 model) turns on the second stage and, unless
    `semantic=False`, the MiniLM stage too (the product's default)."""
    index = SkillIndex(root, embedder, reranker=Reranker(root / "rerank", rerank)
                       if rerank is not None else False, semantic=semantic, weights=weights)
    items = [(t.id, f"sha256:{i:064x}", text(t)) for i, t in enumerate(tools)]
    if vectors is None:
        index.add_many(items)
    else:
        index.add_vectors(items, np.stack([vectors[t.id] for t in tools]), embedder.model_id)
    return index


def catalogues(tools: list[EvalTool], queries: list[EvalQuery], half: str
               ) -> dict[str, tuple[list[EvalTool], list[EvalQuery]]]:
    qs = [q for q in queries if q.split == half]
    own = [t for t in tools if t.split == half]
    return {f"{half}": (own, qs), f"{half}+distractors": (tools, qs)}


def quality(tmp: Path, tools: list[EvalTool], queries: list[EvalQuery], halves: list[str],
            own_tools: list[EvalTool], own_queries: list[EvalQuery], e5: CachedE5,
            fresh: list[EvalQuery]) -> dict[str, Any]:
    static = default_static_embedder()
    all_queries = [q for q in queries if q.split in halves] + own_queries + fresh
    result: dict[str, Any] = {"load_at_start": load()}

    # old pipeline: e5 over name + description (also the indexing baseline)
    t0 = time.perf_counter()
    e5_docs = e5.embed_documents([old_text(t) for t in tools + own_tools])
    e5_index_s = time.perf_counter() - t0
    e5_vecs = {t.id: e5_docs[i] for i, t in enumerate(tools + own_tools)}
    t0 = time.perf_counter()
    e5_q = {q.query: e5.embed_query(q.query) for q in all_queries}
    e5_query_ms = (time.perf_counter() - t0) * 1000 / max(1, len(all_queries))
    static_q = {q.query: static.embed_query(q.query) for q in all_queries}
    result["embedding"] = {
        "old_e5_index_tools": len(e5_docs), "old_e5_index_s": round(e5_index_s, 2),
        "old_e5_query_mean_ms": round(e5_query_ms, 2), "load": load()}

    sets = {}
    for half in halves:
        sets.update(catalogues(tools, queries, half))
    if fresh:  # the second held-back sample: same held-back catalogue, unused queries
        sets["fresh"] = ([t for t in tools if t.split == "heldout"], fresh)
        sets["fresh+distractors"] = (tools, fresh)
    sets["own"] = (own_tools, own_queries)
    for name, (cat_tools, cat_queries) in sets.items():
        old = build(tmp / f"old-{name}", cat_tools, old_text, e5, e5_vecs)
        new = build(tmp / f"new-{name}", cat_tools, new_text, static, rerank=e5)
        # the pipeline before the MiniLM stage, measured in the same run
        before = build(tmp / f"before-{name}", cat_tools, new_text, static, rerank=e5,
                       semantic=False, weights=BEFORE_MINILM)
        result[name] = {
            "tools": len(cat_tools), "queries": len(cat_queries),
            "old": measure(old, cat_queries, e5_q, ("bm25", "dense", "fused")),
            "before_minilm": measure(before, cat_queries, static_q, ("full",)),
            "new": measure(new, cat_queries, static_q, MODES),
        }
        _print_quality(name, result[name])
    if "heldout" in halves:
        result["use"] = learning_from_use(tmp, tools, queries, static)
    return result


def learning_from_use(tmp: Path, tools: list[EvalTool], queries: list[EvalQuery],
                      static: Any) -> dict[str, Any]:
    """Half of each held-back tool's queries served by it; the other half measured."""
    own = [t for t in tools if t.split == "heldout"]
    qs = sorted((q for q in queries if q.split == "heldout"), key=lambda q: q.id)
    seen: dict[str, int] = {}
    taught: list[EvalQuery] = []
    measured: list[EvalQuery] = []
    for q in qs:
        tool = next(iter(q.relevant))
        seen[tool] = seen.get(tool, 0) + 1
        (taught if seen[tool] % 2 == 1 else measured).append(q)
    qvecs = {q.query: static.embed_query(q.query) for q in measured}
    out: dict[str, Any] = {"taught": len(taught), "measured": len(measured)}
    index = build(tmp / "use", own, new_text, static)  # learning from use: the fast path
    out["before"] = measure(index, measured, qvecs, ("fast",))["fast"]
    for q in taught:
        index.record_use(q.query, list(q.relevant))
    out["after"] = measure(index, measured, qvecs, ("fast",))["fast"]
    print(f"\nlearning from use (held-back, {len(taught)} queries taught, {len(measured)} "
          f"measured): fast recall@5 {out['before']['recall@5']:.3f} → "
          f"{out['after']['recall@5']:.3f}, NDCG@10 {out['before']['ndcg@10']:.3f} → "
          f"{out['after']['ndcg@10']:.3f}")
    return out


# -- latency -----------------------------------------------------------------------------
def synthetic_tools(base: list[EvalTool], n: int, rng: random.Random) -> list[EvalTool]:
    vocab = sorted({w for t in base for w in t.description.split() if w.isalpha()})
    out = list(base)
    for i in range(n - len(base)):
        desc = " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 20)))
        out.append(EvalTool(f"synthetic_{i}", f"synthetic_{i}", desc))
    return out


def latency(tmp: Path, tools: list[EvalTool], queries: list[EvalQuery], e5: E5Embedder,
            size: int, rounds: int, sample: int) -> dict[str, Any]:
    rng = random.Random(7)
    big = synthetic_tools(tools, size, rng)
    static = default_static_embedder()
    out: dict[str, Any] = {"tools": len(big), "load_at_start": load()}

    # indexing: the first 1,000 real public tools into a fresh index, new pipeline (static and
    # MiniLM vectors are made on add; e5's lazily, for the candidates of unsure searches)
    t0 = time.perf_counter()
    build(tmp / "add1000", tools[:1000], new_text, static, rerank=e5)
    out["add_1000_tools_s"] = round(time.perf_counter() - t0, 3)

    # e5 rows at this size: real ones for 200 real tools, perturbed copies beyond (embedding
    # 10k descriptions with e5 would take most of an hour; search cost is the same)
    real = e5.embed_documents([old_text(t) for t in tools[:200]])
    picks = np.random.default_rng(7).integers(0, len(real), size=len(big))
    noise = np.random.default_rng(8).normal(0.0, 0.02, size=(len(big), real.shape[1]))
    vecs = real[picks] + noise.astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    new = build(tmp / "lat-new", big, new_text, static, rerank=e5)
    assert new.reranker is not None
    new.reranker.seed([(e.tool_id, e.fingerprint, display_line(e.text)) for e in new.entries()],
                      vecs.astype(np.float32))
    before = build(tmp / "lat-before", big, new_text, static, rerank=e5, semantic=False,
                   weights=BEFORE_MINILM)
    assert before.reranker is not None
    before.reranker.seed([(e.tool_id, e.fingerprint, display_line(e.text))
                          for e in before.entries()], vecs.astype(np.float32))
    old = SkillIndex(tmp / "lat-old", e5, semantic=False)
    old.add_vectors([(t.id, f"sha256:{i:064x}", old_text(t)) for i, t in enumerate(big)],
                    vecs.astype(np.float32), e5.model_id)
    # the same sample of queries for every pipeline, interleaved query by query so that the
    # shared machine's load swings hit them all alike
    texts = random.Random(11).sample([q.query for q in queries], min(len(queries), sample))
    runs: list[tuple[str, SkillIndex, Mode]] = [
        ("full", new, "full"), ("full_before_minilm", before, "full"), ("deep", new, "deep"),
        ("fast", new, "fast"),
        ("bm25", new, "bm25"), ("static_dense", new, "dense"), ("old", old, "fused"),
        ("old_e5_dense", old, "dense")]
    times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    for label, index, mode in runs:
        t0 = time.perf_counter()
        index.search(texts[0], 5, mode)  # builds the BM25 view
        out[f"{label}_first_search_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    new.reranked = new.confident = 0
    for _ in range(rounds):
        for text in texts:
            for label, index, mode in runs:
                index.cache = type(index.cache)()  # every query is embedded: no cache hit
                s = time.perf_counter()
                index.search(text, 5, mode)
                times[label].append((time.perf_counter() - s) * 1000)
    for label, _, _ in runs:
        t = times[label]
        out[label] = {"queries": len(t), "p50_ms": round(percentile(t, 50), 3),
                      "p95_ms": round(percentile(t, 95), 3),
                      "mean_ms": round(statistics.fmean(t), 3)}
    out["full_confident_share"] = round(new.confident / max(1, len(times["full"])), 3)
    out["load_at_end"] = load()
    cached = []
    for text in texts[:300]:
        new.search(text, 5, "full")
        s = time.perf_counter()
        new.search(text, 5, "full")
        cached.append((time.perf_counter() - s) * 1000)
    out["new_cached_p50_ms"] = round(percentile(cached, 50), 3)
    return out


# -- main --------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("heldout", "tune", "all"), default="heldout")
    ap.add_argument("--size", type=int, default=10_000, help="tools for the latency run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sample", type=int, default=500, help="queries timed per pipeline")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-quality", action="store_true", help="only the latency run")
    ap.add_argument("--cache", type=Path, help="memo of e5 vectors across runs (quality only; "
                    "latency always embeds)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/skills_retrieval.json"))
    args = ap.parse_args()
    halves = ["tune", "heldout"] if args.split == "all" else [args.split]

    tools = load_tools(PUBLIC / "tools.jsonl")
    queries = load_queries(PUBLIC / "queries.jsonl", {t.id for t in tools})
    own_tools = load_tools(DATA / "skills_tools.jsonl")
    own_queries = load_queries(DATA / "skills_queries.jsonl", {t.id for t in own_tools})
    # read only when the held-back half is asked for, like the held-back half itself
    fresh = load_queries(PUBLIC / "queries_fresh.jsonl", {t.id for t in tools}) \
        if "heldout" in halves else []
    e5_model = default_embedder()
    e5 = CachedE5(e5_model, args.cache)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu": _cpu(), "python": platform.python_version(),
                    "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
                    "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")},
        "models": {"new": default_static_embedder().model_id, "old": e5_model.model_id,
                   "semantic": default_minilm().model_id},
        "public_set": {"tools": len(tools), "queries": len(queries), "halves": halves,
                       "fresh_queries": len(fresh)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_quality:
            result["quality"] = quality(Path(tmp), tools, queries, halves, own_tools,
                                        own_queries, e5, fresh)
            e5.save()
        if not args.no_latency:
            lat_queries = [q for q in queries if q.split in halves]
            result["latency"] = latency(Path(tmp), tools, lat_queries, e5_model, args.size,
                                        args.rounds, args.sample)
            _print_latency(result["latency"])
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
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


def _print_quality(name: str, r: dict[str, Any]) -> None:
    print(f"\n{name}: {r['tools']} tools, {r['queries']} queries")
    print(f"  {'pipeline':<22} {'R@1':>6} {'R@5':>6} {'NDCG@10':>8}  R@5 by source")
    for side, modes in (("old", ("bm25", "dense", "fused")), ("before_minilm", ("full",)),
                        ("new", MODES)):
        for mode in modes:
            m = r[side][mode]
            src = " ".join(f"{s}:{v:.3f}" for s, v in m["recall@5_by_source"].items())
            print(f"  {side + ' ' + mode:<22} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} "
                  f"{m['ndcg@10']:>8.3f}  {src}")


def _print_latency(r: dict[str, Any]) -> None:
    print(f"\nlatency at {r['tools']} tools (query embedding included, no cache), load "
          f"{r['load_at_start']} → {r['load_at_end']}:")
    for label in ("full", "full_before_minilm", "deep", "fast", "bm25", "static_dense", "old",
                  "old_e5_dense"):
        m = r[label]
        print(f"  {label:<13} p50 {m['p50_ms']:>8} ms  p95 {m['p95_ms']:>8} ms  mean "
              f"{m['mean_ms']:>8} ms  ({m['queries']} queries)")
    print(f"  full: {r['full_confident_share']:.0%} of queries settled without e5; cached "
          f"query p50 {r['new_cached_p50_ms']} ms; add 1,000 tools {r['add_1000_tools_s']} s")


if __name__ == "__main__":
    main()
