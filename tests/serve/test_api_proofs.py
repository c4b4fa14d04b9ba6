"""Checkpoints and Merkle proofs over real HTTP, checked by a third party.

The third party has only what the server answered and the log's verifier key (taken from
the workspace out of band, not from the answer): it writes the proof file it fetched and
runs ``ouro proof check`` in an empty directory with no workspace. Tampered answers fail
that check; bad input is a 4xx with the error object, never a 500.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import Runtime

from .live import LiveServer, start

EVENTS = 12


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("proofs") / "ws"
    with Runtime.init(home, checkpoint_interval=4) as rt:
        for i in range(EVENTS):
            out = rt.propose_and_submit(type="routing", target="agents/a/routing",
                                        value={"w": i}, reasoning="tune", author="tuner")
            assert out.status == "applied", out
    server = start(home, "--no-scheduler")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def vkey(live: LiveServer) -> str:
    """The log's verifier key, as its operator publishes it (not read from any answer)."""
    with Runtime.open(live.home) as rt:
        return rt.verifier.vkey()


def check(tmp_path: Path, file_text: str, vkey: str) -> subprocess.CompletedProcess[str]:
    """``ouro proof check`` run by an outsider: an empty directory, no workspace."""
    outsider = tmp_path / "outsider"
    outsider.mkdir(exist_ok=True)
    proof = outsider / "fetched.proof"
    proof.write_text(file_text)
    return subprocess.run([sys.executable, "-m", "ouroboros", "proof", "check", str(proof),
                           "--vkey", vkey, "--json"], cwd=outsider, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                       "HOME": str(outsider)})


def ouro_json(home: Path, *args: str) -> Any:
    r = subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home),
                        "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_checkpoint_is_the_signed_note_as_text_and_as_json(live: LiveServer,
                                                               vkey: str) -> None:
    token = live.token("reader", "read")
    with live.client(token) as c:
        data = c.get("/api/v1/checkpoint").json()
        text = c.get("/api/v1/checkpoint", headers={"Accept": "text/plain"})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == data["note"]
    from ouroboros.kernel.note import Checkpoint, Verifier

    cp = Checkpoint.open(text.content, Verifier.parse(vkey))  # the signature holds
    assert (data["origin"], data["size"], data["head"]) == (cp.origin, cp.size, cp.head)
    assert base64.b64decode(data["root"]) == cp.root
    assert data["vkey"] == vkey and cp.size >= 4
    assert data == ouro_json(live.home, "proof", "checkpoint")  # the CLI's shape


def test_a_third_party_checks_an_inclusion_proof_from_the_answer_alone(
        live: LiveServer, vkey: str, tmp_path: Path) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.get("/api/v1/proofs/inclusion/7")
        size = c.get("/api/v1/checkpoint").json()["size"]
    assert r.status_code == 200, r.text
    data = r.json()
    assert data == ouro_json(live.home, "proof", "inclusion", "7")  # the CLI's shape
    done = check(tmp_path, data["file"], vkey)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["index"] == 7
    assert json.loads(done.stdout)["tree_size"] == size
    assert json.loads(base64.b64decode(data["event"]))["seq"] == 7


def test_a_third_party_checks_a_consistency_proof_from_the_answer_alone(
        live: LiveServer, vkey: str, tmp_path: Path) -> None:
    with live.client(live.token("reader", "read")) as c:
        latest = c.get("/api/v1/checkpoint").json()["size"]
        r = c.get("/api/v1/proofs/consistency", params={"old": 4})
        pinned = c.get("/api/v1/proofs/consistency", params={"old": 4, "new": latest})
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["old"], data["new"]) == (4, latest)  # `new` resolved to the latest size
    assert pinned.json()["proof"] == data["proof"]
    done = check(tmp_path, data["file"], vkey)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_size"] == latest


@pytest.mark.parametrize("attack", ["event", "path", "index", "checkpoint"])
def test_a_tampered_inclusion_answer_fails_the_third_partys_check(
        live: LiveServer, vkey: str, tmp_path: Path, attack: str) -> None:
    with live.client(live.token("reader", "read")) as c:
        lines = c.get("/api/v1/proofs/inclusion/3").json()["file"].split("\n")
    if attack == "event":  # claim the event said something else
        body = json.loads(base64.b64decode(lines[1][6:]))
        body["payload"]["author"] = "someone-else"
        lines[1] = "extra " + base64.b64encode(json.dumps(body).encode()).decode()
    elif attack == "path":
        lines[3] = base64.b64encode(b"\x00" * 32).decode()
    elif attack == "index":  # the same path claimed for another event
        lines[2] = "index 5"
    else:  # a bigger tree size under the same signature
        at = lines.index("") + 2
        lines[at] = str(int(lines[at]) + 1)
    done = check(tmp_path, "\n".join(lines), vkey)
    assert done.returncode != 0 and "Traceback" not in done.stderr


def test_a_proof_checked_against_another_logs_key_fails(live: LiveServer,
                                                        tmp_path: Path) -> None:
    with live.client(live.token("reader", "read")) as c:
        file_text = c.get("/api/v1/proofs/inclusion/2").json()["file"]
    other = Runtime.init(tmp_path / "other")
    try:
        foreign = other.verifier.vkey()
    finally:
        other.close()
    done = check(tmp_path, file_text, foreign)
    assert done.returncode == 1, done.stdout + done.stderr


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/proofs/inclusion/999999", 404),       # beyond the latest checkpoint
    ("/api/v1/proofs/inclusion/-1", 422),
    ("/api/v1/proofs/inclusion/seven", 422),
    ("/api/v1/proofs/inclusion/1.5", 422),
    ("/api/v1/proofs/inclusion/99999999999999999999999", 422),
    ("/api/v1/proofs/inclusion/%EF%BC%97", 422),   # a fullwidth digit seven
    ("/api/v1/proofs/consistency?old=8&new=4", 400),  # old > new
    ("/api/v1/proofs/consistency?old=4&new=99999", 404),  # past the latest checkpoint
    ("/api/v1/proofs/consistency?old=99999", 404),
    ("/api/v1/proofs/consistency?old=0", 422),
    ("/api/v1/proofs/consistency", 422),           # old missing
    ("/api/v1/proofs/consistency?old=x", 422),
    ("/api/v1/proofs/consistency?old=4&new=", 422),
    ("/api/v1/proofs/consistency?old=1e3", 422),
])
def test_bad_input_is_a_4xx_error_object(live: LiveServer, path: str, status: int) -> None:
    with live.client(live.token("reader", "read")) as c:
        r = c.get(path)
    assert r.status_code == status, (path, r.status_code, r.text)
    assert set(r.json()["error"]) >= {"code", "message"}


def test_proofs_need_a_token(live: LiveServer) -> None:
    with live.client() as c:
        for path in ("/api/v1/checkpoint", "/api/v1/proofs/inclusion/1",
                     "/api/v1/proofs/consistency?old=1"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
