"""Content-addressed blob store on the file system."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from ouroboros.storage.files import UnsafeFile, read_bounded

#: The most of a blob read back: the largest the runtime stores is a built module (the
#: build's output cap, 64 MiB by default); a planted file past this is refused unread.
MAX_BLOB = 1 << 30


class BlobNotFound(KeyError):
    pass


class BlobCorrupt(ValueError):
    """A blob's file does not hold its bytes: another hash, or a link, FIFO, device,
    folder or huge file planted under its name (never followed, waited on or read)."""


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
        if _holds(path, len(data)):  # a planted link, FIFO or huge file is replaced
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
            data = read_bounded(path, MAX_BLOB)
        except UnsafeFile as e:
            raise BlobCorrupt(f"blob {digest} is corrupt on disk: {e}") from None
        if data is None:
            raise BlobNotFound(digest)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise BlobCorrupt(f"blob {digest} is corrupt on disk")
        return data

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()


def _holds(path: Path, size: int) -> bool:
    """``path`` is a regular file of ``size`` bytes (not a link, a FIFO, another size)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size
