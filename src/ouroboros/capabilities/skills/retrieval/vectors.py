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
- `.lock`: one writer at a time across processes (exclusive), loads under a shared lock.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ouroboros.storage.files import (
    UnsafeFile,
    create_new,
    flocked,
    read_json_file,
    replace_file,
)

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
    `live()` order (an ANN store may answer `nearest` without it and build it lazily);
    `view()` is generation, live rows and matrix of one state, for readers that must not
    mix two (a search running while another thread or process appends).
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

    def view(self) -> tuple[int, list[IndexEntry], Matrix]: ...

    def nearest(self, query: Matrix, k: int) -> list[tuple[IndexEntry, float]]: ...

    def append(self, items: Sequence[tuple[str, str, str]], vectors: Matrix,
               model_id: str) -> None: ...

    def refresh(self) -> bool: ...

    def compact(self) -> None: ...

    def clear(self) -> None: ...


def checked_rows(items: Sequence[tuple[str, str, str]], vectors: Matrix) -> Matrix | None:
    """An append's vectors as stored (little-endian float32), None for an empty batch.

    Raises:
        ValueError: counts differ, an id is empty, or the vectors are not a finite 2-d array.
    """
    if len(items) != len(vectors):
        raise ValueError(f"{len(items)} items but {len(vectors)} vectors")
    for tool_id, fingerprint, _ in items:
        if not tool_id or not fingerprint:
            raise ValueError("tool_id and fingerprint must be non-empty")
    if not items:
        return None
    rows: Matrix = np.ascontiguousarray(vectors, dtype="<f4")
    if rows.ndim != 2 or not np.all(np.isfinite(rows)):
        raise ValueError("vectors must be a finite 2-d array")
    return rows


class _Rows:
    """One consistent reading of the files. Readers take the current one and use only it;
    a writer builds the next and publishes it by one assignment, so a search never sees a
    half-loaded store (entries of one state, vectors of another)."""

    __slots__ = ("_view", "dim", "entries", "entries_bytes", "generation", "live", "model_id",
                 "signature", "vectors")

    def __init__(self, entries: list[IndexEntry], live: dict[str, int], model_id: str | None,
                 dim: int, vectors: Matrix, entries_bytes: int, signature: Signature,
                 generation: int) -> None:
        self.entries = entries
        self.live = live  # tool_id -> row, in the order of each tool's newest row
        self.model_id = model_id
        self.dim = dim
        self.vectors = vectors
        self.entries_bytes = entries_bytes
        self.signature = signature
        self.generation = generation
        self._view: tuple[list[IndexEntry], Matrix] | None = None

    def view(self) -> tuple[list[IndexEntry], Matrix]:
        """The live rows and their vectors, in row order (computed once; a race computes
        the same value twice, harmlessly)."""
        if self._view is None:
            rows = sorted(self.live.values())
            matrix = np.ascontiguousarray(self.vectors[rows]) if rows else \
                np.zeros((0, self.dim), dtype=np.float32)
            self._view = ([self.entries[r] for r in rows], matrix)
        return self._view


#: (size, inode, mtime) of each file: a rename (compaction) or a rewrite changes it even
#: when the sizes happen to come out equal.
Signature = tuple[tuple[int, int, int], ...]
_FILES = ("entries.jsonl", "vectors.f32", "manifest.json")


@contextmanager
def _writers_lock(root: Path) -> Iterator[None]:
    """The advisory exclusive lock on `root/.lock` that orders a store's writers."""
    with flocked(root / ".lock", mode=0o644):
        yield


#: The longest line of `entries.jsonl` read; a longer one reads like a torn line.
MAX_ENTRY_LINE = 64 << 20


