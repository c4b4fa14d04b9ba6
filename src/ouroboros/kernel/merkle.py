"""RFC 6962 Merkle tree hashes (computed incrementally for ledger checkpoints) and the
RFC 6962 / RFC 9162 inclusion and consistency proofs over them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
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


# --------------------------------------------------------------------------- proofs
# RFC 6962 §2.1.1-2.1.2 define the proofs as lists of subtree hashes MTH(D[lo:hi]); the
# ranges depend only on the sizes, so they are planned first and hashed in one streaming
# pass over the leaves (O(log n) memory however long the ledger is).

Range = tuple[int, int]


class ProofError(ValueError):
    """A proof that does not verify, or arguments no proof can exist for."""


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes make ``PATH(index, D[size])``, leaf sibling first."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    out: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The subtrees whose hashes make ``PROOF(old, D[new])`` (RFC 6962 §2.1.2)."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    out: list[Range] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    out.reverse()
    return out


class RangeHasher:
    """MTH of each of a set of disjoint ranges, fed leaf hashes in index order (any
    leaves outside the ranges are skipped): one pass, one accumulator at a time."""

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges
        self._order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        self._out: list[bytes | None] = [None] * len(ranges)
        self._pos = 0
        self._acc = MerkleAccumulator()

    def add(self, index: int, leaf: bytes) -> None:
        order = self._order
        while self._pos < len(order) and index >= self.ranges[order[self._pos]][1]:
            self._pos += 1  # a range the leaves skipped past stays unhashed (an error)
        if self._pos == len(order):
            return
        lo, hi = self.ranges[order[self._pos]]
        if index < lo:
            return
        self._acc.append_leaf(leaf)
        if index == hi - 1:
            self._out[order[self._pos]] = self._acc.root()
            self._acc = MerkleAccumulator()
            self._pos += 1

    def hashes(self) -> list[bytes]:
        missing = [self.ranges[i] for i, h in enumerate(self._out) if h is None]
        if missing:
            raise ProofError(f"the leaves end before subtree {missing[0][0]}..{missing[0][1] - 1}")
        return [h for h in self._out if h is not None]


def hash_ranges(ranges: list[Range], leaves: Iterable[tuple[int, bytes]]) -> list[bytes]:
    """MTH of each (disjoint) range, from ``(index, leaf hash)`` pairs in index order."""
    hasher = RangeHasher(ranges)
    last = max((hi for _, hi in ranges), default=0)
    for index, leaf in leaves:
        if index >= last:
            break
        hasher.add(index, leaf)
    return hasher.hashes()


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != 32:
        raise ProofError(f"{what} is {len(h)} bytes, not a SHA-256 hash")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or ``ProofError``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    _check_hash(leaf, "the leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "a proof hash")
        if sn == 0:
            raise ProofError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes],
                     root: bytes) -> None:
    """Raise ``ProofError`` unless ``leaf`` is at ``index`` in the tree with ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError(f"the inclusion proof of leaf {index} does not lead to the root "
                         f"of the tree of size {size}")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes,
                       proof: list[bytes]) -> None:
    """Raise ``ProofError`` unless the tree of size ``old`` with ``old_root`` is a prefix of
    the tree of size ``new`` with ``new_root`` (RFC 9162 §2.1.4.2)."""
    if new < old:
        raise ProofError(f"size {new} is smaller than size {old}: a log never shrinks")
    if old == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if old == new:
        if proof:
            raise ProofError("two trees of one size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the tree of size {old}")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    for h in (old_root, new_root, *proof):
        _check_hash(h, "a root or proof hash")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is itself a subtree of the new
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"the consistency proof does not lead to the old root (size {old})")
    if sr != new_root:
        raise ProofError(f"the consistency proof does not lead to the new root (size {new})")
