"""`ouro key new` SIGKILLed at every step: the name is then either free (a new `key new`
works) or a whole key (listed, its public key readable, it loads and signs); never a
listed key that `trust grant` calls unknown and `key new` calls taken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ouroboros.kernel import Runtime
from ouroboros.kernel.keys import Keyring, verify_signature

# The real CLI in a child; a profile hook SIGKILLs it at the Nth C call (os.open, write,
# fsync, link, rename…) made by Keyring.new itself. Nothing in the product knows of it.
CHILD = """
import os, runpy, signal, sys
nth, seen = int(sys.argv[1]), [0]
def hook(frame, event, arg):
    code = frame.f_code
    if event == "c_call" and code.co_name in ("new", "_write_public") \\
            and code.co_filename.endswith("kernel/keys.py"):
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(hook)
sys.argv = ["ouro", "key", "new", "alice", "--home", sys.argv[2]]
runpy.run_module("ouroboros", run_name="__main__")
"""


def test_a_key_new_killed_at_any_step_leaves_the_name_free_or_the_key_whole(
        tmp_path: Path) -> None:
    base = tmp_path / "base"
    Runtime.init(base).close()
    killed = 0
    for nth in range(1, 60):
        home = tmp_path / f"ws{nth}"
        subprocess.run(["cp", "-a", str(base), str(home)], check=True)
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), str(home)],
                               capture_output=True, text=True, timeout=120)
        if child.returncode == 0:
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        keys = Keyring(home / "keys")
        if "alice" in keys.names():  # listed: it must be a whole, usable key
            key_id, public_hex = keys.public("alice")
            signer = keys.load("alice")
            assert public_hex == signer.public_hex and key_id == signer.key_id
            assert verify_signature(public_hex, signer.sign(b"x"), b"x")
        else:  # not listed: the name is free again
            signer = Keyring(home / "keys").new("alice")
            assert Keyring(home / "keys").public("alice")[1] == signer.public_hex
        leftovers = [p.name for p in (home / "keys").iterdir()
                     if "alice" in p.name and p.name not in ("alice.key", "alice.pub")]
        assert len(leftovers) <= 1  # at most one unreferenced temporary, never a key
    else:
        raise AssertionError("key new never completed")
    assert killed >= 3  # the hook really stopped it at several steps
