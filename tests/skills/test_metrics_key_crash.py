"""The store's metrics key made by a process SIGKILLed at every step: afterwards the key
is absent (the next user makes it) or whole (32 bytes, the same for every later user), and
no second, hidden copy of it is left beside it: a copy would let whoever can read the
folder forge signed use counts long after the key itself was replaced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# A child makes the key; a profile hook SIGKILLs it at the Nth C call (open, write, fsync,
# link, unlink…) made from the metrics module or the file helpers. Nothing in the product
# knows of it. NO_TMPFILE (a third argument) plays a system without O_TMPFILE.
CHILD = """
import os, signal, sys
from pathlib import Path
if len(sys.argv) > 3:
    del os.O_TMPFILE
from ouroboros.capabilities.skills import metrics
nth, seen = int(sys.argv[1]), [0]
def hook(frame, event, arg):
    name = frame.f_code.co_filename
    if event == "c_call" and (name.endswith("skills/metrics.py")
                              or name.endswith("storage/files.py")):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(hook)
key = metrics.key_of(Path(sys.argv[2]))
sys.setprofile(None)
print(key.hex())
"""
READ = """
import sys
from pathlib import Path
from ouroboros.capabilities.skills import metrics
print(metrics.key_of(Path(sys.argv[1])).hex())
"""


def _copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != "metrics.key")


def _kill_at_every_step(tmp_path: Path, *extra: str) -> tuple[int, list[list[str]]]:
    killed, left_at_kill = 0, []
    for nth in range(1, 120):
        root = tmp_path / f"tools{nth}"
        root.mkdir()
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), str(root), *extra],
                               capture_output=True, text=True, timeout=120)
        if child.returncode == 0:
            made = child.stdout.strip()
            assert len(bytes.fromhex(made)) == 32
            assert (root / "metrics.key").read_bytes().hex() == made
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        left_at_kill.append(_copies(root))
        key = root / "metrics.key"
        before = key.read_bytes() if key.exists() else None
        assert before is None or len(before) == 32, (nth, before)  # never a torn key
        # The next user: reads the whole key as it is, or makes one; and sweeps leftovers.
        after = subprocess.run([sys.executable, "-c", READ, str(root)], capture_output=True,
                               text=True, timeout=120)
        assert after.returncode == 0, after.stderr
        got = bytes.fromhex(after.stdout.strip())
        assert len(got) == 32 and got == key.read_bytes()
        if before is not None:
            assert got == before  # a whole key is kept, never replaced by a second one
        assert _copies(root) == [], (nth, _copies(root))
    else:
        raise AssertionError("the key was never made")
    return killed, left_at_kill


def test_a_metrics_key_made_by_a_killed_process_never_leaves_a_named_copy(
        tmp_path: Path) -> None:
    # With O_TMPFILE the key has no name before its link: nothing is left at any kill.
    killed, left = _kill_at_every_step(tmp_path)
    assert killed >= 3
    assert all(names == [] for names in left), left


def test_without_o_tmpfile_the_next_user_sweeps_a_killed_writer_s_copy(
        tmp_path: Path) -> None:
    killed, _left = _kill_at_every_step(tmp_path, "NO_TMPFILE")
    assert killed >= 3
