"""Version identity and the atomic writes every stored file goes through."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from ouroboros.kernel import canonical_bytes, hash_bytes
from ouroboros.storage.files import create_new

from .blobs import blob_hash
from .builders import Built
from .runtimes import Runtimes
from .spec import ToolSpec

FINGERPRINT_CHARS = 16


def compute_fingerprint(spec: ToolSpec, built: Built) -> str:
    """Content identity of a version: name, description, language, every file, the runtime
    and the interpreter (or the compiled module) it runs on, over RFC 8785 bytes; for an
    LLM-made tool its origin, any capability it is granted and any schema its author declared
    (each absent otherwise, so a hand-written tool keeps the fingerprint it always had)."""
    material: dict[str, object] = {
        "name": spec.name,
        "description": spec.description,
        "language": spec.language,
        "runtime": built.runtime,
        "interpreter": built.runtime_digest,
        "wasm": blob_hash(built.wasm) if built.wasm is not None else None,
        "files": {rel: blob_hash(data) for rel, data in sorted(spec.files.items())},
    }
    if spec.origin != "operator":
        material["origin"] = spec.origin
    if spec.capabilities:
        material["capabilities"] = sorted(spec.capabilities)
    # Declared schemas are part of the version; inferred ones derive from the cases above.
    if spec.input_schema is not None:
        material["input_schema"] = spec.input_schema
    if spec.output_schema is not None:
        material["output_schema"] = spec.output_schema
    return hash_bytes(canonical_bytes(material)).split(":", 1)[1][:FINGERPRINT_CHARS]


_RUNTIMES: Runtimes | None = None


def default_runtimes() -> Runtimes:
    """One sandbox per process: engines and compiled modules are shared by every store."""
    global _RUNTIMES
    if _RUNTIMES is None:
        _RUNTIMES = Runtimes()
    return _RUNTIMES


def write_bytes(path: Path, data: bytes) -> None:
    """Temporary file then rename: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    create_new(tmp, data)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())
