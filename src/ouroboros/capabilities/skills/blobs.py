"""Content-addressed storage for tool files and WASM binaries.

The store only needs `put(bytes) -> "sha256:<hex>"` and `get(hash) -> bytes`: the kernel's
`rt.blobs` satisfies the same protocol, so a `SkillStore` inside a workspace shares the
workspace's blobs, and a stand-alone store keeps its own directory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


def blob_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes: ...


class FileBlobStore:
    """Blobs as files named by their SHA-256 under `root/sha256/ab/cdef...`.

    Writes go to a temporary file then `os.replace`, so a reader never sees half a blob and
    a crash never leaves one; reads re-hash, so a tampered blob is an error, not an input.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdef" for c in hexd):
            raise ValueError(f"not a sha256 content hash: {digest!r}")
        return self.root / "sha256" / hexd[:2] / hexd[2:]

    def put(self, data: bytes) -> str:
        digest = blob_hash(data)
        path = self.path_of(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(f"blob {digest} is not in the store") from None
        if blob_hash(data) != digest:
            raise ValueError(f"blob {digest} is corrupt: its content hashes differently")
        return data

    def has(self, digest: str) -> bool:
        return self.path_of(digest).exists()
