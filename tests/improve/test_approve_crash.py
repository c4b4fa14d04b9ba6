"""`ouro proposals approve` SIGKILLed at each step after the kernel's decision: the next
tick must finish the landing, once, and the merged change must be monitored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.capabilities.improve.analysis import analyse
from ouroboros.kernel import Runtime

from .loopkit import T0, Harness, tool_events

ROOT = Path(__file__).resolve().parents[2]

# A child that opens the same workspace and approves; a profile hook SIGKILLs it the Nth
# time it reaches the chosen function (nothing in the production code knows about it).
CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.improve.loopkit import Harness
event, name, where, nth = {event!r}, {name!r}, {where!r}, {nth!r}
seen = [0]
def hook(frame, ev, arg):
    code = frame.f_code
    if ev == event and code.co_name == name and code.co_filename.endswith(where):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
h = Harness(Path({tmp!r}))
sys.setprofile(hook)
h.loop.approve({pid!r}, reviewer="alice")
"""


def _pending(tmp: Path) -> str:
    h = Harness(tmp)
    h.add(tool_events(T0, 24, {"web_search": 0.3}))
    (outcome,) = h.loop.propose_from_findings(analyse(h.events, h.clock()))
    h.rt.close()
    return outcome.proposal.id


@pytest.mark.parametrize("event,name,where,nth", [
    ("call", "_merge", "proposals/loop.py", 1),       # the kernel applied, nothing merged
    ("return", "merge", "proposals/repo.py", 1),      # merged on main, file says approved
    ("call", "save", "proposals/store.py", 2),        # about to write "implemented"
    ("return", "save", "proposals/store.py", 2),      # "implemented" written
    ("call", "open", "proposals/monitor.py", 1),      # about to open the monitoring window
    ("return", "open", "proposals/monitor.py", 1),    # window open, file still "approved"
])
def test_a_killed_approve_lands_once_and_is_monitored(tmp_path: Path, event: str, name: str,
                                                       where: str, nth: int) -> None:
    pid = _pending(tmp_path)
    script = CHILD.format(root=str(ROOT), event=event, name=name, where=where, nth=nth,
                          tmp=str(tmp_path), pid=pid)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, env=os.environ.copy())
    assert child.returncode == -9, child.stderr  # it really died at that point

    h = Harness(tmp_path)  # the next command: any tick (or `proposals apply`) catches up
    h.loop.tick()
    p = h.loop.get(pid)
    assert p.status == "implemented", p.log
    log = h.loop.repo.git("log", "--format=%s", "main").splitlines()
    merges = [line for line in log if line.startswith(f"Merge proposal {pid}")]
    assert len(merges) == 1  # merged once, not lost, not twice
    assert h.loop.repo.head() == p.merge_commit
    assert "timeout_s: 60" in (h.main_file("agents.yaml") or "")
    # a merged change is watched: the auto-revert on an error spike depends on the window
    assert pid in h.loop.status()["monitoring"], "merged but never monitored"
    applied = [e["payload"]["patch_hash"] for e in h.governance.events("PatchApplied")]
    assert applied.count(p.patch_hash) == 1  # the kernel applied it once
    h.rt.close()
    rt = Runtime.open(tmp_path / "ws")
    assert rt.verify().events == len(rt.log())  # raises IntegrityError on any damage
    rt.close()
