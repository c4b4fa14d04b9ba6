"""The telemetry sanitizer (capabilities/improve/intake/sanitizer.py).

Invariant: ``Sanitizer.text`` never raises on any bytes, its output is storable UTF-8
without format characters, and it is idempotent: sanitize(sanitize(x)) == sanitize(x).
"""

from __future__ import annotations

import json
import unicodedata

from _harness import fixture_lines, fuzz, instrumented

with instrumented(__name__):
    from ouroboros.capabilities.improve.intake.sanitizer import Sanitizer

SANITIZER = Sanitizer()


def seeds() -> list[bytes]:
    out = [b"redis://default:s3cretPassw0rd@cache.internal:6379/0 refused",
           b"password\t14:3214:3214:32", "-u\"\"\u0430%40\"ghp_14:32-p".encode(),
           b"see /home/alice/.ssh/id_rsa and https://intranet.example/x?token=abc",
           b"card 4111 1111 1111 1111, mail bob@example.com, ip 10.1.2.3"]
    for line in fixture_lines("tests/security/data/secrets/corpus.jsonl", 15):
        row = json.loads(line)
        out += [v.encode() for v in row.values() if isinstance(v, str)][:2]
    return out


def test_one(data: bytes) -> None:
    once = SANITIZER.text(data)
    once.encode("utf-8")
    assert not any(unicodedata.category(c) == "Cf" for c in once), once
    assert SANITIZER.text(once) == once, (data, once, SANITIZER.text(once))


if __name__ == "__main__":
    fuzz(test_one)
