"""Signed patches as DSSE envelopes (the in-toto / Sigstore envelope).

The envelope type and its pre-authentication encoding come from securesystemslib, the
field's own implementation; signatures are always made and checked over ``pae()``, never
over the bare payload.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ouroboros.kernel.errors import InvalidPatch
from ouroboros.kernel.keys import Signer, verify_signature

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer._signature import Signature

PAYLOAD_TYPE = "application/vnd.ouroboros.patch+json"


def new_envelope(payload: bytes) -> Envelope:
    return _classes()[0](payload=payload, payload_type=PAYLOAD_TYPE, signatures={})


@functools.cache
def _classes() -> tuple[type[Envelope], type[Signature]]:
    """securesystemslib's envelope and signature types, imported on first use (reading
    state needs no envelope) and then kept: an import statement in a function costs a
    module lookup on every call, and every submit makes an envelope and signs it."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer._signature import Signature

    return Envelope, Signature


#: Signatures this process made: (public key, signature, sha256 of the PAE). Ed25519 is
#: deterministic and verification a pure function of those three, so an entry is exactly a
#: signature verification would accept, and the signature gate skips the curve arithmetic
#: (about 60 us, the largest single cost of a submit) for what the runtime signed itself.
#: An envelope signed elsewhere, or changed by a single byte, misses and is verified in full.
_SIGNED_HERE: OrderedDict[tuple[str, str, bytes], None] = OrderedDict()
_SIGNED_HERE_MAX = 1024


def sign_envelope(envelope: Envelope, signer: Signer) -> None:
    """Add (or replace) ``signer``'s signature."""
    pae = envelope.pae()
    sig = signer.sign(pae).hex()
    envelope.signatures[signer.key_id] = _classes()[1](keyid=signer.key_id, sig=sig)
    _SIGNED_HERE[(signer.public_hex, sig, hashlib.sha256(pae).digest())] = None
    if len(_SIGNED_HERE) > _SIGNED_HERE_MAX:
        _SIGNED_HERE.popitem(last=False)


def envelope_to_dict(envelope: Envelope) -> dict[str, Any]:
    """The envelope's JSON form, signatures by key id: what ``Envelope.to_dict`` gives,
    sorted, built in one pass (the event of every applied patch carries it; the byte
    identity with securesystemslib's form is a test)."""
    sigs = [_signature_dict(s) for s in envelope.signatures.values()]
    if len(sigs) > 1:
        sigs.sort(key=_keyid)
    return {"payload": base64.standard_b64encode(envelope.payload).decode(),
            "payloadType": envelope.payload_type, "signatures": sigs}


def _signature_dict(sig: Signature) -> dict[str, Any]:
    data = {"keyid": sig.keyid, "sig": sig.signature, **sig.unrecognized_fields}
    data["sig"] = base64.standard_b64encode(bytes.fromhex(data["sig"])).decode()
    return data


def _keyid(sig: dict[str, Any]) -> Any:
    return sig["keyid"]


def envelope_from_dict(data: Any) -> Envelope:
    """Strictly parse an envelope; any malformation is an ``InvalidPatch``."""
    if not isinstance(data, dict):
        raise InvalidPatch("envelope must be a JSON object with payload, payloadType, signatures")
    missing = {"payload", "payloadType", "signatures"} - data.keys()
    if missing:
        raise InvalidPatch(f"envelope is missing {', '.join(sorted(missing))}")
    if not isinstance(data["signatures"], list) or not all(
        isinstance(s, dict) and isinstance(s.get("keyid"), str) and isinstance(s.get("sig"), str)
        for s in data["signatures"]
    ):
        raise InvalidPatch("envelope signatures must be a list of {keyid, sig} objects")
    if data["payloadType"] != PAYLOAD_TYPE:
        raise InvalidPatch(f"envelope payloadType must be {PAYLOAD_TYPE!r}, "
                           f"got {data['payloadType']!r}")
    from securesystemslib.dsse import Envelope

    try:
        return Envelope.from_dict(copy.deepcopy(data))
    except Exception as e:  # securesystemslib raises several types for bad base64/hex
        raise InvalidPatch(f"envelope is malformed: {e}") from e


def envelope_from_json(text: str | bytes) -> Envelope:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidPatch(f"envelope is not valid JSON: {e}") from e
    except RecursionError:  # whatever the body claimed to be: refused, not a crash
        raise InvalidPatch("envelope is not valid JSON: it nests too deeply") from None
    return envelope_from_dict(data)


@dataclass(frozen=True)
class SignatureCheck:
    valid: frozenset[str]
    invalid: frozenset[str]
    unknown: frozenset[str]


def check_signatures(envelope: Envelope, public_keys: dict[str, str]) -> SignatureCheck:
    """Classify every signature: valid, invalid (known key, bad signature) or unknown key."""
    pae = envelope.pae()
    digest = hashlib.sha256(pae).digest()
    valid: set[str] = set()
    invalid: set[str] = set()
    unknown: set[str] = set()
    for keyid, sig in envelope.signatures.items():
        public_hex = public_keys.get(keyid)
        if public_hex is None:
            unknown.add(keyid)
            continue
        if (public_hex, sig.signature, digest) in _SIGNED_HERE:
            valid.add(keyid)
            continue
        try:
            raw = bytes.fromhex(sig.signature)
        except ValueError:
            invalid.add(keyid)
            continue
        (valid if verify_signature(public_hex, raw, pae) else invalid).add(keyid)
    return SignatureCheck(frozenset(valid), frozenset(invalid), frozenset(unknown))
