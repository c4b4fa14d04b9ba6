"""The JSON of checkpoints and Merkle proofs, one shape for every interface.

``ouro proof … --json``, the HTTP API (``/api/v1/checkpoint``, ``/api/v1/proofs/…``) and
the MCP resources (``ouro://checkpoint``, ``ouro://proofs/…``) all answer these dicts, so
a proof fetched one way checks the same as a proof fetched another. Each carries the
log's verifier key (``vkey``) for convenience; a careful third party checks against a key
it obtained out of band (``ouro proof check --vkey``), never only the one in the answer.
"""

from __future__ import annotations

import base64
from typing import Any

from ouroboros.kernel.note import Checkpoint, Verifier
from ouroboros.kernel.proofs import ConsistencyProof, InclusionProof


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in items]


def checkpoint_json(note: bytes, verifier: Verifier) -> dict[str, Any]:
    """A signed checkpoint (checked against ``verifier``): its fields, and the note verbatim."""
    checkpoint = Checkpoint.open(note, verifier)
    return {"origin": checkpoint.origin, "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root).decode(), "head": checkpoint.head,
            "note": note.decode(), "vkey": verifier.vkey()}


def inclusion_json(proof: InclusionProof, verifier: Verifier) -> dict[str, Any]:
    """``ouro proof inclusion --json``; ``file`` is the C2SP proof file `ouro proof check` reads."""
    return {"index": proof.index, "proof": _b64(proof.hashes), "vkey": verifier.vkey(),
            "event": base64.b64encode(proof.body).decode(),
            "checkpoint": proof.checkpoint.decode(), "file": proof.encode().decode()}


def consistency_json(proof: ConsistencyProof, verifier: Verifier) -> dict[str, Any]:
    """``ouro proof consistency --json``: ``old`` and ``new`` are the sizes the two signed
    checkpoints carry (``new`` resolved when the caller left it to the latest)."""
    old = Checkpoint.open(proof.old, verifier).size
    new = Checkpoint.open(proof.new, verifier).size
    return {"old": old, "new": new, "proof": _b64(proof.hashes), "vkey": verifier.vkey(),
            "old_checkpoint": proof.old.decode(), "new_checkpoint": proof.new.decode(),
            "file": proof.encode().decode()}
