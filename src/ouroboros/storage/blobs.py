"""Content-addressed blob store on the file system."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobNotFound(KeyError):
    pass


class BlobStore:
    """Blobs named by ``sha256:<hex>`` of their bytes, written atomically (temp + rename),
    so a crash never leaves a partial blob under a valid name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
            raise ValueError(f"not a sha256 content hash: {digest!r}")
        return self.root / hexd[:2] / hexd[2:]

    def put(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {digest} is corrupt on disk")
        return data

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()
