"""Learning from use: the tool that actually served a request is found first next time.

When `solve` answers a task with a tool that ran successfully, or a user runs a tool that a
recent `ouro tool search` had listed, the (query, tool) pair is recorded. A later query
close to a recorded one (cosine of the static query vectors at least `SIMILAR`) gives that
tool an extra ranking in the fusion, stronger the closer and the more often it served.

Stored in the index directory, append-only under the index lock:
- `usage.jsonl`: `{"model", "tool", "key", "vec", "t"}` per use: the query's vector (float16,
  base64) and a salted hash of its text, never the text itself (a task can hold private
  data); lines of another model or dimension are ignored, malformed lines skipped;
- `recent-searches.jsonl`: the last searches made with `remember=True`, so a successful
  `ouro tool run` can credit the query that found the tool (within `RECENT_SECONDS`).

Both files are bounded (the oldest lines are dropped past `MAX_USES` / `MAX_RECENT`), so a
flood of uses cannot grow them without limit, and one query's boosts are capped so a tool
used a thousand times for "convert csv" gains nothing for "weather in Oslo".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ouroboros.storage.files import flocked, replace_file

if TYPE_CHECKING:  # numpy is imported where vectors are handled: crediting a run needs none

    from ..embedding import Matrix

USAGE_FILE = "usage.jsonl"
RECENT_FILE = "recent-searches.jsonl"
SIMILAR = 0.80  # cosine of static query vectors; paraphrases sit above, other tasks below
MAX_USES = 20000
MAX_RECENT = 64
RECENT_SECONDS = 15 * 60
MAX_LINE_BYTES = 16384


def query_key(query: str) -> str:
    """A stable key for a query's text that does not reveal it."""
    norm = " ".join(query.lower().split())
    return hashlib.sha256(b"ouro-usage-v1\x00" + norm.encode("utf-8")).hexdigest()[:32]


def _encode(vec: Matrix) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vec, dtype="<f2").tobytes()).decode("ascii")


def _decode(text: str, dim: int) -> Matrix | None:
    import numpy as np

    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    if len(raw) != 2 * dim:
        return None
    v = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    norm = float(np.linalg.norm(v))
    if not np.all(np.isfinite(v)) or norm == 0.0:
        return None
    out: Matrix = v / norm
    return out


@dataclass(frozen=True)
class Use:
    key: str
    tool_id: str
    vector: Matrix
    count: int


