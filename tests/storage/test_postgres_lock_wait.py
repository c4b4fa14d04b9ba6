"""A PostgreSQL workspace's local checkpoint is read and written under a file lock
(``ledger.checkpoint.lock``): a local process holding it (a stopped ``ouro`` command, a
held ``flock``) made opening the workspace, and so every command, wait for ever. Now
the wait is bounded by ``OURO_LOCK_TIMEOUT``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import Runtime

pytestmark = pytest.mark.backends("postgresql")

_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def _ouro(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OURO_LOCK_TIMEOUT": "1"})


def test_a_held_checkpoint_lock_is_one_clear_error_then_everything_works(
        ledger_backend: str, new_pg_ledger: Any, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home, ledger=new_pg_ledger())
    rt.propose_and_submit(type="routing", target="agents/a/routing", value={"w": 1},
                          reasoning="tune", author="root")
    rt.close()
    lock = home / "ledger.checkpoint.lock"
    assert lock.exists()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        r = _ouro("state", home=home)
        assert time.monotonic() - start < 1 + 45
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert str(lock) in r.stderr and f"process {holder.pid}" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait(timeout=30)
    r = _ouro("state", home=home)
    assert r.returncode == 0 and "agents/a/routing" in r.stdout, r.stderr
    assert _ouro("verify", home=home).returncode == 0
