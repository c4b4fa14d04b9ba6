"""Hybrid skill retrieval: dense embeddings fused with BM25 by reciprocal rank fusion.

Small dense models alone lose to BM25 on tool retrieval (ToolRet: BM25 NDCG@10 22.3,
all-MiniLM-L6-v2 16.3), while each finds tools the other misses, so the two rankings are
fused (RRF, Cormack et al. 2009) rather than trusted alone.

On disk (`root/`), append-only so adding one tool never re-embeds the others:

- `vectors.f32`: row-major little-endian float32, one L2-normalised row per entry;
- `entries.jsonl`: one line per row `{row, tool_id, fingerprint, text, model_id}`, written
  after its vector, so a torn write leaves a vector without an entry, which loading drops;
- `manifest.json`: the model id and dimension the rows were made with.

A newer version of a tool appends a row that supersedes the old one; the old row stays on
disk until `compact()`. BM25 statistics depend on the whole corpus, so the BM25 side is
rebuilt from the stored tokens (no model involved, milliseconds) on the first search after
a change.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import bm25s
import numpy as np

from .embedding import Embedder, Matrix, default_embedder
from .ranking import RRF_K, rrf, tokenize, tool_text, top_indices

__all__ = ["MODES", "ModelMismatch", "RetrievalError", "SearchHit", "SkillIndex", "rrf",
           "tokenize", "tool_text", "top_indices"]

Mode = Literal["fused", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("fused", "dense", "bm25")
CANDIDATE_DEPTH = 50


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


@dataclass(frozen=True)
class SearchHit:
    tool_id: str
    fingerprint: str
    score: float
    dense_rank: int | None
    bm25_rank: int | None
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SkillIndex:
    """A persistent hybrid index with one live row per tool (its newest version)."""

    def __init__(self, root: Path, embedder: Embedder | None = None) -> None:
        self.root = Path(root)
        self._embedder = embedder
        self._entries: list[IndexEntry] = []  # every row on disk, by row number
        self._live: dict[str, int] = {}  # tool_id -> row
        self._model_id: str | None = None
        self._dim = 0
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._dirty = True  # dense and BM25 views must be rebuilt
        self._live_rows: list[int] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._bm25: bm25s.BM25 | None = None
        self._tokens: dict[int, list[str]] = {}  # row -> BM25 tokens, so a rebuild is cheap
        self._load()

    # -- properties -------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = default_embedder()
        return self._embedder

    @property
    def model_id(self) -> str | None:
        return self._model_id

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, tool_id: object) -> bool:
        return tool_id in self._live

    def entries(self) -> list[IndexEntry]:
        """The live entries (newest version of each tool), in insertion order."""
        return [self._entries[r] for r in sorted(self._live.values())]

    def get(self, tool_id: str) -> IndexEntry | None:
        row = self._live.get(tool_id)
        return None if row is None else self._entries[row]

    def vector(self, tool_id: str) -> Matrix:
        row: Matrix = self._vectors[self._live[tool_id]].copy()
        return row

    # -- writing ----------------------------------------------------------------------
    def add(self, tool_id: str, fingerprint: str, text: str) -> IndexEntry:
        """Embed and append one tool; a no-op if this exact version is already live."""
        return self.add_many([(tool_id, fingerprint, text)])[0]

    def add_many(self, items: Sequence[tuple[str, str, str]]) -> list[IndexEntry]:
        """Embed a batch of (tool_id, fingerprint, text) and append the new ones."""
        fresh = [it for it in items if not self._is_current(it[0], it[1], it[2])]
        if fresh:
            vectors = self.embedder.embed_documents([t for _, _, t in fresh])
            self.add_vectors(fresh, vectors, self.embedder.model_id)
        return [self._entries[self._live[tool_id]] for tool_id, _, _ in items]

    def add_vectors(
        self, items: Sequence[tuple[str, str, str]], vectors: Matrix, model_id: str
    ) -> None:
        """Append rows whose vectors were computed elsewhere (same model only)."""
        if len(items) != len(vectors):
            raise ValueError(f"{len(items)} items but {len(vectors)} vectors")
        for tool_id, fingerprint, _ in items:
            if not tool_id or not fingerprint:
                raise ValueError("tool_id and fingerprint must be non-empty")
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._reload_if_changed()
            if self._model_id is None:
                self._start(model_id, int(vectors.shape[1]))
            elif model_id != self._model_id:
                raise ModelMismatch(
                    f"index at {self.root} holds vectors from {self._model_id}, not "
                    f"{model_id}; rebuild it with reindex()"
                )
            if vectors.shape[1] != self._dim:
                raise ValueError(
                    f"vectors have dimension {vectors.shape[1]}, index has {self._dim}")
            first = len(self._entries)
            new = [
                IndexEntry(first + i, tool_id, fp, text, model_id)
                for i, (tool_id, fp, text) in enumerate(items)
            ]
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
            self._dirty = True
            self._signature = self._disk_signature()
            if len(self._entries) > 2 * len(self._live) + 64:
                self._compact_locked()

    def compact(self) -> None:
        """Rewrite the files keeping only live rows (atomically, by rename)."""
        with self._locked():
            self._reload_if_changed()
            self._compact_locked()

    def _compact_locked(self) -> None:
        live = self.entries()
        vectors = self._vectors[[e.row for e in live]] if live else self._vectors[:0]
        entries = [IndexEntry(i, e.tool_id, e.fingerprint, e.text, e.model_id)
                   for i, e in enumerate(live)]
        tmp_v, tmp_e = self.root / "vectors.f32.tmp", self.root / "entries.jsonl.tmp"
        tmp_v.write_bytes(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        tmp_e.write_text("".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in entries),
                         encoding="utf-8")
        os.replace(tmp_v, self.root / "vectors.f32")
        os.replace(tmp_e, self.root / "entries.jsonl")
        self._load()

    def reindex(self) -> None:
        """Re-embed every live entry with the current model (after a model change)."""
        live = self.entries()
        with self._locked():
            for name in ("vectors.f32", "entries.jsonl", "manifest.json"):
                (self.root / name).unlink(missing_ok=True)
            self._load()
        self.add_many([(e.tool_id, e.fingerprint, e.text) for e in live])

    # -- searching --------------------------------------------------------------------
    def search(self, query: str, k: int = 5, mode: Mode = "fused") -> list[SearchHit]:
        """The k best tools for a natural-language query."""
        if not query.strip():
            raise ValueError("the query is empty")
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self._live:
            return []
        self._reload_if_changed()
        self._check_model()
        qvec = self.embedder.embed_query(query) if mode != "bm25" else None
        return self.search_prepared(qvec, tokenize([query])[0], k, mode)

    def search_prepared(
        self, qvec: Matrix | None, qtokens: list[str], k: int = 5, mode: Mode = "fused"
    ) -> list[SearchHit]:
        """Search with the query already embedded and tokenised (the timed part)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not self._live:
            return []
        self._refresh()
        depth = max(k, CANDIDATE_DEPTH)
        dense: list[int] = []
        lexical: list[int] = []
        if mode != "bm25":
            if qvec is None:
                raise ValueError("dense search needs a query vector")
            dense = top_indices(self._matrix @ qvec, depth)
        if mode != "dense":
            lexical = self._bm25_top(qtokens, depth)
        if mode == "dense":
            order = dense[:k]
        elif mode == "bm25":
            order = lexical[:k]
        else:
            fused = rrf([dense, lexical])
            dense_pos = {i: r for r, i in enumerate(dense)}
            # ties (one retriever's #1 is the other's #2 and vice versa) go to the dense side
            order = sorted(fused, key=lambda i: (-fused[i], dense_pos.get(i, depth)))[:k]
        if mode == "fused":
            scores = rrf([dense, lexical])
        else:
            scores = {i: 1.0 / (RRF_K + r) for r, i in enumerate(order, start=1)}
        dense_rank = {i: r for r, i in enumerate(dense, start=1)}
        bm25_rank = {i: r for r, i in enumerate(lexical, start=1)}
        hits = []
        for i in order:
            e = self._entries[self._live_rows[i]]
            hits.append(SearchHit(e.tool_id, e.fingerprint, round(scores[i], 6),
                                  dense_rank.get(i), bm25_rank.get(i), e.text))
        return hits

    def _bm25_top(self, qtokens: list[str], depth: int) -> list[int]:
        assert self._bm25 is not None
        vocab = self._bm25.vocab_dict
        known = [t for t in qtokens if t in vocab]
        if not known:
            return []
        scores = self._bm25.get_scores(known)
        return [i for i in top_indices(scores, depth) if scores[i] > 0.0]

    # -- internals --------------------------------------------------------------------
    def _is_current(self, tool_id: str, fingerprint: str, text: str) -> bool:
        row = self._live.get(tool_id)
        if row is None:
            return False
        e = self._entries[row]
        return e.fingerprint == fingerprint and e.text == text and e.model_id == self._model_id

    def _check_model(self) -> None:
        if self._model_id is not None and self.embedder.model_id != self._model_id:
            raise ModelMismatch(
                f"index at {self.root} was built with {self._model_id} but the loaded model "
                f"is {self.embedder.model_id}; rebuild it with reindex()"
            )

    def _start(self, model_id: str, dim: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"model_id": model_id, "dim": dim, "format": 1}
        tmp = self.root / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.root / "manifest.json")
        self._model_id, self._dim = model_id, dim
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def _load(self) -> None:
        self._entries, self._live, self._dirty, self._tokens = [], {}, True, {}
        self._entries_bytes = 0
        self._signature = self._disk_signature()
        self._model_id, self._dim = None, 0
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.exists():
            return
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self._model_id, self._dim = str(manifest["model_id"]), int(manifest["dim"])
        vec_path = self.root / "vectors.f32"
        raw = np.fromfile(vec_path, dtype="<f4") if vec_path.exists() else np.zeros(0, "<f4")
        rows_on_disk = raw.size // self._dim
        entries_path = self.root / "entries.jsonl"
        text = entries_path.read_text(encoding="utf-8") if entries_path.exists() else ""
        lines = text.split("\n")[:-1]  # only newline-terminated lines are complete
        for line in lines:
            try:
                e = IndexEntry(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                break  # a torn last line: everything before it is intact
            if e.row != len(self._entries) or e.row >= rows_on_disk:
                break
            self._entries_bytes += len(line.encode("utf-8")) + 1
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

    def _reload_if_changed(self) -> None:
        """Pick up rows another process appended (or a compaction) since we last looked."""
        if self._disk_signature() != self._signature:
            self._load()

    def _cut_torn_tails(self) -> None:
        """Drop bytes past the last complete row, so the next append lines up."""
        for name, size in (("entries.jsonl", self._entries_bytes),
                           ("vectors.f32", len(self._entries) * self._dim * 4)):
            path = self.root / name
            if path.exists() and path.stat().st_size > size:
                os.truncate(path, size)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (an advisory lock on `.lock`)."""
        with open(self.root / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._live_rows = sorted(self._live.values())
        self._matrix = np.ascontiguousarray(self._vectors[self._live_rows])
        missing = [r for r in self._live_rows if r not in self._tokens]
        for r, toks in zip(missing, tokenize([self._entries[r].text for r in missing]), strict=True):
            self._tokens[r] = toks
        corpus = [self._tokens[r] for r in self._live_rows]
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        self._bm25 = bm25
        self._dirty = False
