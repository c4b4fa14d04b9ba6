"""``ouro serve`` while another process holds the ledger's writers' lock (a stopped
``ouro`` command, a one-liner holding ``flock``): the submit ran on the event loop and
its unbounded wait froze every request, ``/health`` included. Now a contended submit
waits in a thread, bounded by ``OURO_LOCK_TIMEOUT`` (here 2 s), and ends as a 503."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict

from .live import start

BOUND = 2.0
SLACK = 45.0  # "within the bound plus slack", never a speed assertion


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


class Holder:
    """A real child process holding ``flock`` on ``path`` until released."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"
        self.pid = self.proc.pid

    def release(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


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
