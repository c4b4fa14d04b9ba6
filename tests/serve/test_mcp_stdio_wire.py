"""``ouro mcp`` on the wire: raw lines on its stdin, what comes back on its stdout.

JSON-RPC 2.0: a line that is not JSON is answered ``-32700`` with ``"id": null``, JSON that
is not a message ``-32600`` (with the message's id when it has a usable one); a line over
the cap is refused without being held in memory. The server answers the next good request.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import new_workspace

BOUND = 60.0

INITIALIZE = {"jsonrpc": "2.0", "id": "init", "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "wire", "version": "1"}}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_workspace(tmp_path_factory.mktemp("wire") / "ws")


class Wire:
    """``ouro mcp`` with pipes; ``answers(n)`` reads n lines of its stdout."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.err = home.parent / "wire.stderr"
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ouroboros", "mcp", "--home", str(home), *extra],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self.selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def answers(self, n: int) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + BOUND
        while self.pending.count(b"\n") < n:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(timeout=left):
                raise AssertionError(f"fewer than {n} answers came: {self.pending!r}\n"
                                     f"{self.stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            assert chunk, f"ouro mcp exited: {self.stderr()}"
            self.pending += chunk
        lines = self.pending.split(b"\n")
        self.pending = b"\n".join(lines[n:])
        return [json.loads(line) for line in lines[:n]]

    def vm_peak_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1])

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def close(self) -> tuple[int, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ouro mcp did not exit when stdin closed") from None
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.selector.close()
        return self.proc.returncode, self.stderr()


def _code(answer: dict[str, Any]) -> int:
    return int(answer["error"]["code"])


def test_malformed_lines_are_answered_and_the_server_lives_on(home: Path) -> None:
    wire = Wire(home)
    try:
        wire.send(b"not json\n"                                  # -32700, id null
                  b'{"jsonrpc": "2.0", "id": 1\n'                # cut short: -32700
                  b"\xff\xfe{}\n"                                # not UTF-8: -32700
                  b'{"jsonrpc": "2.0", "id": 7}\n'               # no method: -32600, id 7
                  b'{"jsonrpc": "2.0", "id": 8, "method": 5}\n'  # method not a string
                  b'{"foo": 1}\n'                                # -32600, id null
                  b"[1, 2]\n"                                    # a batch of junk
                  b'{"jsonrpc": "1.0", "id": true, "method": "x"}\n'  # id true: null
                  b"\n" + json.dumps(INITIALIZE).encode() + b"\n")
        answers = wire.answers(9)
        refused = sorted(((a["id"] is None, str(a["id"])), _code(a))
                         for a in answers if "error" in a)
        assert refused == sorted([
            ((True, "None"), -32700), ((True, "None"), -32700), ((True, "None"), -32700),
            ((False, "7"), -32600), ((False, "8"), -32600), ((True, "None"), -32600),
            ((True, "None"), -32600), ((True, "None"), -32600)])
        for a in answers:
            assert a["jsonrpc"] == "2.0"
            if "error" in a:
                assert a["error"]["message"]
        assert [a["result"]["serverInfo"]["name"] for a in answers if a.get("id") == "init"] \
            == ["ouroboros"]
    finally:
        code, err = wire.close()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert err.count("ouro mcp: refused") == 8, err  # each one said on stderr too


def test_a_huge_line_is_refused_without_being_held(home: Path) -> None:
    cap = 1 << 20
    wire = Wire(home, "--max-line", str(cap))
    try:
        wire.send(json.dumps(INITIALIZE).encode() + b"\n")
        assert wire.answers(1)[0]["id"] == "init"
        before = wire.vm_peak_kb()
        junk = b'{"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"x": "' \
            + b"A" * (1 << 16)
        sent = 0

        def pour() -> None:
            nonlocal sent
            while sent < 96 << 20:  # 96 MiB on one line, no newline
                wire.send(junk)
                sent += len(junk)
            wire.send(b'"}}\n' + json.dumps({"jsonrpc": "2.0", "id": 10,
                                              "method": "ping"}).encode() + b"\n")

        pourer = threading.Thread(target=pour)
        pourer.start()
        answers = wire.answers(2)
        pourer.join(BOUND)
        after = wire.vm_peak_kb()
        assert _code(answers[0]) == -32600 and answers[0]["id"] is None
        assert str(cap) in answers[0]["error"]["message"]
        assert answers[1] == {"jsonrpc": "2.0", "id": 10, "result": {}}
        assert after - before < 48 << 10, f"the server held the line: {before} → {after} kB"
    finally:
        code, err = wire.close()
    assert code == 0, err
    assert "Traceback" not in err, err


def test_a_bad_max_line_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ouroboros", "mcp", "--home",
                           str(new_workspace(tmp_path / "ws")), "--max-line", "10"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
