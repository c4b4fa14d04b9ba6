"""RFC 6962 Merkle tree hashes, computed incrementally for ledger checkpoints."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 defines it (reference, recursive)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


@dataclass
class MerkleAccumulator:
    """The roots of the perfect subtrees covering the leaves so far (a compact range):
    O(log n) memory, O(1) amortised per leaf, and the same root as ``merkle_root``."""

    size: int = 0
    stack: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, data: bytes) -> None:
        self.append_leaf(leaf_hash(data))

    def append_leaf(self, leaf: bytes) -> None:
        """Append a leaf whose RFC 6962 leaf hash was computed elsewhere."""
        h, height = leaf, 0
        while self.stack and self.stack[-1][0] == height:
            _, left = self.stack.pop()
            h, height = node_hash(left, h), height + 1
        self.stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return hashlib.sha256(b"").digest()
        acc = self.stack[-1][1]
        for _, h in reversed(self.stack[:-1]):
            acc = node_hash(h, acc)
        return acc

    def copy(self) -> MerkleAccumulator:
        return MerkleAccumulator(self.size, list(self.stack))

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "stack": [[h, d.hex()] for h, d in self.stack]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MerkleAccumulator:
        stack = data["stack"]
        assert isinstance(stack, list)
        size = data["size"]
        assert isinstance(size, int)
        return cls(size, [(int(h), bytes.fromhex(d)) for h, d in stack])
