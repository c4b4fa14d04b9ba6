"""``ouro serve`` while another process holds the ledger's writers' lock (a stopped
``ouro`` command, a one-liner holding ``flock``): the submit ran on the event loop and
its unbounded wait froze every request, ``/health`` included. Now a contended submit
waits in a thread, bounded by ``OURO_LOCK_TIMEOUT`` (here 2 s), and ends as a 503."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict
from security.test_lock_wait import Holder, SQLiteHolder

from .live import start

BOUND = 2.0
SLACK = 45.0  # "within the bound plus slack", never a speed assertion


def _envelopes(home: Path, agents: str) -> list[dict[str, Any]]:
    with Runtime.open(home) as rt:
        return [envelope_to_dict(rt.sign(rt.propose(
            type="routing", target=f"agents/{a}/routing", value={"w": 1}, reasoning="tune",
            author="root"), "root")) for a in agents]


def test_reads_answer_while_a_submit_waits_for_a_held_lock_which_ends_in_503(
        tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    first, waiting, queued, after = _envelopes(home, "abcd")
    server = start(home, "--no-scheduler", env={"OURO_LOCK_TIMEOUT": str(BOUND)})
    holder: Holder | None = None
    try:
        agent = server.client(server.token("agent", "submit"))
        reader = server.client(server.token("reader", "read"))
        assert agent.post("/api/v1/patches", json=first).status_code == 201
        assert reader.get("/api/v1/state").status_code == 200
        holder = Holder(home / "ledger.db.lock")
        answers: dict[str, tuple[httpx.Response, float]] = {}

        def submit(name: str, body: dict[str, Any]) -> None:
            start_at = time.monotonic()
            with server.client(server.token("agent", "submit")) as c:
                answers[name] = (c.post("/api/v1/patches", json=body,
                                        timeout=BOUND * 3 + SLACK),
                                 time.monotonic() - start_at)

        threads = [threading.Thread(target=submit, args=("waiting", waiting))]
        threads[0].start()
        time.sleep(0.3)  # let it reach the lock (ordering below does not depend on it)
        threads.append(threading.Thread(target=submit, args=("queued", queued)))
        threads[1].start()
        # While the submits wait, the server still answers, and answers first.
        health = reader.get("/api/v1/health", timeout=BOUND + SLACK)
        state = reader.get("/api/v1/state", timeout=BOUND + SLACK)
        assert health.status_code == 200 and state.status_code == 200, state.text
        assert "waiting" not in answers, "a read was answered only once the submit ended"
        for t in threads:
            t.join(timeout=BOUND * 3 + SLACK + 10)
        for name in ("waiting", "queued"):
            r, took = answers[name]
            assert r.status_code == 503, (name, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "unavailable"
            assert took < BOUND * 3 + SLACK
        msg = answers["waiting"][0].json()["error"]["message"]
        assert str(home / "ledger.db.lock") in msg and f"process {holder.pid}" in msg, msg
        holder.release()
        holder = None
        for body in (waiting, queued, after):
            r = agent.post("/api/v1/patches", json=body)
            assert r.status_code == 201, r.text
        assert reader.get("/api/v1/verify").json()["ok"] is True
        assert reader.get("/api/v1/state/agents/b/routing").json()["value"] == {"w": 1}
    finally:
        if holder is not None:
            holder.release()
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


def _span(tool: str) -> dict[str, Any]:
    start = time.time_ns()
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "agent"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": "0a" * 16, "spanId": "0b" * 8, "name": f"execute_tool {tool}",
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
            "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": tool}}]}]}]}]}


def test_a_held_telemetry_day_file_is_a_503_and_the_retry_is_stored(tmp_path: Path) -> None:
    """The OTLP receiver appends under the day file's own lock: a holder made each
    request wait for ever (holding a server thread). Now 503 after the bound, and the
    span, sent again, is stored once (not dropped as already seen)."""
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

    home = tmp_path / "ws"
    Runtime.init(home).close()
    server = start(home, "--no-scheduler", env={"OURO_LOCK_TIMEOUT": str(BOUND)})
    doc = _span("heldtool")
    day = time.strftime("%Y-%m-%d", time.gmtime())
    events = home / "telemetry" / "events"
    events.mkdir(parents=True, exist_ok=True)
    holder: Holder | None = Holder(events / f"{day}.jsonl")
    try:
        assert holder is not None
        with server.client(server.token("collector", "submit")) as c:
            t0 = time.monotonic()
            r = c.post("/v1/traces", json=doc, timeout=BOUND + SLACK)
            assert time.monotonic() - t0 < BOUND + SLACK
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            assert f"process {holder.pid}" in r.json()["error"]["message"]
            assert c.get("/api/v1/health").status_code == 200
            holder.release()
            holder = None
            r = c.post("/v1/traces", json=doc)
            assert r.status_code == 200, r.text
    finally:
        if holder is not None:
            holder.release()
        code, err = server.stop()
    assert code == 0, err
    mine = [e for e in TelemetryStore(home).events() if e.get("tool") == "heldtool"]
    assert len(mine) == 1, mine


def test_reads_answer_while_a_submit_waits_for_sqlites_own_write_lock(tmp_path: Path) -> None:
    """The loop's ``BEGIN IMMEDIATE`` waited SQLite's 30 s busy timeout on the event loop:
    ``/health`` and every read stalled behind it. Now the loop's attempt does not wait, the
    submit is redone in a thread (bounded by OURO_LOCK_TIMEOUT, then 503 naming the
    database), and once the holder is gone submits land and the ledger verifies."""
    home = tmp_path / "ws"
    Runtime.init(home).close()
    first, waiting, after = _envelopes(home, "abc")
    server = start(home, "--no-scheduler", env={"OURO_LOCK_TIMEOUT": str(BOUND)})
    holder: Holder | None = None
    try:
        agent = server.client(server.token("agent", "submit"))
        reader = server.client(server.token("reader", "read"))
        assert agent.post("/api/v1/patches", json=first).status_code == 201
        holder = SQLiteHolder(home / "ledger.db")
        answers: dict[str, tuple[httpx.Response, float]] = {}

        def submit() -> None:
            start_at = time.monotonic()
            with server.client(server.token("agent", "submit")) as c:
                answers["waiting"] = (c.post("/api/v1/patches", json=waiting,
                                             timeout=BOUND * 3 + 30 + SLACK),
                                      time.monotonic() - start_at)

        thread = threading.Thread(target=submit)
        thread.start()
        time.sleep(0.3)  # let it reach the lock (the assertions do not depend on it)
        health = reader.get("/api/v1/health", timeout=30 + SLACK)
        state = reader.get("/api/v1/state", timeout=30 + SLACK)
        assert health.status_code == 200 and state.status_code == 200, state.text
        assert "waiting" not in answers, "a read was answered only once the submit ended"
        thread.join(timeout=BOUND * 3 + 30 + SLACK + 10)
        r, _ = answers["waiting"]
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error"]["code"] == "unavailable"
        assert str(home / "ledger.db") in r.json()["error"]["message"], r.text
        holder.release()
        holder = None
        for body in (waiting, after):
            r = agent.post("/api/v1/patches", json=body)
            assert r.status_code == 201, r.text
        assert reader.get("/api/v1/verify").json()["ok"] is True
        assert reader.get("/api/v1/state/agents/b/routing").json()["value"] == {"w": 1}
    finally:
        if holder is not None:
            holder.release()
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


def test_a_held_witness_copy_never_stalls_the_server(tmp_path: Path) -> None:
    """A witness's checkpoint copy ``flock``ed by someone else: each submit, after its
    commit, waited for the copy's lock on the event loop, up to OURO_LOCK_TIMEOUT (here a
    long one), holding every request. Now the loop does not wait: submits land and
    ``/health`` answers at once, the copy lags (consistent) and catches up on the first
    submit after the lock is let go."""
    from ouroboros.storage import files

    long_bound = 120.0
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    witness = rt.add_witness(tmp_path / "witness")
    rt.close()
    bodies = _envelopes(home, "abcd")
    copy = next(witness.glob("*.checkpoint"))
    server = start(home, "--no-scheduler", env={"OURO_LOCK_TIMEOUT": str(long_bound)})
    holder: Holder | None = None
    try:
        agent = server.client(server.token("agent", "submit"))
        reader = server.client(server.token("reader", "read"))
        before = files.tree_size(copy.read_bytes())
        holder = Holder(copy)
        for body in bodies[:3]:
            # a client bound far below the server's lock bound: a loop that waits fails here
            r = agent.post("/api/v1/patches", json=body, timeout=long_bound / 3)
            assert r.status_code == 201, r.text
            assert reader.get("/api/v1/health", timeout=long_bound / 3).status_code == 200
        assert files.tree_size(copy.read_bytes()) == before
        assert reader.get("/api/v1/verify").json()["ok"] is True
        holder.release()
        holder = None
        r = agent.post("/api/v1/patches", json=bodies[3])
        assert r.status_code == 201, r.text
        assert files.tree_size(copy.read_bytes()) == before + 4
        assert reader.get("/api/v1/verify").json()["ok"] is True
    finally:
        if holder is not None:
            holder.release()
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("bad", ["abc", "-1", "1e999", "nan"])
def test_a_bad_lock_timeout_stops_the_server_at_start_not_every_client_later(
        tmp_path: Path, bad: str) -> None:
    """A server started with a malformed ``OURO_LOCK_TIMEOUT`` listened anyway, and every
    client whose request met a contended lock got a 400 for the operator's mistake: now
    ``ouro serve`` refuses to start (exit 2) naming the variable, and never listens."""
    Runtime.init(tmp_path / "ws").close()
    child = subprocess.run(
        [sys.executable, "-m", "ouroboros", "serve", "--home", str(tmp_path / "ws"),
         "--port", "0", "--no-scheduler", "--json"], capture_output=True, text=True,
        timeout=30, env={**os.environ, "OURO_LOCK_TIMEOUT": bad})
    assert child.returncode == 2, (child.stdout, child.stderr)
    error = json.loads(child.stdout)["error"]
    assert "OURO_LOCK_TIMEOUT" in error["message"] and "listening" not in child.stdout
    assert "Traceback" not in child.stderr
