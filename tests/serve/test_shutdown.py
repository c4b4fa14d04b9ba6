"""Graceful shutdown: SIGTERM while agents submit loses no acknowledged write, leaves the
ledger whole, and exits 0."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict

from .live import start
from .test_api_kernel import setup_workspace


def test_sigterm_mid_load_keeps_every_acknowledged_patch(tmp_path: Path) -> None:
    home = setup_workspace(tmp_path / "ws")
    with Runtime.open(home) as rt:  # signed up front: the load is pure submission
        envelopes = [envelope_to_dict(rt.sign(rt.propose(
            "config", f"agents/load{i}/config", value={"i": i}, reasoning="load",
            author="alice"), "alice")) for i in range(400)]
    server = start(home, "--no-scheduler")
    token = server.token("agent", "submit")
    acknowledged: list[str] = []
    refused: list[Any] = []
    lock = threading.Lock()
    half = threading.Event()

    def worker(batch: list[dict[str, Any]]) -> None:
        with server.client(token) as c:
            for env in batch:
                try:
                    r = c.post("/api/v1/patches", json=env)
                except httpx.TransportError as e:  # the server closed: not acknowledged
                    with lock:
                        refused.append(e)
                    continue
                with lock:
                    if r.status_code == 201:
                        acknowledged.append(r.json()["patch_hash"])
                        if len(acknowledged) >= 100:
                            half.set()
                    else:
                        refused.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(envelopes[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    assert half.wait(120), "the load never got going"
    code, err = server.stop(signal.SIGTERM)
    for t in threads:
        t.join(120)
    assert code == 0 and "Traceback" not in err, err
    assert refused, "the server stopped after the whole load: the test proved nothing"
    assert all(isinstance(x, Exception) or x == 503 for x in refused), refused[:5]
    with Runtime.open(home) as rt:
        report = rt.verify()
        applied = {e.payload["patch_hash"] for e in rt.log(kind="PatchApplied")}
    assert set(acknowledged) <= applied
    assert report.events >= len(acknowledged)