def _lines(path: Path, most: int) -> Iterator[bytes]:
    """Up to ``most`` newline-terminated lines of ``path`` (only those are complete), one
    at a time, each at most ``MAX_ENTRY_LINE`` long: a file grown to gigabytes is never
    read whole, and whatever follows a torn or overlong line is never read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        for _ in range(most):
            line = f.readline(MAX_ENTRY_LINE + 1)
            if not line.endswith(b"\n"):
                return
            yield line[:-1]


def _unlink_files(root: Path) -> None:
    for name in _FILES:
        (root / name).unlink(missing_ok=True)


def discard_files(root: Path) -> None:
    """Delete a store's files under its writers' lock, for a store whose files cannot even
    be opened (a torn manifest: only a cache, to be made again)."""
    with _writers_lock(root):
        _unlink_files(root)


class _RowsReader:
    """The reading half of a `VectorStore` over one published `_Rows` (``self._rows``):
    the same for every place rows are kept."""

    _rows: _Rows

    @property
    def model_id(self) -> str | None:
        return self._rows.model_id

    @property
    def dim(self) -> int:
        return self._rows.dim

    @property
    def generation(self) -> int:
        return self._rows.generation

    def __len__(self) -> int:
        return len(self._rows.live)

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self._rows.live

    def get(self, tool_id: str) -> IndexEntry | None:
        rows = self._rows
        row = rows.live.get(tool_id)
        return None if row is None else rows.entries[row]

    def vector(self, tool_id: str) -> Matrix:
        rows = self._rows
        out: Matrix = rows.vectors[rows.live[tool_id]].copy()
        return out

    def live(self) -> list[IndexEntry]:
        """The newest row of each tool, in row order."""
        return self._rows.view()[0]

    def matrix(self) -> Matrix:
        """The live rows' vectors, in the order of `live()`."""
        return self._rows.view()[1]

    def view(self) -> tuple[int, list[IndexEntry], Matrix]:
        """`generation`, `live()` and `matrix()` of one and the same state."""
        rows = self._rows
        entries, matrix = rows.view()
        return rows.generation, entries, matrix

    def nearest(self, query: Matrix, k: int) -> list[tuple[IndexEntry, float]]:
        entries, matrix = self._rows.view()
        if not entries:
            return []
        scores = matrix @ query
        return [(entries[i], float(scores[i])) for i in top_indices(scores, k)]


