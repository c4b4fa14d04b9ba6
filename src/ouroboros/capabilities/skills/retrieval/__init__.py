"""Skill retrieval: find the stored tool that does what a request asks, in milliseconds.

The public face of the package; the parts live in modules named for what they hold:
`index` (the search pipeline), `vectors` (vector storage behind a small interface),
`static` and `pieces` (the static embedding model), `lexical` (BM25 and query rewriting),
`documents` (what text a tool is indexed by), `feedback` (learning from use),
`synthetic` (LLM-written example queries), `rerank` (e5 on unsure searches), `minilm` and
`semantic` (the MiniLM stage), and `linevectors` (the per-model tool vectors both keep). See docs/skills-retrieval.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ranking import rrf, tokenize, top_indices
    from .documents import ToolDocument, document_for_version, document_text, tool_text
    from .index import MODES, FusionWeights, Mode, SearchHit, SkillIndex
    from .vectors import FileVectorStore, IndexEntry, ModelMismatch, RetrievalError, VectorStore

# Names resolve on first use, so `feedback` (crediting a run after `ouro tool run`) can be
# imported without numpy and the embedding model.
_WHERE = {
    "rrf": "..ranking", "tokenize": "..ranking", "top_indices": "..ranking",
    "ToolDocument": ".documents", "document_for_version": ".documents",
    "document_text": ".documents", "tool_text": ".documents",
    "MODES": ".index", "FusionWeights": ".index", "Mode": ".index", "SearchHit": ".index",
    "SkillIndex": ".index",
    "FileVectorStore": ".vectors", "IndexEntry": ".vectors", "ModelMismatch": ".vectors",
    "RetrievalError": ".vectors", "VectorStore": ".vectors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = ["MODES", "FileVectorStore", "FusionWeights", "IndexEntry", "Mode", "ModelMismatch",
           "RetrievalError", "SearchHit", "SkillIndex", "ToolDocument", "VectorStore",
           "document_for_version", "document_text", "rrf", "tokenize", "tool_text",
           "top_indices"]
