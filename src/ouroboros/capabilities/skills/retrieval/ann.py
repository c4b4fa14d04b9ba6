"""The dense first stage at scale: exact below a threshold, an HNSW index (usearch) above.

`SkillIndex` scores a tool by its cosine to the query minus its hub penalty (hubs.py).
Both rankers answer that same question, so the switch changes speed, not meaning:

- `BruteForce`: one matrix-vector product over every live row (exact);
- `AnnIndex`: usearch's HNSW graph over the rows *augmented* with their penalty,
  `[v, p]`, searched by inner product with `[q, -1]`, so `q·v - p` is exactly the score
  the brute force ranks by (vectors stored as float16: half the memory of float32,
  recall@10 0.99+ in bench/skills_retrieval_scale.py).

Why usearch over hnswlib (measured, docs/scale.md): the same build time and latency on
this machine at the same graph settings, half the memory with float16 rows, native
removal of superseded rows, an index file that loads without a rebuild, and wheels on
PyPI (hnswlib 0.8 compiles from source).

The index lives in `ann/` beside the vectors, each row keyed by a digest of what its vector
is made from (`row_key`: tool, fingerprint, text, model), so keys survive the store's
compaction and a key always means the same vector. A later
process loads it and applies only what changed (new rows added, superseded rows removed),
so crossing the threshold costs one build, not one per search. A pgvector store would
answer the same `top(query, depth)` in SQL with the penalty as a column.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ouroboros.storage.files import read_json_file

from ..embedding import Matrix
from ..ranking import top_indices

ANN_THRESHOLD = 50_000  # live tools at which the dense stage leaves brute force
THRESHOLD_ENV = "OURO_ANN_THRESHOLD"
CONNECTIVITY = 16  # graph degree (HNSW's M)
EXPANSION_ADD = 64  # candidates kept while inserting (HNSW's ef_construction)
EXPANSION_SEARCH = 128  # candidates kept while searching (HNSW's ef)
FORMAT = 1


class DenseIndex(Protocol):
    def top(self, query: Matrix, depth: int) -> list[int]:
        """Positions (in the live rows' order) of the `depth` best rows, best first."""
        ...


def ann_threshold(configured: int | None = None) -> int:
    """`configured`, else `$OURO_ANN_THRESHOLD`, else `ANN_THRESHOLD`."""
    if configured is not None:
        return configured
    text = os.environ.get(THRESHOLD_ENV, "").strip()
    try:
        return max(1, int(text)) if text else ANN_THRESHOLD
    except ValueError:
        return ANN_THRESHOLD


class BruteForce:
    """Exact: every row scored."""

    def __init__(self, matrix: Matrix, penalty: Matrix) -> None:
        self.matrix, self.penalty = matrix, penalty

    def top(self, query: Matrix, depth: int) -> list[int]:
        return top_indices(self.matrix @ query - self.penalty, depth)


def row_key(tool_id: str, fingerprint: str, text: str, model_id: str) -> int:
    """A 64-bit key that names one vector: the same inputs embed to the same vector."""
    digest = hashlib.blake2b("\0".join((tool_id, fingerprint, text, model_id)).encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _augment(matrix: Matrix, penalty: Matrix) -> Matrix:
    out: Matrix = np.hstack([matrix, penalty.reshape(-1, 1)]).astype(np.float32)
    return out


class AnnIndex:
    """usearch HNSW over `[v, penalty]` rows, keyed by store row (see the module doc)."""

    def __init__(self, index: Any, keys: np.ndarray[Any, Any]) -> None:
        self.index = index
        self.keys = keys
        self._position = {int(k): i for i, k in enumerate(keys)}

    @classmethod
    def build(cls, keys: Sequence[int], matrix: Matrix, penalty: Matrix) -> AnnIndex:
        from usearch.index import Index

        dim = int(matrix.shape[1]) + 1
        index = Index(ndim=dim, metric="ip", dtype="f16", connectivity=CONNECTIVITY,
                      expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        array = np.asarray(keys, dtype=np.uint64)
        if len(array):
            index.add(array, _augment(matrix, penalty), threads=os.cpu_count() or 1)
        return cls(index, array)

    @classmethod
    def sync(cls, directory: Path, tag: str, keys: Sequence[int], matrix: Matrix,
             penalty: Matrix) -> AnnIndex:
        """The saved index brought up to these rows (or built afresh), then saved."""
        wanted = np.asarray(keys, dtype=np.uint64)
        saved = _load(directory, tag, int(matrix.shape[1]) + 1)
        if saved is None:
            ann = cls.build(keys, matrix, penalty)
        else:
            index, old_keys = saved
            gone = np.setdiff1d(old_keys, wanted, assume_unique=True)
            new = np.isin(wanted, old_keys, assume_unique=True, invert=True)
            if not len(gone) and not new.any():
                return cls(index, wanted)
            try:
                if len(gone):
                    index.remove(gone)
                if new.any():
                    index.add(wanted[new], _augment(matrix[new], penalty[new]),
                              threads=os.cpu_count() or 1)
                ann = cls(index, wanted)
            except (RuntimeError, ValueError):  # the saved index was not what it said
                ann = cls.build(keys, matrix, penalty)
        ann.save(directory, tag)
        return ann

    def top(self, query: Matrix, depth: int) -> list[int]:
        if not len(self.keys):
            return []
        probe = np.append(query.astype(np.float32), np.float32(-1.0))
        found = self.index.search(probe, min(depth, len(self.keys)))
        return [self._position[int(k)] for k in found.keys if int(k) in self._position]

    def save(self, directory: Path, tag: str) -> None:
        """Index, keys and manifest, each by rename; a reader that meets a mix rebuilds."""
        directory.mkdir(parents=True, exist_ok=True)
        # Written in a fresh private folder first: no name there can have been planted
        # (usearch and numpy open by name and would follow a link).
        with tempfile.TemporaryDirectory(dir=directory, prefix=".save-") as fresh:
            tmp = Path(fresh)
            self.index.save(str(tmp / "index.usearch"))
            np.save(tmp / "keys.npy", self.keys)
            manifest = {"format": FORMAT, "tag": tag, "count": len(self.keys),
                        "dim": int(self.index.ndim)}
            (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            for name in ("keys.npy", "index.usearch", "manifest.json"):
                os.replace(tmp / name, directory / name)


def _load(directory: Path, tag: str, dim: int) -> tuple[Any, np.ndarray[Any, Any]] | None:
    """The saved index and its keys, if they belong together and to this model."""
    from usearch.index import Index

    try:  # usearch and numpy open by name: only this index's plain files are given them
        manifest = read_json_file(directory / "manifest.json", 1 << 20)
        if manifest is None or not all(_plain(directory / n) for n in ("keys.npy",
                                                                         "index.usearch")):
            return None
        if manifest.get("format") != FORMAT or manifest.get("tag") != tag or \
                manifest.get("dim") != dim:
            return None
        keys = np.load(directory / "keys.npy", allow_pickle=False).astype(np.uint64)
        index = Index.restore(str(directory / "index.usearch"))
    except (OSError, ValueError, RuntimeError, TypeError, AttributeError):
        return None
    if index is None or len(index) != len(keys) or len(keys) != manifest.get("count") or \
            int(index.ndim) != dim:
        return None
    if len(keys) and not bool(np.all(index.contains(keys))):  # keys.npy of another index
        return None
    return index, keys


def _plain(path: Path) -> bool:
    """A regular file, not a link (a FIFO would block the load, a link read elsewhere)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