class FileVectorStore(_RowsReader):
    """Append-only float32 rows on local disk, searched by one matrix-vector product.

    Safe for many threads and processes: writers hold a thread lock and an exclusive
    `flock` on `.lock` and re-read the files under it before appending; readers load under
    a shared `flock` (never between a compaction's two renames) and publish what they
    read as one immutable `_Rows`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._mutex = threading.RLock()  # one writer or loader per process at a time
        self._generations = 0  # bumped on every change, so views know to rebuild
        with self._mutex:
            self._rows = self._read_shared()

    def refresh(self) -> bool:
        """Pick up rows another process appended (or a compaction); True if anything changed."""
        if self._disk_signature() == self._rows.signature:
            return False
        with self._mutex:
            if self._disk_signature() == self._rows.signature:
                return False  # another thread of this process loaded it meanwhile
            self._rows = self._read_shared()
            return True

    # -- writing ------------------------------------------------------------------------
    def append(self, items: Sequence[tuple[str, str, str]], vectors: Matrix,
               model_id: str) -> None:
        """Append `(tool_id, fingerprint, text)` rows with their vectors (one model only)."""
        checked = checked_rows(items, vectors)
        if checked is None:
            return
        vectors = checked
        with self.locked():
            rows = self._reload_locked()
            if rows.model_id is None:
                self._start(model_id, int(vectors.shape[1]))
                rows = self._reload_locked()
            elif model_id != rows.model_id:
                raise ModelMismatch(
                    f"index at {self.root} holds vectors from {rows.model_id}, not "
                    f"{model_id}; rebuild it with reindex()")
            if vectors.shape[1] != rows.dim:
                raise ValueError(
                    f"vectors have dimension {vectors.shape[1]}, index has {rows.dim}")
            first = len(rows.entries)
            new = [IndexEntry(first + i, tool_id, fp, text, model_id)
                   for i, (tool_id, fp, text) in enumerate(items)]
            self._cut_torn_tails(rows)
            with open(self.root / "vectors.f32", "ab") as f:
                f.write(vectors.tobytes())
                f.flush()
                os.fsync(f.fileno())
            lines = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in new)
            with open(self.root / "entries.jsonl", "a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())
            live = dict(rows.live)
            for e in new:
                live.pop(e.tool_id, None)  # re-insert so order follows the newest row
                live[e.tool_id] = e.row
            self._rows = _Rows(
                [*rows.entries, *new], live, rows.model_id, rows.dim,
                np.concatenate([rows.vectors, vectors]) if first else vectors.astype(np.float32),
                rows.entries_bytes + len(lines.encode("utf-8")), self._disk_signature(),
                self._next_generation())
            if first + len(new) > 2 * len(live) + 64:
                self._compact_locked()

    def compact(self) -> None:
        """Rewrite the files keeping only live rows (atomically, by rename)."""
        with self.locked():
            self._reload_locked()
            self._compact_locked()

    def clear(self) -> None:
        """Forget every row (before a re-embedding with another model)."""
        with self.locked():
            _unlink_files(self.root)
            self._rows = self._read()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time across threads and processes (this process's lock, then an
        advisory exclusive lock on `.lock`)."""
        with self._mutex:
            self.root.mkdir(parents=True, exist_ok=True)
            with _writers_lock(self.root):
                yield

    # -- internals ----------------------------------------------------------------------
    def _next_generation(self) -> int:
        self._generations += 1
        return self._generations

    def _reload_locked(self) -> _Rows:
        """The current rows, re-read if the files changed (the exclusive lock is held)."""
        if self._disk_signature() != self._rows.signature:
            self._rows = self._read()
        return self._rows

    def _compact_locked(self) -> None:
        live, vectors = self._rows.view()
        entries = [IndexEntry(i, e.tool_id, e.fingerprint, e.text, e.model_id)
                   for i, e in enumerate(live)]
        tmp_v, tmp_e = self.root / "vectors.f32.tmp", self.root / "entries.jsonl.tmp"
        create_new(tmp_v, np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        create_new(tmp_e, "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in entries))
        os.replace(tmp_v, self.root / "vectors.f32")
        os.replace(tmp_e, self.root / "entries.jsonl")
        self._rows = self._read()

    def _start(self, model_id: str, dim: int) -> None:
        manifest = {"model_id": model_id, "dim": dim, "format": 1}
        replace_file(self.root / "manifest.json", json.dumps(manifest, sort_keys=True))

    def _read_shared(self) -> _Rows:
        """`_read` under a shared lock, so no writer is between a compaction's renames."""
        if not (self.root / "manifest.json").exists():
            return self._read()  # nothing to be consistent with (and no directory to lock)
        with ExitStack() as held:
            try:
                held.enter_context(flocked(self.root / ".lock", shared=True, mode=0o644))
            except UnsafeFile:  # a planted link or FIFO: refused, not read around
                raise
            except OSError:  # a read-only index: nobody can be writing it
                pass
            return self._read()

    def _read(self) -> _Rows:
        """The files as they are now (call with a lock held: shared or exclusive)."""
        signature = self._disk_signature()
        for name in _FILES:  # appends and truncations write in place: never through a link
            try:
                st = (self.root / name).lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise RetrievalError(
                    f"{self.root / name} is not a plain file of this index (a link, directory "
                    f"or device); refusing to read or write through it")
        empty = np.zeros((0, 0), dtype=np.float32)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.exists():
            return _Rows([], {}, None, 0, empty, 0, signature, self._next_generation())
        try:  # about a hundred bytes; huge, not UTF-8 or not an object: rebuild
            manifest = read_json_file(manifest_path, 1 << 20) or {}
            model_id, dim = str(manifest["model_id"]), int(manifest["dim"])
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise RetrievalError(
                f"{manifest_path} is unreadable ({err}); delete {self.root} and search again "
                "to rebuild the index from the store") from err
        if dim <= 0:
            raise RetrievalError(f"{manifest_path} names dimension {dim}")
        vec_path = self.root / "vectors.f32"
        rows_on_disk = vec_path.stat().st_size // (4 * dim) if vec_path.exists() else 0
        entries: list[IndexEntry] = []
        live: dict[str, int] = {}
        entries_bytes = 0
        for line in _lines(self.root / "entries.jsonl", rows_on_disk):
            try:
                e = IndexEntry(**json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
                break  # a torn last line: everything before it is intact
            if type(e.row) is not int or e.row != len(entries) or e.row >= rows_on_disk or \
                    not all(isinstance(v, str) for v in (e.tool_id, e.fingerprint, e.text,
                                                         e.model_id)):
                break  # valid JSON of the wrong types reads like a torn line
            entries_bytes += len(line) + 1
            entries.append(e)
            live.pop(e.tool_id, None)
            live[e.tool_id] = e.row
        n = len(entries)
        # only the rows the entries name: a file grown to gigabytes is never read whole
        raw = np.fromfile(vec_path, dtype="<f4", count=n * dim) if n else np.zeros(0, "<f4")
        vectors = raw.reshape(n, dim).astype(np.float32)
        return _Rows(entries, live, model_id, dim, vectors, entries_bytes, signature,
                     self._next_generation())

    def _disk_signature(self) -> Signature:
        out = []
        for name in _FILES:
            try:
                st = (self.root / name).stat()
            except FileNotFoundError:
                out.append((-1, -1, -1))
            else:
                out.append((st.st_size, st.st_ino, st.st_mtime_ns))
        return tuple(out)

    def _cut_torn_tails(self, rows: _Rows) -> None:
        """Drop bytes past the last complete row, so the next append lines up."""
        for name, size in (("entries.jsonl", rows.entries_bytes),
                           ("vectors.f32", len(rows.entries) * rows.dim * 4)):
            path = self.root / name
            if path.exists() and path.stat().st_size > size:
                os.truncate(path, size)
