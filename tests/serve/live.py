"""The real server in a subprocess: ``ouro serve --port 0 --json`` on loopback.

`start` launches it, reads the URL it announces once it accepts requests, and returns a
`LiveServer` whose `client` builds httpx clients with a token. `stop` sends SIGTERM and
waits; a server that hangs is killed and the test fails.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ouroboros.interfaces.http.tokens import TokenStore

START_TIMEOUT = 120.0  # a loaded 2-core CI machine imports slowly


@dataclass
class LiveServer:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, name: str, role: str, key: str | None = None) -> str:
        """Issue a token exactly as `ouro token new` does (the server sees it at once)."""
        if name not in self.tokens:
            self.tokens[name] = TokenStore(self.home).new(name, role, key)[0]
        return self.tokens[name]

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, str]:
        """Stop the server; returns its exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError(f"the server did not stop within {timeout} s:\n"
                                 f"{self.stderr()}") from None
        return self.proc.returncode, self.stderr()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def start(home: Path, *args: str, env: dict[str, str] | None = None) -> LiveServer:
    """Start ``ouro serve`` on a free loopback port; wait until it announces its URL."""
    cmd = [sys.executable, "-m", "ouroboros", "serve", "--home", str(home), "--port", "0",
           "--json", *args]
    log = home.parent / f"{home.name}.server.log"
    with log.open("ab") as err:  # a file, not a pipe: a chatty server never blocks on it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(timeout=left):
            proc.kill()
            proc.communicate()
            raise AssertionError(f"the server did not start: {log.read_text(errors='replace')}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            proc.communicate()
            raise AssertionError(f"the server exited with {proc.returncode}: "
                                 f"{log.read_text(errors='replace')}")
        line += chunk
    selector.close()
    url = json.loads(line.decode())["listening"]
    return LiveServer(url=url, home=home, proc=proc, log=log)
