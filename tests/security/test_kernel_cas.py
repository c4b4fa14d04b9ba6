"""Class 7: read-modify-write with an explicit expected base loses no update.

Three processes increment one counter concurrently through ``Runtime.update`` (read the
value and its hash, compute, compare-and-swap, retry on a lost race): every increment
lands exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledgerkit import race
from ouroboros.kernel import Runtime

TARGET = "agents/counter/routing"


def _incrementer(home: str, n: int, start: Any) -> None:
    rt = Runtime.open(home)
    start.wait(60)
    for _ in range(n):
        out = rt.update("routing", TARGET, lambda v: {"n": (v or {"n": 0})["n"] + 1},
                        reasoning="increment", author="counter")
        assert out.status == "applied", out
    rt.close()


def test_three_concurrent_writers_lose_no_increment(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    n = 40
    race(_incrementer, [(str(home), n)] * 3)
    rt = Runtime.open(home)
    assert rt.value(TARGET) == {"n": 3 * n}
    applied = [e for e in rt.log(kind="PatchApplied") if e.payload["target"] == TARGET]
    assert len(applied) == 3 * n
    lost_races = [e for e in rt.log(kind="PatchRejected") if "stale base" in e.payload["reason"]]
    assert all(e.payload["charged"] == [] for e in lost_races)  # a race is nobody's fault
    assert rt.paused_until("counter") is None
    rt.verify()
    rt.close()


def test_compare_and_swap_refuses_a_moved_target_and_changes_nothing(rt: Runtime) -> None:
    rt.propose_and_submit(type="routing", target=TARGET, value={"n": 1}, reasoning="r")
    value, base = rt.read(TARGET)
    assert value == {"n": 1}
    rt.propose_and_submit(type="routing", target=TARGET, value={"n": 5}, reasoning="r")
    out = rt.compare_and_swap("routing", TARGET, base, value={"n": 2}, reasoning="r")
    assert (out.status, out.stage) == ("rejected", "schema") and "stale base" in out.reason
    assert rt.value(TARGET) == {"n": 5}
    value, base = rt.read(TARGET)
    assert rt.compare_and_swap("routing", TARGET, base, value={"n": 6},
                               reasoning="r").status == "applied"


def test_propose_with_a_base_keeps_the_base_it_was_given(rt: Runtime) -> None:
    _, base = rt.read(TARGET)
    rt.propose_and_submit(type="routing", target=TARGET, value={"n": 1}, reasoning="r")
    patch = rt.propose("routing", TARGET, value={"n": 2}, reasoning="r", base=base)
    assert patch.base == base  # not silently re-read
    assert "stale base" in rt.submit(rt.sign(patch, "runtime")).reason
