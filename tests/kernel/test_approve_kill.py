"""`ouro approve` (the kernel's approval of a pending patch) SIGKILLed at every step: the
approval append and its apply (one transaction), the signed checkpoint published after
the commit, the snapshot row written after the fold and the pruning of old snapshots.
After each kill the ledger verifies, the state equals a replay from genesis, and the
patch is either applied once (with its approval) or still pending (without it), and a
second approve finishes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.trust import GATES_TARGET

pytestmark = pytest.mark.backends("sqlite")  # each step runs on a copy of the ledger file

# The real CLI in a child; a profile hook SIGKILLs it at the Nth C call made while the
# approval is appended, sealed, snapshotted and pruned (the SQLite backend and the
# runtime's append path). NTH 0 only counts them. Nothing in the product knows of it.
CHILD = """
import os, runpy, signal, sys
nth, seen = int(sys.argv[1]), [0]
WATCHED = ("_append", "build", "seal", "_maybe_snapshot", "_run_effect", "approve", "submit")
def hook(frame, event, arg):
    if event != "c_call":
        return
    code = frame.f_code
    if code.co_filename.endswith("storage/sqlite.py") or (
            code.co_name in WATCHED and code.co_filename.endswith("kernel/runtime.py")):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        if nth == 0 and code.co_name in MARKED:
            marks.append(seen[0])
MARKED = ("append", "seal", "put_snapshot", "prune_snapshots", "_run_effect")
marks = []
sys.setprofile(hook)
sys.argv = ["ouro", *sys.argv[2:]]
try:
    runpy.run_module("ouroboros", run_name="__main__")
finally:
    sys.setprofile(None)
    if nth == 0:
        print("MARKS", *marks, file=sys.stderr)
        print("CALLS", seen[0], file=sys.stderr)
"""


def _pending_workspace(home: Path, approvals: int) -> str:
    """A workspace (a snapshot after every event, an in-ledger checkpoint every 2) where
    routing patches need ``approvals`` approvals, and one such patch pending."""
    rt = Runtime.init(home, snapshot_interval=1, checkpoint_interval=2)
    gates = rt.value(GATES_TARGET)
    gates["approval"] = [{"types": ["routing"], "targets": ["*"], "approvals": approvals}]
    out = rt.submit(rt.sign(rt.propose("gates", GATES_TARGET, value=gates, reasoning="r",
                                       author="operator"), "root"))
    assert out.status == "applied", out
    if approvals > 1:
        rt.keyring.new("second")
        out = rt.grant(["second"], types=["routing"], rights=["approve"])
        assert out.status == "applied", out
    out = rt.submit(rt.sign(rt.propose("routing", "agents/a/routing", value={"w": 1},
                                       reasoning="r", author="improve"), "runtime"))
    assert out.status == "pending", out
    rt.close()
    return str(out.patch_hash)


def _approve(home: Path, patch_hash: str, nth: int, key: str = "root"
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(nth), "approve", patch_hash[7:19],
                           "--key", key, "--home", str(home)],
                          capture_output=True, text=True, timeout=120)


def _check(home: Path, patch_hash: str) -> tuple[bool, int]:
    """Verify and replay the reopened workspace; (applied?, approvals recorded)."""
    rt = Runtime.open(home)
    try:
        rt.verify()  # raises IntegrityError
        assert rt.replay().consistent
        applied = [e for e in rt.log(kind="PatchApplied")
                   if e.payload.get("patch_hash") == patch_hash]
        approvals = [e for e in rt.log(kind="PatchApproved")
                     if e.payload.get("patch_hash") == patch_hash]
        assert len(applied) <= 1
        if applied:
            assert patch_hash not in rt.pending()
            assert rt.value("agents/a/routing") == {"w": 1}
        else:
            assert patch_hash in rt.pending() and rt.value("agents/a/routing") is None
        return bool(applied), len(approvals)
    finally:
        rt.close()


@pytest.mark.parametrize("approvals", [1, 2])
def test_an_approve_killed_at_any_step_is_whole_or_still_pending(
        tmp_path: Path, approvals: int) -> None:
    base = tmp_path / "base"
    patch_hash = _pending_workspace(base, approvals)
    probe = tmp_path / "probe"
    subprocess.run(["cp", "-a", str(base), str(probe)], check=True)
    counted = _approve(probe, patch_hash, 0)
    assert counted.returncode == (0 if approvals == 1 else 4), counted.stderr  # 4: pending
    total = int(counted.stderr.rsplit("CALLS", 1)[1])
    assert total > 10
    marks = [int(n) for n in counted.stderr.split("MARKS", 1)[1].split("CALLS")[0].split()]
    assert len(marks) >= 6  # the commit's statements, the seal, the snapshot row, the prune
    # every C call of the commit, the seal, the snapshot row and its pruning, and about 12
    # more spread over the rest of the path
    steps = sorted({*marks, *range(1, total + 1, max(1, total // 12)), total})
    killed = 0
    for nth in steps:
        home = tmp_path / f"ws{nth}"
        subprocess.run(["cp", "-a", str(base), str(home)], check=True)
        child = _approve(home, patch_hash, nth)
        assert child.returncode == -9, (nth, child.returncode, child.stderr)
        killed += 1
        applied, recorded = _check(home, patch_hash)
        if approvals == 1:
            assert recorded == int(applied)  # the approval and the apply: both or neither
        else:
            assert not applied and recorded in (0, 1)
        if not applied:  # still pending: approving again finishes it
            again = _approve(home, patch_hash, -1, key="second" if recorded else "root")
            assert again.returncode in (0, 4), again.stderr  # applied, or 1 of 2 approvals
            applied, recorded = _check(home, patch_hash)
            assert applied == (approvals == 1 or recorded == 2), (nth, applied, recorded)
    assert killed == len(steps)
    verified = subprocess.run([sys.executable, "-m", "ouroboros", "verify", "--home",
                               str(home)], capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr  # the CLI agrees on the last one
