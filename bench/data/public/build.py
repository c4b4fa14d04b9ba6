"""Build the public tool-retrieval evaluation set from two upstream datasets.

Not run by the benchmark: it documents how `tools.jsonl` and `queries.jsonl` were derived
(see PROVENANCE.md). Inputs are the upstream files at the pinned commits, passed as paths:

    python bench/data/public/build.py --metatool DIR --bfcl DIR

- DIR for MetaTool holds `plugin_des.json`, `plugin_info.json`, `all_clean_data.csv`
  (from `dataset/` and `dataset/data/` of HowieHwong/MetaTool).
- DIR for BFCL holds `BFCL_v4_<category>.json` and `possible_answer/BFCL_v4_<category>.json`
  (from `berkeley-function-call-leaderboard/bfcl_eval/data/` of ShishirPatil/gorilla).

The split is by *tool*: a tool and every query whose answer it is fall in the same half,
chosen by a salted SHA-256 of the tool id, so the held-back half is a catalogue whose tools
and queries were never looked at while tuning. Nothing here depends on a ranker.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

SALT = "ouroboros-retrieval-split-v1"
METATOOL_QUERIES_PER_TOOL = 10
FRESH_QUERIES_PER_TOOL = 10  # the next ten per held-back tool, in the same order
BFCL_CATEGORIES = ("simple_python", "multiple", "live_simple", "live_multiple",
                   "simple_java", "simple_javascript")
BFCL_DISTRACTOR_CATEGORIES = ("irrelevance",)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_of(tool_id: str) -> str:
    return "tune" if int(digest(f"{SALT}:{tool_id}")[:8], 16) % 2 == 0 else "heldout"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _metatool_queries(root: Path, des: dict[str, str]) -> dict[str, list[str]]:
    """Per tool, its single-tool queries in SHA-256 order."""
    by_query: dict[str, set[str]] = {}
    with open(root / "all_clean_data.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            q = row["Query"].strip()
            if q and row["Tool"] in des:
                by_query.setdefault(q, set()).add(row["Tool"])
    per_tool: dict[str, list[str]] = {}
    for q, names in by_query.items():
        if len(names) == 1:  # a query filed under two tools says nothing about ranking
            per_tool.setdefault(next(iter(names)), []).append(q)
    return {name: sorted(qs, key=digest) for name, qs in per_tool.items()}


def metatool_fresh(root: Path) -> list[dict[str, Any]]:
    """A second held-back sample, frozen after the first had been read several times:
    queries of held-back MetaTool tools that `metatool` never picked (positions 10-19 of
    each tool's SHA-256 order). Measured once, at the end of a tuning round."""
    des = json.loads((root / "plugin_des.json").read_text(encoding="utf-8"))
    per_tool = _metatool_queries(root, des)
    out = []
    for name in des:
        tid = f"metatool/{name}"
        if split_of(tid) != "heldout":
            continue
        start = METATOOL_QUERIES_PER_TOOL
        for q in per_tool.get(name, [])[start:start + FRESH_QUERIES_PER_TOOL]:
            out.append({"id": f"metatool/{digest(q)[:12]}", "query": q, "relevant": {tid: 2},
                        "source": "metatool", "split": "fresh"})
    return out


def metatool(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    des = json.loads((root / "plugin_des.json").read_text(encoding="utf-8"))
    info = json.loads((root / "plugin_info.json").read_text(encoding="utf-8"))
    tools: list[dict[str, Any]] = []
    for name, description in des.items():
        tid = f"metatool/{name}"
        tools.append({"id": tid, "name": name, "description": description.strip(),
                      "input_fields": [], "source": "metatool", "role": "target",
                      "split": split_of(tid)})
    seen = set(des)
    for p in info:  # plugins with no queries of their own: distractors
        name = p["name_for_model"]
        if name in seen:
            continue
        seen.add(name)
        tools.append({"id": f"metatool/{name}", "name": name,
                      "description": p["description_for_human"].strip(), "input_fields": [],
                      "source": "metatool", "role": "distractor", "split": "distractor"})
    per_tool = _metatool_queries(root, des)
    queries: list[dict[str, Any]] = []
    for name in des:
        picked = per_tool.get(name, [])[:METATOOL_QUERIES_PER_TOOL]
        for q in picked:
            tid = f"metatool/{name}"
            queries.append({"id": f"metatool/{digest(q)[:12]}", "query": q,
                            "relevant": {tid: 2}, "source": "metatool",
                            "split": split_of(tid)})
    return tools, queries


def _user_text(question: Any) -> str:
    turns = question[0] if question and isinstance(question[0], list) else question
    return "\n".join(t["content"].strip() for t in turns if t.get("role") == "user").strip()


def bfcl(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tools: dict[str, dict[str, Any]] = {}

    def register(fn: dict[str, Any], role: str) -> str:
        tid = f"bfcl/{fn['name']}"
        if tid not in tools:  # same name = same tool; the first description seen is kept
            props = (fn.get("parameters") or {}).get("properties") or {}
            tools[tid] = {"id": tid, "name": fn["name"], "description": fn["description"].strip(),
                          "input_fields": sorted(props), "source": "bfcl", "role": role,
                          "split": split_of(tid) if role == "target" else "distractor"}
        elif role == "target" and tools[tid]["role"] == "distractor":
            tools[tid].update(role="target", split=split_of(tid))
        return tid

    queries: list[dict[str, Any]] = []
    for cat in BFCL_CATEGORIES:
        answers = {a["id"]: a for a in _lines(root / "possible_answer" / f"BFCL_v4_{cat}.json")}
        for entry in _lines(root / f"BFCL_v4_{cat}.json"):
            for fn in entry["function"]:
                register(fn, "distractor")
            wanted = [next(iter(call)) for call in answers[entry["id"]]["ground_truth"]]
            text = _user_text(entry["question"])
            if not text or len(wanted) != 1:
                continue
            tid = register({"name": wanted[0], "description": "", "parameters": {}}, "target")
            queries.append({"id": f"bfcl/{entry['id']}", "query": text,
                            "relevant": {tid: 2}, "source": "bfcl", "split": tools[tid]["split"]})
    for cat in BFCL_DISTRACTOR_CATEGORIES:
        for entry in _lines(root / f"BFCL_v4_{cat}.json"):
            for fn in entry["function"]:
                register(fn, "distractor")
    return list(tools.values()), queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metatool", type=Path, required=True)
    ap.add_argument("--bfcl", type=Path)
    ap.add_argument("--fresh", action="store_true",
                    help="write only queries_fresh.jsonl (MetaTool needed, BFCL not)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    if args.fresh:
        fresh = metatool_fresh(args.metatool)
        with open(args.out / "queries_fresh.jsonl", "w", encoding="utf-8") as f:
            for q in fresh:
                f.write(json.dumps(q, ensure_ascii=False, sort_keys=True) + "\n")
        print(f"fresh: {len(fresh)} queries")
        return
    if args.bfcl is None:
        ap.error("--bfcl is needed to build the set")
    mt_tools, mt_queries = metatool(args.metatool)
    bf_tools, bf_queries = bfcl(args.bfcl)
    tools = mt_tools + bf_tools
    ids = [t["id"] for t in tools]
    assert len(ids) == len(set(ids)), "duplicate tool ids"
    queries = mt_queries + bf_queries
    known = set(ids)
    assert all(set(q["relevant"]) <= known for q in queries)
    with open(args.out / "tools.jsonl", "w", encoding="utf-8") as f:
        for t in tools:
            f.write(json.dumps(t, ensure_ascii=False, sort_keys=True) + "\n")
    with open(args.out / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False, sort_keys=True) + "\n")
    for half in ("tune", "heldout"):
        nt = sum(1 for t in tools if t["split"] == half)
        nq = sum(1 for q in queries if q["split"] == half)
        print(f"{half}: {nt} tools, {nq} queries")
    print(f"distractors: {sum(1 for t in tools if t['role'] == 'distractor')} tools")


if __name__ == "__main__":
    main()
