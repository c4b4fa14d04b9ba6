"""Proof files a third party checks with nothing but the file and the log's verifier key.

An **inclusion proof** is a C2SP ``tlog-proof@v1`` file: the header line, an ``extra``
line carrying the event's body (base64; its RFC 6962 leaf hash is what the proof proves),
``index SEQ``, the proof hashes (base64, leaf sibling first), a blank line, and the
signed checkpoint it leads to, verbatim::

    c2sp.org/tlog-proof@v1
    extra eyJraW5kIjoiUGF0Y2hBcHBsaWVkIiwi...
    index 17
    gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
    ...

    ouroboros/ledger/3f2a...
    340
    sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=
    head sha256:...

    — ouroboros/ledger/3f2a... hI2DJw...

A **consistency proof** follows the same shape (C2SP has no format for it): the header
``ouroboros/tlog-consistency@v1``, the proof hashes, a blank line, then the older and
the newer signed checkpoints, verbatim, separated by a blank line. It shows the log at
the newer size extends the log at the older size without changing a byte of it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from ouroboros.kernel.canonical import hash_bytes
from ouroboros.kernel.merkle import (
    MerkleAccumulator,
    ProofError,
    RangeHasher,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ouroboros.kernel.note import Checkpoint, NoteError, Verifier, split_notes
from ouroboros.storage.ledger import StoredEvent

INCLUSION_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_HEADER = "ouroboros/tlog-consistency@v1"
_MAX_PROOF = 1 << 20


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ProofError(f"{what} is not base64") from e


@dataclass(frozen=True)
class InclusionProof:
    index: int
    body: bytes
    hashes: list[bytes]
    checkpoint: bytes

    def encode(self) -> bytes:
        lines = [INCLUSION_HEADER, f"extra {_b64(self.body)}", f"index {self.index}",
                 *map(_b64, self.hashes)]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    def check(self, verifier: Verifier) -> Checkpoint:
        """The checkpoint's signature, then the path from the event to its root."""
        cp = Checkpoint.open(self.checkpoint, verifier)
        verify_inclusion(self.index, cp.size, leaf_hash(self.body), self.hashes, cp.root)
        if self.index == cp.size - 1 and hash_bytes(self.body) != cp.head:
            raise ProofError("the event is not the checkpoint's head event")
        try:
            seq = orjson.loads(self.body)["seq"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise ProofError("the proven leaf is not a ledger event") from e
        if seq != self.index:
            raise ProofError(f"the event says seq {seq} but is proven at index {self.index}")
        return cp


@dataclass(frozen=True)
class ConsistencyProof:
    hashes: list[bytes]
    old: bytes
    new: bytes

    def encode(self) -> bytes:
        lines = [CONSISTENCY_HEADER, *map(_b64, self.hashes)]
        return ("\n".join(lines) + "\n\n").encode() + self.old + b"\n" + self.new

    def check(self, verifier: Verifier) -> tuple[Checkpoint, Checkpoint]:
        old = Checkpoint.open(self.old, verifier)
        new = Checkpoint.open(self.new, verifier)
        verify_consistency(old.size, new.size, old.root, new.root, self.hashes)
        return old, new


def parse_proof(data: bytes) -> InclusionProof | ConsistencyProof:
    """Parse either proof file; ``ProofError`` says what is malformed."""
    if len(data) > _MAX_PROOF:
        raise ProofError(f"a proof file is at most {_MAX_PROOF} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProofError("the proof file is not UTF-8") from e
    head, sep, rest = text.partition("\n\n")
    if not sep:
        raise ProofError("the proof file has no blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] == INCLUSION_HEADER:
        if len(lines) < 3 or not lines[1].startswith("extra ") or not lines[2].startswith("index "):
            raise ProofError("a tlog-proof has 'extra <event>' and 'index N' lines")
        index_text = lines[2][len("index "):]
        if not index_text.isdigit() or (index_text != "0" and index_text.startswith("0")):
            raise ProofError("the proof index is not a decimal number")
        return InclusionProof(int(index_text), _unb64(lines[1][len("extra "):], "the event"),
                              [_unb64(h, "a proof hash") for h in lines[3:]],
                              rest.encode())
    if lines[0] == CONSISTENCY_HEADER:
        try:
            notes = split_notes(rest)
        except NoteError as e:
            raise ProofError(str(e)) from e
        if len(notes) != 2:
            raise ProofError("a consistency proof holds exactly two checkpoints")
        return ConsistencyProof([_unb64(h, "a proof hash") for h in lines[1:]],
                                notes[0].encode(), notes[1].encode())
    raise ProofError(f"unknown proof format {lines[0][:60]!r} (expected {INCLUSION_HEADER} "
                     f"or {CONSISTENCY_HEADER})")


def prove_inclusion(events: Iterable[StoredEvent], seq: int, size: int,
                    checkpoint: bytes) -> InclusionProof:
    """The inclusion proof of event ``seq`` in the first ``size`` events (one pass)."""
    hasher = RangeHasher(inclusion_ranges(seq, size))
    body = b""
    for ev in events:
        hasher.add(ev.seq, leaf_hash(ev.body))
        if ev.seq == seq:
            body = ev.body
    return InclusionProof(seq, body, hasher.hashes(), checkpoint)


def prove_consistency(events: Iterable[StoredEvent], old: int, new: int,
                      sign: Callable[[int, bytes, str], bytes]) -> ConsistencyProof:
    """The consistency proof from ``old`` to ``new`` events, with a checkpoint for each
    size signed by ``sign(size, root, head hash)`` (one pass)."""
    hasher = RangeHasher(consistency_ranges(old, new))
    acc = MerkleAccumulator()
    notes: dict[int, bytes] = {}
    for ev in events:
        leaf = leaf_hash(ev.body)
        hasher.add(ev.seq, leaf)
        acc.append_leaf(leaf)
        if ev.seq + 1 in (old, new):
            notes[ev.seq + 1] = sign(acc.size, acc.root(), hash_bytes(ev.body))
    return ConsistencyProof(hasher.hashes(), notes[old], notes[new])
