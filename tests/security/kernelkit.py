"""Shared moves of the kernel attacks: a workspace, keys, raw ledger access, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledgerkit import raw_sql
from ouroboros.kernel import Runtime, SubmitOutcome
from ouroboros.kernel.dsse import envelope_to_dict


def grant(rt: Runtime, name: str, types: list[str], targets: list[str] | None = None,
          rights: list[str] | None = None, threshold: int = 1) -> str:
    """Create key ``name`` (if needed), delegate to it, return its key id."""
    if name not in rt.keyring.names():
        rt.keyring.new(name)
    out = rt.grant([name], types=types, targets=targets or ["*"], rights=rights or [],
                   threshold=threshold)
    assert out.status == "applied", out
    return rt.keyring.public(name)[0]


def submit(rt: Runtime, key: str, **kw: Any) -> SubmitOutcome:
    kw.setdefault("reasoning", "because")
    kw.setdefault("author", key)
    return rt.submit(rt.sign(rt.propose(**kw), key))


def envelope_json(rt: Runtime, key: str, **kw: Any) -> str:
    kw.setdefault("reasoning", "because")
    kw.setdefault("author", key)
    return json.dumps(envelope_to_dict(rt.sign(rt.propose(**kw), key)))


def sql(home: Path, statement: str, *args: Any) -> list[Any]:
    """What a database writer can do: run any SQL on the ledger (SQLite or PostgreSQL)."""
    return raw_sql(home, statement, *args)


def count_events(home: Path) -> int:
    return int(sql(home, "SELECT count(*) FROM events")[0][0])


def ouro(*args: str, home: Path | None = None, cwd: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ouroboros", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def routing(rt: Runtime, n: int, target: str = "agents/a/routing", start: int = 0) -> None:
    for i in range(start, start + n):
        out = rt.propose_and_submit(type="routing", target=target, value={"w": i},
                                    reasoning="tune", author="tuner")
        assert out.status == "applied", out
