"""The one canonical form (RFC 8785, JCS) and the one content hash."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from ouroboros.kernel.errors import InvalidPatch

#: Hash of the empty byte string: no canonical JSON document is empty, so this names an
#: absent target unambiguously (a JSON ``null`` value is not the same as no value).
ABSENT = "sha256:" + hashlib.sha256(b"").hexdigest()


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; non-JSON values (NaN, huge ints, bytes) are refused."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as e:
        raise InvalidPatch(f"value is not canonical JSON: {e}") from e


def hash_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_hash(value: Any) -> str:
    """``sha256:<hex>`` of the canonical bytes; ``None`` (absent) hashes to ``ABSENT``."""
    if value is None:
        return ABSENT
    return hash_bytes(canonical_bytes(value))
