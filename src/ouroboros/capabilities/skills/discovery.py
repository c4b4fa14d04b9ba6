"""Keeping the retrieval index in step with the skill store.

The store owns versions; the index (under `<store root>/index/`) owns their vectors. After
a tool is added or mutated, `index_version` embeds just that version's document (its
description, field names, visible examples and any LLM-written queries: see
retrieval/documents.py), records the vector and model id beside it (`embedding.vec`,
meta.json `embedding_model`) and appends it to the index; `sync_index` catches up, in one
batch, with tools added by other processes (`ouro tool add`) or before retrieval existed.
Neither re-embeds a version that is already current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .embedding import Embedder
from .retrieval import SkillIndex
from .retrieval.documents import document_for_version, document_text
from .retrieval.synthetic import read_synthetic
from .retrieval.vectors import VectorStore


class IndexedStore(Protocol):
    root: Path

    def list(self) -> list[Any]: ...

    def set_embedding(self, tool_id: str, fingerprint: str, vector: bytes, model: str
                      ) -> None: ...


def index_dir(store_root: Path) -> Path:
    return Path(store_root) / "index"


def vector_store_for(store_root: Path) -> VectorStore | None:
    """Where the index's vectors live: the ledger's PostgreSQL schema for a workspace whose
    ledger is there (every host searches the same rows), else files under the index folder
    (None). A skill store outside a workspace keeps files."""
    from ouroboros.kernel.errors import WorkspaceMissing
    from ouroboros.kernel.workspace import Workspace

    try:
        url = Workspace.load(Path(store_root).parent).ledger_url
    except WorkspaceMissing:
        return None
    if url is None:
        return None
    from ouroboros.storage.postgres.url import for_workspace

    from .retrieval.pgvectors import PostgresVectorStore

    return PostgresVectorStore(for_workspace(url))


def open_index(store: IndexedStore, embedder: Embedder | None = None) -> SkillIndex:
    """The store's index; rebuilt from its stored texts if the model changed (for example
    after an upgrade of the model package), since vectors of two models never mix."""
    index = SkillIndex(index_dir(store.root), embedder, store=vector_store_for(store.root))
    if index.model_id is not None and index.model_id != index.embedder.model_id:
        index.reindex()
    return index


def version_text(index: SkillIndex, version: Any) -> str:
    """The document a version is indexed by (visible test cases only)."""
    synthetic = read_synthetic(index.root, version.tool_id, version.fingerprint)
    return document_text(document_for_version(version, synthetic))


def index_version(store: IndexedStore, index: SkillIndex, version: Any) -> None:
    """Embed one version (if not already current) and attach its vector to the version."""
    entry = index.get(version.tool_id)
    text = version_text(index, version)
    if entry is not None and entry.fingerprint == version.fingerprint and entry.text == text \
            and version.meta.get("embedding_model") == index.model_id:
        return
    index.add(version.tool_id, version.fingerprint, text)
    _attach(store, index, version)


def sync_index(store: IndexedStore, index: SkillIndex) -> int:
    """Index every current tool version the index lacks, in one batch; returns how many."""
    current = store.list()
    stale = []
    for v in current:
        entry = index.get(v.tool_id)
        text = version_text(index, v)
        if entry is None or entry.fingerprint != v.fingerprint or entry.text != text:
            stale.append((v, text))
    if stale:
        index.add_many([(v.tool_id, v.fingerprint, text) for v, text in stale])
    for v in current:
        if v.meta.get("embedding_model") != index.model_id and v.tool_id in index:
            _attach(store, index, v)
    return len(stale)


def _attach(store: IndexedStore, index: SkillIndex, version: Any) -> None:
    assert index.model_id is not None
    vector = np.ascontiguousarray(index.vector(version.tool_id), dtype="<f4").tobytes()
    store.set_embedding(version.tool_id, version.fingerprint, vector, index.model_id)
