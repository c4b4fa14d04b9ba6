"""The blob protocol the skill store needs.

`ouroboros.storage.blobs.BlobStore` (the workspace's `rt.blobs`) satisfies it; a stand-alone
store keeps its own one under its root.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


def blob_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Blobs(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes: ...
