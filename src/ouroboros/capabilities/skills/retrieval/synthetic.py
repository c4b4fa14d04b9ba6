"""Synthetic queries: an LLM writes how users would ask for a tool, and the index learns it.

Users describe what they want, not what a tool is called; a description rarely holds
their words. When an LLM endpoint is configured, each newly accepted tool gets a few
example requests written by the model (doc2query, Nogueira et al. 2019), stored beside the
index and appended to the tool's indexed document ("asked as: ...").

The model sees the tool's name, description and visible test inputs only (hidden cases
never enter a prompt). Its answer is data, not instructions: at most `MAX_QUERIES` lines of
at most `MAX_CHARS` characters, control characters and URLs removed, duplicates dropped;
an unusable answer just means no synthetic queries. A hostile description that talks the
model into keyword stuffing gains little: the lines are few and short, and BM25 saturates.

`<index>/synthetic.jsonl`: `{"tool", "fingerprint", "model", "queries"}` per generation;
the last line for a (tool, fingerprint) wins, malformed lines are skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .documents import MAX_SYNTHETIC, MAX_SYNTHETIC_CHARS, clean, example_text

SYNTHETIC_FILE = "synthetic.jsonl"
MAX_QUERIES = MAX_SYNTHETIC
MAX_CHARS = MAX_SYNTHETIC_CHARS
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")

PROMPT = """\
Write {n} different requests that a user of a tool library might type when they need the
tool below. Use everyday words, vary the phrasing, do not name the tool. One request per
line, nothing else.

Tool name: {name}
What it does: {description}
Example inputs: {examples}
"""


def parse_queries(answer: str, limit: int = MAX_QUERIES) -> list[str]:
    """Clean request lines out of a model's answer."""
    out: list[str] = []
    for line in answer.splitlines():
        line = _BULLET.sub("", line)
        line = _URL.sub(" ", line).strip().strip('"').strip()
        text = clean(line, MAX_CHARS)
        if len(text) < 3 or text.lower() in (q.lower() for q in out):
            continue
        out.append(text)
        if len(out) >= limit:
            break
    return out


def generate(provider: Any, version: Any, n: int = 5) -> list[str]:
    """Ask the model for `n` requests for a stored version (visible cases only)."""
    examples = [example_text(c.input) for c in version.cases(include_hidden=False)][:3]
    prompt = PROMPT.format(n=n, name=version.tool_id,
                           description=clean(version.description, 1000),
                           examples=" | ".join(e for e in examples if e)[:400] or "(none)")
    reply = provider.chat([{"role": "user", "content": prompt}])
    return parse_queries(str(getattr(reply, "content", "") or ""), min(n, MAX_QUERIES))


def save_synthetic(index_root: Path, tool_id: str, fingerprint: str, model: str,
                   queries: list[str]) -> None:
    index_root.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"tool": tool_id, "fingerprint": fingerprint, "model": model,
                       "queries": queries[:MAX_QUERIES]}, sort_keys=True) + "\n"
    with open(index_root / SYNTHETIC_FILE, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a torn last line: end it, or it swallows this one
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


_cache: dict[Path, tuple[tuple[int, float], dict[tuple[str, str], list[str]]]] = {}
#: The longest line read (a saved one is a few KiB); a longer one is read past in bounded
#: chunks and skipped, so a file grown to gigabytes is never held whole.
MAX_LINE = 64 << 10


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while line := f.readline(MAX_LINE + 1):
            if len(line) <= MAX_LINE or line.endswith(b"\n"):
                yield line
                continue
            while line and not line.endswith(b"\n"):
                line = f.readline(MAX_LINE)


def read_synthetic(index_root: Path, tool_id: str, fingerprint: str) -> list[str]:
    """The stored synthetic queries of a version (empty when none)."""
    path = Path(index_root) / SYNTHETIC_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return []
    signature = (st.st_size, st.st_mtime)
    cached = _cache.get(path)
    if cached is None or cached[0] != signature:
        table: dict[tuple[str, str], list[str]] = {}
        for line in _lines(path):
            try:
                r = json.loads(line) if line.strip() else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if not isinstance(r, dict) or not isinstance(r.get("queries"), list):
                continue
            if not isinstance(r.get("tool"), str) or not isinstance(r.get("fingerprint"), str):
                continue
            queries = [clean(q, MAX_CHARS) for q in r["queries"] if isinstance(q, str)]
            table[(r["tool"], r["fingerprint"])] = [q for q in queries if q][:MAX_QUERIES]
        cached = (signature, table)
        _cache[path] = cached
    return list(cached[1].get((tool_id, fingerprint), []))
