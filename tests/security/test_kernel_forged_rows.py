"""Rows a database writer adds after the head, without the runtime key: the state a
runtime serves and the events it signs must never rest on them (SQLite and PostgreSQL).

``verify`` always named such rows; these tests are about the runtime that *opens* the
ledger, or catches up with it, before anyone runs ``verify``: on PostgreSQL anyone with
write access to the schema could otherwise put any value in front of every host."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from ouroboros.kernel import IntegrityError, Runtime
from ouroboros.kernel.canonical import canonical_bytes, hash_bytes

from .kernelkit import count_events, ouro, routing, sql


def _workspace(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    routing(rt, 3)
    rt.close()
    return home


def _forge_at_head(home: Path, value: object, sig: bytes = b"\0" * 64) -> int:
    """A ``PatchApplied`` setting ``agents/a/routing`` to ``value``, linked to the head as
    the runtime would link it, but not signed by the runtime key."""
    rows = sql(home, "SELECT seq, body FROM events ORDER BY seq")
    seq, last = rows[-1][0], bytes(rows[-1][1])
    applied = [orjson.loads(bytes(b)) for _, b in rows
               if orjson.loads(bytes(b))["kind"] == "PatchApplied"][-1]
    payload = applied["payload"]
    patch = orjson.loads(base64.b64decode(payload["envelope"]["payload"]))
    patch["op"] = {"kind": "value", "value": value}
    payload["envelope"]["payload"] = base64.b64encode(orjson.dumps(patch)).decode()
    payload["patch_hash"] = "sha256:" + "ab" * 32
    body = canonical_bytes({**applied, "seq": seq + 1, "prev": hash_bytes(last),
                            "payload": payload})
    sql(home, "INSERT INTO events (seq, body, sig) VALUES (?, ?, ?)", seq + 1, body, sig)
    return int(seq) + 1


def test_an_unsigned_event_at_the_head_is_not_served_on_open(tmp_path: Path) -> None:
    home = _workspace(tmp_path)
    seq = _forge_at_head(home, {"w": "pwned"})
    with pytest.raises(IntegrityError, match=f"event {seq}: .*signature") as err:
        Runtime.open(home)
    assert err.value.seq == seq
    r = ouro("state", "agents/a/routing", home=home)
    assert r.returncode == 1 and "pwned" not in r.stdout and "Traceback" not in r.stderr


def test_a_runtime_catching_up_refuses_an_unsigned_event_and_signs_nothing_on_it(
        tmp_path: Path) -> None:
    home = _workspace(tmp_path)
    rt = Runtime.open(home)  # open before the row is forged: it learns of it by catching up
    _forge_at_head(home, {"w": "pwned"})
    n = count_events(home)
    with pytest.raises(IntegrityError, match="signature"):
        rt.value("agents/a/routing")
    with pytest.raises(IntegrityError, match="signature"):
        routing(rt, 1, start=50)
    assert count_events(home) == n  # nothing was appended on top of the forged row
    rt.close()


def test_an_old_signed_event_copied_past_the_head_is_not_folded(tmp_path: Path) -> None:
    """No key needed: a genuine, validly signed event copied to a later seq (after a gap,
    or right at the head) replays an old change; its stored seq and link give it away."""
    for where, home in (("gap", _workspace(tmp_path / "a")), ("head", _workspace(tmp_path / "b"))):
        top = int(sql(home, "SELECT max(seq) FROM events")[0][0])
        at = top + 1000 if where == "gap" else top + 1
        sql(home, "INSERT INTO events (seq, body, sig) SELECT ?, body, sig FROM events "
                  "WHERE seq = 1", at)
        with pytest.raises(IntegrityError, match=f"event {at}"):
            Runtime.open(home)
        assert count_events(home) == top + 2  # and nothing was signed on top of it
