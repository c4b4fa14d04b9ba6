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
# fsync, link, rename…) made by Keyring.new and its writers. Nothing in the product knows
# of it (the link writers live in storage/files.py). NO_TMPFILE (a third argument)
# plays a system without O_TMPFILE.
CHILD = """
import os, runpy, signal, sys
if len(sys.argv) > 3:
    del os.O_TMPFILE
nth, seen = int(sys.argv[1]), [0]
WRITERS = ("new", "_write_public", "link_new", "_link_anonymous", "_link_named",
           "_write_all")
def hook(frame, event, arg):
    code = frame.f_code
    if event == "c_call" and code.co_name in WRITERS and (
            code.co_filename.endswith("kernel/keys.py")
            or code.co_filename.endswith("storage/files.py")):
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


def _private_copies(keys: Path) -> list[str]:
    """Files in the keyring other than ``alice.key`` that hold a private key's PEM."""
    return sorted(p.name for p in keys.iterdir()
                  if p.name not in ("alice.key", "root.key", "runtime.key") and p.is_file()
                  and b"PRIVATE KEY" in p.read_bytes())


def _kill_at_every_step(tmp_path: Path, *extra: str) -> int:
    """Run `key new alice` SIGKILLed at every step; after each kill, the next `ouro key
    list` (a real child) runs and no second copy of the private key may remain."""
    base = tmp_path / "base"
    Runtime.init(base).close()
    killed = 0
    for nth in range(1, 80):
        home = tmp_path / f"ws{nth}"
        subprocess.run(["cp", "-a", str(base), str(home)], check=True)
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), str(home), *extra],
                               capture_output=True, text=True, timeout=120)
        if child.returncode == 0:
            break
        assert child.returncode == -9, child.stderr
        killed += 1
        listed = subprocess.run([sys.executable, "-m", "ouroboros", "key", "list",
                                 "--home", str(home)], capture_output=True, text=True,
                                timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert _private_copies(home / "keys") == [], nth
        key = home / "keys" / "alice.key"
        if key.exists():  # whole: it loads and signs
            signer = Keyring(home / "keys").load("alice")
            assert verify_signature(signer.public_hex, signer.sign(b"x"), b"x")
            assert b"PRIVATE KEY" in key.read_bytes()
    else:
        raise AssertionError("key new never completed")
    assert _private_copies(home / "keys") == []
    return killed


def test_a_key_new_killed_at_any_step_never_leaves_a_named_copy_of_the_key(
        tmp_path: Path) -> None:
    # With O_TMPFILE the key has no name before its link: nothing to sweep, at any kill.
    base = tmp_path / "base"
    Runtime.init(base).close()
    for nth in range(1, 80):
        home = tmp_path / f"ws{nth}"
        subprocess.run(["cp", "-a", str(base), str(home)], check=True)
        child = subprocess.run([sys.executable, "-c", CHILD, str(nth), str(home)],
                               capture_output=True, text=True, timeout=120)
        assert _private_copies(home / "keys") == [], nth  # before any other command ran
        if child.returncode == 0:
            break
    else:
        raise AssertionError("key new never completed")


def test_without_o_tmpfile_the_next_command_sweeps_a_killed_key_new_s_copy(
        tmp_path: Path) -> None:
    assert _kill_at_every_step(tmp_path, "NO_TMPFILE") >= 5


def test_the_sweep_leaves_a_live_writer_s_temporary_alone(tmp_path: Path) -> None:
    import fcntl
    import os

    Runtime.init(tmp_path / "ws").close()
    keys = tmp_path / "ws" / "keys"
    tmp = keys / ".alice.key.0123456789abcdef"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as `key new` holds it while it writes and links
    os.write(fd, b"-----BEGIN PRIVATE KEY-----\n")
    try:
        listed = subprocess.run([sys.executable, "-m", "ouroboros", "key", "list",
                                 "--home", str(tmp_path / "ws")], capture_output=True,
                                text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert tmp.exists()  # locked: a writer is alive, its file is not pulled away
    finally:
        os.close(fd)
    Keyring(keys)  # the writer is gone: the next open removes its copy
    assert not tmp.exists() and _private_copies(keys) == []


def test_discard_removes_only_the_key_it_names(tmp_path: Path) -> None:
    """`agent add` removes the key it made when its trust patch is rejected: only that key
    (another key now under the name is left), and its public half with it."""
    from ouroboros.kernel.errors import KeyError_

    ring = Keyring(tmp_path / "keys")
    made = ring.new("bot")
    other = Keyring(tmp_path / "other").new("bot")
    try:
        ring.discard("bot", other.key_id)
    except KeyError_ as e:
        assert "is not the key" in str(e)
    else:
        raise AssertionError("a different key id was discarded")
    assert ring.names() == ["bot"] and ring.load("bot").key_id == made.key_id
    ring.discard("bot", made.key_id)
    assert ring.names() == [] and sorted((tmp_path / "keys").iterdir()) == []