class UsageMemory:
    """The (query vector → tool) pairs that served, and the boosts they give."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._signature: tuple[int, float] | None = None
        self._model: str | None = None
        self._uses: list[Use] = []
        self._matrix: Matrix | None = None  # filled by _refresh

    # -- writing ------------------------------------------------------------------------
    def record(self, query: str, vector: Matrix, tool_ids: Sequence[str], model_id: str) -> int:
        """Remember that `tool_ids` served `query`; returns how many pairs were written."""
        import numpy as np

        tools = [t for t in dict.fromkeys(tool_ids) if isinstance(t, str) and t]
        if not tools or not query.strip() or not np.all(np.isfinite(vector)):
            return 0
        key, vec, now = query_key(query), _encode(vector), round(time.time(), 3)
        lines = "".join(json.dumps({"model": model_id, "tool": t, "key": key, "vec": vec,
                                    "t": now}, sort_keys=True) + "\n" for t in tools)
        with self._locked():
            _append_bounded(self.root / USAGE_FILE, lines, MAX_USES)
        return len(tools)

    def remember_search(self, query: str, vector: Matrix, tool_ids: Sequence[str],
                        model_id: str) -> None:
        """Note a search and what it listed, for a later successful run to credit."""
        line = json.dumps({"model": model_id, "key": query_key(query), "vec": _encode(vector),
                           "tools": list(tool_ids)[:20], "t": round(time.time(), 3)},
                          sort_keys=True) + "\n"
        with self._locked():
            _append_bounded(self.root / RECENT_FILE, line, MAX_RECENT)

    def credit_run(self, tool_id: str, now: float | None = None) -> bool:
        """A run of `tool_id` succeeded: credit the newest recent search that listed it."""
        now = time.time() if now is None else now
        path = self.root / RECENT_FILE
        with self._locked():
            records = _read_lines(path, MAX_RECENT)
            for i in range(len(records) - 1, -1, -1):
                r = records[i]
                tools = r.get("tools")
                t = r.get("t")
                if not isinstance(tools, list) or tool_id not in tools:
                    continue
                if not isinstance(t, int | float) or not 0 <= now - t <= RECENT_SECONDS:
                    continue
                if not all(isinstance(r.get(k), str) for k in ("model", "key", "vec")):
                    continue
                line = json.dumps({"model": r["model"], "tool": tool_id, "key": r["key"],
                                   "vec": r["vec"], "t": round(now, 3)}, sort_keys=True) + "\n"
                _append_bounded(self.root / USAGE_FILE, line, MAX_USES)
                del records[i]  # one search credits one run
                _rewrite(path, "".join(json.dumps(x, sort_keys=True) + "\n" for x in records))
                return True
        return False

    # -- reading ------------------------------------------------------------------------
    def boosts(self, vector: Matrix, model_id: str, dim: int) -> dict[str, float]:
        """Tool → boost for a query vector: similar past queries vote for what served them."""
        import numpy as np

        self._refresh(model_id, dim)
        if not self._uses or self._matrix is None:
            return {}
        sims = self._matrix @ vector
        out: dict[str, float] = {}
        for i in np.flatnonzero(sims >= SIMILAR):
            use = self._uses[int(i)]
            closeness = (float(sims[i]) - SIMILAR) / (1.0 - SIMILAR) + 0.1
            out[use.tool_id] = out.get(use.tool_id, 0.0) + closeness * (1.0 + math.log(use.count))
        return out

    def _refresh(self, model_id: str, dim: int) -> None:
        import numpy as np

        path = self.root / USAGE_FILE
        try:
            st = path.stat()
            signature = (st.st_size, st.st_mtime)
        except FileNotFoundError:
            signature = (0, 0.0)
        if signature == self._signature and model_id == self._model:
            return
        counts: dict[tuple[str, str], int] = {}
        vectors: dict[tuple[str, str], Matrix] = {}
        for r in _read_lines(path, MAX_USES):
            if r.get("model") != model_id:
                continue
            key, tool, vec = r.get("key"), r.get("tool"), r.get("vec")
            if not (isinstance(key, str) and isinstance(tool, str) and isinstance(vec, str)):
                continue
            v = _decode(vec, dim)
            if v is None:
                continue
            counts[(key, tool)] = counts.get((key, tool), 0) + 1
            vectors[(key, tool)] = v
        self._uses = [Use(k, t, vectors[(k, t)], n) for (k, t), n in counts.items()]
        self._matrix = np.stack([u.vector for u in self._uses]) if self._uses else \
            np.zeros((0, dim), dtype=np.float32)
        self._signature, self._model = signature, model_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with flocked(self.root / ".usage.lock", mode=0o644):
            yield


def _lines(path: Path) -> Iterator[bytes | None]:
    """The file's lines one at a time, each at most `MAX_LINE_BYTES` long; None for a
    longer one, read past in bounded chunks: a file another process grew to gigabytes (or
    one line of them) is never held whole."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        while line := f.readline(MAX_LINE_BYTES + 1):
            if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
                yield line.rstrip(b"\n")
                continue
            while line and not line.endswith(b"\n"):
                line = f.readline(MAX_LINE_BYTES)
            yield None


def _read_lines(path: Path, keep: int) -> list[dict[str, object]]:
    """The newest records (at most as many as `_append_bounded` lets the file hold)."""
    out: deque[dict[str, object]] = deque(maxlen=keep + keep // 4)
    for line in _lines(path):
        if line is None or not line.strip():
            continue
        try:
            r = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(r, dict):
            out.append(r)
    return list(out)


def _append_bounded(path: Path, lines: str, keep: int) -> None:
    """Append; past `keep` lines, or once an overlong line is found, rewrite keeping the
    newest (atomically, by rename), reading a line at a time."""
    with open(path, "a+b") as f:
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a torn last line: end it, or it swallows this one
                lines = "\n" + lines
        f.write(lines.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    if path.stat().st_size <= keep * 256:  # every line is longer: no need to count
        return
    tail: deque[bytes] = deque(maxlen=keep)
    count, overlong = 0, False
    for line in _lines(path):
        if line is None:
            overlong = True
            continue
        count += 1
        tail.append(line)
    if overlong or count > keep + keep // 4:
        _rewrite(path, b"".join(x + b"\n" for x in tail).decode("utf-8", "replace"))


def _rewrite(path: Path, text: str) -> None:
    replace_file(path, text)


SERVING_OUTCOMES = ("reused", "mutated", "created")


def served_tools(result: object) -> list[str]:
    """The tools that served a solved task: those that ran successfully, when the task was
    answered by running a tool (`SolveResult.outcome` reused, mutated or created)."""
    if getattr(result, "outcome", None) not in SERVING_OUTCOMES:
        return []
    ran = getattr(result, "ran", None) or []
    return [t for t in dict.fromkeys(ran) if isinstance(t, str) and not t.endswith("!failed")]


def credit_run(index_root: Path, tool_id: str) -> bool:
    """A successful `ouro tool run`: credit the recent search that listed the tool, if any.
    Needs no model: the search stored its query vector."""
    if not (Path(index_root) / RECENT_FILE).exists():
        return False
    return UsageMemory(index_root).credit_run(tool_id)
