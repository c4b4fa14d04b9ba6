"""The PostgreSQL ledger attacked from outside the kernel: secrets in malformed URLs,
interrupted migrations, a server that drops or kills the connection, a role that may
only read, and rows forged in the tables the kernel never wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.backends("postgresql")


def ouro(*args: str, home: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ouroboros", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------ secrets in messages
@pytest.mark.parametrize("url", [
    # a libpq key=value DSN instead of a URL: refused, but its password must not be echoed
    "host=127.0.0.1 dbname=x password=Pw-s3cret-9",
    "host=127.0.0.1 dbname=x password = 'Pw-s3cret-9 with spaces'",
    # a password libpq cannot percent-decode: libpq quotes the raw token in its error
    "postgresql://u:Pw-s3cret-9%zz@127.0.0.1:1/db",
    "postgresql://u:Pw-s3cret-9%@127.0.0.1:1/db",
])
@pytest.mark.parametrize("command", ["init", "migrate"])
def test_a_malformed_ledger_url_never_shows_its_password(tmp_path: Path, url: str,
                                                         command: str) -> None:
    home = tmp_path / "ws"
    if command == "migrate":
        assert ouro("init", home=home).returncode == 0  # a SQLite workspace
        r = ouro("migrate", "--to", url, home=home)
    else:
        r = ouro("init", "--ledger", url, home=home)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "s3cret" not in r.stderr + r.stdout
