"""The metrics appender keeps the lock and log files open between calls (issue 17): no
count may be lost when a reader folds (unlinks) the log under it, when threads append at
once, when another process folds at the same time, or after a fork; and the number of
open descriptors stays bounded."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

from ouroboros.capabilities.skills import metrics


def _version(tmp: Path, name: str = "v") -> Path:
    d = tmp / name
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"tool_id": "t", "metrics": metrics.empty()}))
    return d


def _write(path: Path, meta: dict[str, Any]) -> None:
    path.write_text(json.dumps(meta))


def _uses(d: Path) -> int:
    return int(metrics.fold(d, _write)["metrics"]["uses"])


def test_a_fold_between_calls_loses_nothing(tmp_path: Path) -> None:
    d = _version(tmp_path)
    for i in range(7):
        metrics.append(d, ok=i % 2 == 0, elapsed_ms=float(i))
        if i in (2, 5):
            assert _uses(d) == i + 1
            assert not (d / metrics.LOG).exists()  # folded: unlinked under the appender
    assert _uses(d) == 7
    m = json.loads((d / "meta.json").read_text())["metrics"]
    assert m["failures"] == 3


def test_a_log_replaced_on_disk_is_reopened_by_name(tmp_path: Path) -> None:
    """Someone renames another file over calls.log: the next line goes to the file now
    at that name, not to the orphaned one the appender held open."""
    d = _version(tmp_path)
    metrics.append(d, ok=True, elapsed_ms=1.0)
    other = d / "other"
    other.write_text("")
    os.replace(other, d / metrics.LOG)
    metrics.append(d, ok=True, elapsed_ms=2.0)
    lines = (d / metrics.LOG).read_text().splitlines()
    assert [json.loads(x)["ms"] for x in lines] == [2.0]


def test_threads_and_folds_at_once_count_every_call(tmp_path: Path) -> None:
    d = _version(tmp_path)
    folded = []
    stop = threading.Event()

    def folder() -> None:
        while not stop.is_set():
            folded.append(_uses(d))

    def caller() -> None:
        for _ in range(300):
            metrics.append(d, ok=True, elapsed_ms=0.5)

    reader = threading.Thread(target=folder)
    reader.start()
    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    stop.set()
    reader.join()
    assert _uses(d) == 1200
    assert folded == sorted(folded)  # counts only grow


def _fold_loop(d: str, rounds: int) -> None:
    for _ in range(rounds):
        metrics.fold(Path(d), _write)


def test_another_process_folding_meanwhile_loses_nothing(tmp_path: Path) -> None:
    d = _version(tmp_path)
    metrics.append(d, ok=True, elapsed_ms=1.0)  # the appender now holds the files open
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_fold_loop, args=(str(d), 200))
    proc.start()
    for _ in range(500):
        metrics.append(d, ok=True, elapsed_ms=1.0)
    proc.join(60)
    assert proc.exitcode == 0
    assert _uses(d) == 501


def test_a_forked_child_appends_through_its_own_files(tmp_path: Path) -> None:
    d = _version(tmp_path)
    metrics.append(d, ok=True, elapsed_ms=1.0)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            for _ in range(10):
                metrics.append(d, ok=True, elapsed_ms=1.0)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    metrics.append(d, ok=True, elapsed_ms=1.0)
    assert _uses(d) == 12


def test_open_descriptors_stay_bounded(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    dirs = [_version(tmp_path, f"v{i}") for i in range(3 * metrics._Appender.LIMIT)]
    for d in dirs:
        metrics.append(d, ok=True, elapsed_ms=1.0)
    assert len(os.listdir("/proc/self/fd")) - before <= 2 * metrics._Appender.LIMIT
    assert all(_uses(d) == 1 for d in dirs)


def test_a_removed_version_folder_raises_and_leaves_nothing(tmp_path: Path) -> None:
    import shutil

    import pytest

    d = _version(tmp_path)
    metrics.append(d, ok=True, elapsed_ms=1.0)
    shutil.rmtree(d)
    with pytest.raises(FileNotFoundError):
        metrics.append(d, ok=True, elapsed_ms=1.0)
    assert not d.exists()
    assert d not in metrics._APPENDER._fds  # nothing half-open is kept
    d.mkdir()  # re-created (a reinstall): appends work again
    (d / "meta.json").write_text(json.dumps({"tool_id": "t", "metrics": metrics.empty()}))
    metrics.append(d, ok=True, elapsed_ms=1.0)
    assert _uses(d) == 1


# -- with the store's key (signed lines): the replay guard must not drop a genuine call ----

def _signed_version(tmp: Path) -> tuple[Path, bytes]:
    root = tmp / "store"
    d = root / "tools" / "t" / "versions" / "0123456789abcdef"
    d.mkdir(parents=True)
    key = metrics.key_of(root)
    meta = {"tool_id": "t", "metrics": metrics.signed_empty(key, metrics.who(d))}
    (d / "meta.json").write_text(json.dumps(meta))
    return d, key


def _signed_fold_loop(d: str, key: bytes, rounds: int) -> None:
    for _ in range(rounds):
        metrics.fold(Path(d), _write, key)


def test_signed_calls_with_threads_and_another_process_folding_are_all_counted(
    tmp_path: Path
) -> None:
    d, key = _signed_version(tmp_path)
    stop = threading.Event()
    folded: list[int] = []

    def folder() -> None:
        while not stop.is_set():
            folded.append(int(metrics.fold(d, _write, key)["metrics"]["uses"]))

    def caller() -> None:
        for _ in range(200):
            metrics.append(d, ok=True, elapsed_ms=0.5, key=key)

    metrics.append(d, ok=True, elapsed_ms=0.5, key=key)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_signed_fold_loop, args=(str(d), key, 150))
    reader = threading.Thread(target=folder)
    proc.start()
    reader.start()
    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    stop.set()
    reader.join()
    proc.join(60)
    assert proc.exitcode == 0
    m = metrics.fold(d, _write, key)["metrics"]
    assert metrics.trusted(key, metrics.who(d), m) is not None
    assert (m["uses"], m["rejected"]) == (801, 0)
    assert folded == sorted(folded)
    assert os.stat(d.parents[3] / metrics.KEY).st_mode & 0o777 == 0o600
