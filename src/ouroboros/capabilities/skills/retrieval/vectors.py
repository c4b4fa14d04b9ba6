"""Where tool vectors live: a small interface and the append-only file implementation.

`VectorStore` is what the index needs from storage: append rows (a newer version of a tool
supersedes its old row), list the live rows, and score them against a query vector. An ANN
index or PostgreSQL/pgvector can implement the same methods without the ranking code
noticing.

`FileVectorStore` keeps, under `root/`:
- `vectors.f32`: row-major little-endian float32, one L2-normalised row per entry;
- `entries.jsonl`: `{row, tool_id, fingerprint, text, model_id}` per row, written after its
  vector, so a torn write leaves a vector without an entry, which loading drops;
- `manifest.json`: the model id and dimension the rows were made with;
- `.lock`: one writer at a time across processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..embedding import Matrix
from ..ranking import top_indices


class RetrievalError(RuntimeError):
    """The index cannot serve a request."""


class ModelMismatch(RetrievalError):
    """The index was built with a different embedding model than the one loaded."""


@dataclass(frozen=True)
class IndexEntry:
    row: int
    tool_id: str
    fingerprint: str
    text: str
    model_id: str


class VectorStore(Protocol):
    """Storage and exact-or-approximate nearest-neighbour search over tool vectors.

    What `SkillIndex` needs and nothing more: an ANN index or pgvector implements these and
    is passed as `SkillIndex(root, store=...)`. `generation` changes whenever the live rows
    do, so derived views (BM25, hub scores) know to rebuild; `matrix()` is the live rows in
    `live()` order (an ANN store may answer `nearest` without it and build it lazily).
    """

    @property
    def model_id(self) -> str | None: ...

    @property
    def dim(self) -> int: ...

    @property
    def generation(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, tool_id: object) -> bool: ...

    def get(self, tool_id: str) -> IndexEntry | None: ...

    def vector(self, tool_id: str) -> Matrix: ...

    def live(self) -> list[IndexEntry]: ...

    def matrix(self) -> Matrix: ...

    def nearest(self, query: Matrix, k: int) -> list[tuple[IndexEntry, float]]: ...

    def append(self, items: Sequence[tuple[str, str, str]], vectors: Matrix,
               model_id: str) -> None: ...

    def refresh(self) -> bool: ...

    def compact(self) -> None: ...

    def clear(self) -> None: ...


class FileVectorStore:
    """Append-only float32 rows on local disk, searched by one matrix-vector product."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._entries: list[IndexEntry] = []
        self._live: dict[str, int] = {}  # tool_id -> row
        self._model_id: str | None = None
        self._dim = 0
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._entries_bytes = 0
        self._signature = (-1, -1)
        self._generation = 0  # bumped on every change, so views know to rebuild
        self._live_cache: tuple[int, list[IndexEntry], Matrix] | None = None
        # Searches on server threads refresh while another thread appends: one at a time
        # in this process (the file lock orders processes).
        self._mutex = threading.RLock()
        self._load()

    # -- reading ------------------------------------------------------------------------
    @property
    def model_id(self) -> str | None:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self._live

    def get(self, tool_id: str) -> IndexEntry | None:
        row = self._live.get(tool_id)
        return None if row is None else self._entries[row]

    def vector(self, tool_id: str) -> Matrix:
        out: Matrix = self._vectors[self._live[tool_id]].copy()
        return out

    def live(self) -> list[IndexEntry]:
        """The newest row of each tool, in row order."""
        return self._live_view()[0]

    def matrix(self) -> Matrix:
        """The live rows' vectors, in the order of `live()`."""
        return self._live_view()[1]

    def nearest(self, query: Matrix, k: int) -> list[tuple[IndexEntry, float]]:
        entries, matrix = self._live_view()
        if not entries:
            return []
        scores = matrix @ query
        return [(entries[i], float(scores[i])) for i in top_indices(scores, k)]

    def refresh(self) -> bool:
        """Pick up rows another process appended (or a compaction); True if anything changed."""
        with self._mutex:
            if self._disk_signature() != self._signature:
                self._load()
                return True
            return False

    # -- writing ------------------------------------------------------------------------
    def append(self, items: Sequence[tuple[str, str, str]], vectors: Matrix,
               model_id: str) -> None:
        """Append `(tool_id, fingerprint, text)` rows with their vectors (one model only)."""
        if len(items) != len(vectors):
            raise ValueError(f"{len(items)} items but {len(vectors)} vectors")
        for tool_id, fingerprint, _ in items:
            if not tool_id or not fingerprint:
                raise ValueError("tool_id and fingerprint must be non-empty")
        if not items:
            return
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        if not np.all(np.isfinite(vectors)):
            raise ValueError("vectors must be finite")
        self.root.mkdir(parents=True, exist_ok=True)
        with self._mutex, self.locked():
            self.refresh()
            if self._model_id is None:
                self._start(model_id, int(vectors.shape[1]))
            elif model_id != self._model_id:
                raise ModelMismatch(
                    f"index at {self.root} holds vectors from {self._model_id}, not "
                    f"{model_id}; rebuild it with reindex()")
            if vectors.shape[1] != self._dim:
                raise ValueError(
                    f"vectors have dimension {vectors.shape[1]}, index has {self._dim}")
            first = len(self._entries)
            new = [IndexEntry(first + i, tool_id, fp, text, model_id)
                   for i, (tool_id, fp, text) in enumerate(items)]
            self._cut_torn_tails()
            with open(self.root / "vectors.f32", "ab") as f:
                f.write(vectors.tobytes())
                f.flush()
                os.fsync(f.fileno())
            lines = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in new)
            with open(self.root / "entries.jsonl", "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
            self._entries_bytes += len(lines.encode("utf-8"))
            self._vectors = np.concatenate([self._vectors, vectors]) if first else vectors.copy()
            for e in new:
                self._entries.append(e)
                self._live.pop(e.tool_id, None)  # re-insert so order follows the newest row
                self._live[e.tool_id] = e.row
            self._changed()
            self._signature = self._disk_signature()
            if len(self._entries) > 2 * len(self._live) + 64:
                self._compact_locked()

    def compact(self) -> None:
        """Rewrite the files keeping only live rows (atomically, by rename)."""
        with self._mutex, self.locked():
            self.refresh()
            self._compact_locked()

    def clear(self) -> None:
        """Forget every row (before a re-embedding with another model)."""
        with self._mutex, self.locked():
            for name in ("vectors.f32", "entries.jsonl", "manifest.json"):
                (self.root / name).unlink(missing_ok=True)
            self._load()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time across processes (an advisory lock on `.lock`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # -- internals ----------------------------------------------------------------------
    def _changed(self) -> None:
        self._generation += 1
        self._live_cache = None

    def _live_view(self) -> tuple[list[IndexEntry], Matrix]:
        with self._mutex:
            return self._live_view_locked()

    def _live_view_locked(self) -> tuple[list[IndexEntry], Matrix]:
        if self._live_cache is None or self._live_cache[0] != self._generation:
            rows = sorted(self._live.values())
            matrix = np.ascontiguousarray(self._vectors[rows]) if rows else \
                np.zeros((0, self._dim), dtype=np.float32)
            self._live_cache = (self._generation, [self._entries[r] for r in rows], matrix)
        return self._live_cache[1], self._live_cache[2]

    def _compact_locked(self) -> None:
        live, vectors = self._live_view()
        entries = [IndexEntry(i, e.tool_id, e.fingerprint, e.text, e.model_id)
                   for i, e in enumerate(live)]
        tmp_v, tmp_e = self.root / "vectors.f32.tmp", self.root / "entries.jsonl.tmp"
        tmp_v.write_bytes(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        tmp_e.write_text("".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in entries),
                         encoding="utf-8")
        os.replace(tmp_v, self.root / "vectors.f32")
        os.replace(tmp_e, self.root / "entries.jsonl")
        self._load()

    def _start(self, model_id: str, dim: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"model_id": model_id, "dim": dim, "format": 1}
        tmp = self.root / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.root / "manifest.json")
        self._model_id, self._dim = model_id, dim
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def _load(self) -> None:
        self._entries, self._live = [], {}
        self._entries_bytes = 0
        self._signature = self._disk_signature()
        self._model_id, self._dim = None, 0
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._changed()
        manifest_path = self.root / "manifest.json"
        if not manifest_path.exists():
            return
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            self._model_id, self._dim = str(manifest["model_id"]), int(manifest["dim"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise RetrievalError(
                f"{manifest_path} is unreadable ({err}); delete {self.root} and search again "
                "to rebuild the index from the store") from err
        if self._dim <= 0:
            raise RetrievalError(f"{manifest_path} names dimension {self._dim}")
        vec_path = self.root / "vectors.f32"
        raw = np.fromfile(vec_path, dtype="<f4") if vec_path.exists() else np.zeros(0, "<f4")
        rows_on_disk = raw.size // self._dim
        entries_path = self.root / "entries.jsonl"
        data = entries_path.read_bytes() if entries_path.exists() else b""
        lines = data.split(b"\n")[:-1]  # only newline-terminated lines are complete
        for line in lines:
            try:
                e = IndexEntry(**json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
                break  # a torn last line: everything before it is intact
            if e.row != len(self._entries) or e.row >= rows_on_disk:
                break
            self._entries_bytes += len(line) + 1
            self._entries.append(e)
            self._live.pop(e.tool_id, None)
            self._live[e.tool_id] = e.row
        n = len(self._entries)
        self._vectors = raw[: n * self._dim].reshape(n, self._dim).astype(np.float32)

    def _disk_signature(self) -> tuple[int, int]:
        sizes = []
        for name in ("entries.jsonl", "vectors.f32"):
            try:
                sizes.append((self.root / name).stat().st_size)
            except FileNotFoundError:
                sizes.append(-1)
        return sizes[0], sizes[1]

    def _cut_torn_tails(self) -> None:
        """Drop bytes past the last complete row, so the next append lines up."""
        for name, size in (("entries.jsonl", self._entries_bytes),
                           ("vectors.f32", len(self._entries) * self._dim * 4)):
            path = self.root / name
            if path.exists() and path.stat().st_size > size:
                os.truncate(path, size)
