"""Skill retrieval: find the stored tool that does what a request asks, in milliseconds.

The public face of the package; the parts live in modules named for what they hold:
`index` (the search pipeline), `vectors` (vector storage behind a small interface),
`static` and `pieces` (the static embedding model), `lexical` (BM25 and query rewriting),
`documents` (what text a tool is indexed by), `feedback` (learning from use) and
`synthetic` (LLM-written example queries). See docs/skills-retrieval.md.
"""

from ..ranking import rrf, tokenize, top_indices
from .documents import ToolDocument, document_for_version, document_text, tool_text
from .index import MODES, FusionWeights, Mode, SearchHit, SkillIndex
from .vectors import FileVectorStore, IndexEntry, ModelMismatch, RetrievalError, VectorStore

__all__ = ["MODES", "FileVectorStore", "FusionWeights", "IndexEntry", "Mode", "ModelMismatch",
           "RetrievalError", "SearchHit", "SkillIndex", "ToolDocument", "VectorStore",
           "document_for_version", "document_text", "rrf", "tokenize", "tool_text",
           "top_indices"]
