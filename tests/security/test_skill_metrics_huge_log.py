"""A version's `calls.log` grown huge by a local process (or a busy server): reading the
version folds it, and the fold must not take memory in proportion to the file.

The log is streamed one line at a time, each line at most `metrics.MAX_CALL_LINE` long (a
line the runtime writes is a couple of hundred bytes); a longer one is skipped to its
newline and counted in `rejected`. The nonces a fold remembers against replays are
bounded too: past `metrics.MAX_SEEN` the oldest are forgotten and every line no newer than
them is refused.
"""

from __future__ import annotations

import json
import os
import secrets
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills import metrics as metrics_mod
from ouroboros.capabilities.skills.governance import open_store
from ouroboros.capabilities.skills.runtimes import Runtimes
from ouroboros.kernel import Runtime

from .conftest import cases, spec

DOUBLE = "import json, sys\nprint(json.dumps(2 * json.loads(sys.stdin.read())))\n"
MB = 1 << 20


@pytest.fixture
def wstore(tmp_path: Path, runtimes: Runtimes) -> SkillStore:
    store = open_store(Runtime.init(tmp_path / "ws"), runtimes)
    store.add(spec("python", DOUBLE, name="double", runtime="micropython",
                   tests=cases((2, 4), (3, 6))))
    return store


def _fold_peak(store: SkillStore) -> tuple[dict[str, Any], int]:
    tracemalloc.start()
    try:
        metrics = dict(store.get("double").meta["metrics"])
        return metrics, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_300_mb_log_of_junk_lines_folds_in_little_memory(wstore: SkillStore) -> None:
    wstore.run("double", 1)
    log = wstore.get("double").path / "calls.log"
    wstore.run("double", 2)  # a genuine line before the junk ...
    fd = os.open(log, os.O_WRONLY)  # not O_APPEND: that would ignore the seeks
    try:  # 300 lines of a MiB of NULs each, written sparsely (a hole, then a newline)
        for _ in range(300):
            os.lseek(fd, MB, os.SEEK_END)
            os.write(fd, b"\n")
    finally:
        os.close(fd)
    wstore.run("double", 3)  # ... and one after it
    assert log.stat().st_size > 300 * MB
    metrics, peak = _fold_peak(wstore)
    assert metrics["uses"] == 3, metrics  # the fold went on past every overlong line
    assert metrics["rejected"] == 300, metrics
    assert peak < 8 * MB, f"the fold peaked at {peak / MB:.1f} MiB"
    assert not log.exists()


def test_a_single_100_mb_line_without_a_newline_is_skipped_not_read(
        wstore: SkillStore) -> None:
    wstore.run("double", 1)
    log = wstore.get("double").path / "calls.log"
    wstore.run("double", 2)
    os.truncate(log, os.path.getsize(log) + 100 * MB)  # NULs to the end, no newline
    metrics, peak = _fold_peak(wstore)
    assert metrics["uses"] == 2 and metrics["rejected"] == 1, metrics
    assert peak < 8 * MB, f"the fold peaked at {peak / MB:.1f} MiB"
    wstore.run("double", 3)  # the log starts afresh and counts again
    assert wstore.get("double").meta["metrics"]["uses"] == 3


def _line(key: bytes, bound: str, t: int, nonce: str) -> bytes:
    body = json.dumps({"ok": True, "ms": 1.0, "id": nonce, "at": "2026-01-01T00:00:00+00:00",
                       "t": t}, sort_keys=True, separators=(",", ":")).encode()
    return body + b"\t" + metrics_mod._mac(key, bound, body).encode() + b"\n"


def test_replays_past_the_remembered_nonces_are_still_refused(wstore: SkillStore) -> None:
    wstore.run("double", 1)
    path = wstore.get("double").path
    key, bound = metrics_mod.key_of(wstore.root), metrics_mod.who(path)
    after = int(wstore.get("double").meta["metrics"]["after"])
    n = metrics_mod.MAX_SEEN + 1000
    lines = [_line(key, bound, after + 1 + i, secrets.token_hex(12)) for i in range(n)]
    replays = [lines[0], lines[500], lines[-1], lines[-2]]  # forgotten ones and recent ones
    with open(path / "calls.log", "ab") as f:
        f.write(b"".join(lines + replays))
    metrics = wstore.get("double").meta["metrics"]
    assert metrics["uses"] == 1 + n, metrics["uses"]
    assert metrics["rejected"] == len(replays), metrics["rejected"]
