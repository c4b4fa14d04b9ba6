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
    return _fingerprint(
        spec.name, spec.description, spec.language, built.runtime, built.runtime_digest,
        blob_hash(built.wasm) if built.wasm is not None else None,
        {rel: blob_hash(data) for rel, data in spec.files.items()},
        spec.origin, spec.capabilities, spec.input_schema, spec.output_schema,
    )


def meta_fingerprint(meta: dict[str, Any]) -> str:
    """The fingerprint a stored version's meta.json describes (its recorded hashes in place of
    the bytes), so meta.json cannot name other content than the version it sits in."""
    source = meta.get("schema_source") or {}
    return _fingerprint(
        meta["tool_id"], meta["description"], meta["language"], meta["runtime"],
        meta.get("interpreter") or "", meta.get("wasm"), dict(meta["files"]),
        str(meta.get("origin") or "operator"), tuple(meta.get("capabilities") or ()),
        meta.get("input_schema") if source.get("input") == "author" else None,
        meta.get("output_schema") if source.get("output") == "author" else None,
    )


def _fingerprint(
    name: str, description: str, language: str, runtime: str, interpreter: str,
    wasm: str | None, files: dict[str, str], origin: str, capabilities: Any,
    input_schema: Any, output_schema: Any,
) -> str:
    material: dict[str, object] = {
        "name": name,
        "description": description,
        "language": language,
        "runtime": runtime,
        "interpreter": interpreter,
        "wasm": wasm,
        "files": dict(sorted(files.items())),
    }
    if origin != "operator":
        material["origin"] = origin
    if capabilities:
        material["capabilities"] = sorted(capabilities)
    # Declared schemas are part of the version; inferred ones derive from the cases above.
    if input_schema is not None:
        material["input_schema"] = input_schema
    if output_schema is not None:
        material["output_schema"] = output_schema
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
