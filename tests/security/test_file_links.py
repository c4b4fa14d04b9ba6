"""Links and special files planted where the runtime writes its small files.

The attacker can create entries in a directory the runtime writes to (a witness directory
on a shared mount, an index or spool folder) but cannot write the victim file directly; a
symbolic link named like the runtime's file would make an ordinary ``open(O_CREAT)``
write (or truncate, or create) the link's target with the runtime's rights, and a FIFO
would make a read block forever. Every such open goes through ``storage.files``
(``open_regular``/``flocked``): no link is followed, nothing but a regular file is used,
and the refusal names the path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.anchors import log_id
from ouroboros.storage import files

from .kernelkit import ouro, routing

SRC = Path(__file__).resolve().parents[2] / "src" / "ouroboros"
PRECIOUS = b"PRECIOUS " * 200


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(PRECIOUS)
    return victim


def test_a_link_planted_in_a_witness_while_the_runtime_runs_is_not_written_through(
        tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    witness = tmp_path / "wit"
    witness.mkdir()
    rt.add_witness(witness)
    victim = _victim(tmp_path)
    copy = next(witness.glob("*.checkpoint"))
    copy.unlink()
    copy.symlink_to(victim)
    try:
        routing(rt, 2)  # the appends still land: a witness never stops the runtime
        assert victim.read_bytes() == PRECIOUS
        assert copy.is_symlink()
        report = rt.verify(witnesses=[witness])
    except Exception as e:  # the verify refusal is an IntegrityError naming the witness
        report = e
    finally:
        rt.close()
    assert victim.read_bytes() == PRECIOUS
    assert "symbolic link" in str(report) or "wit" in str(report)


def test_a_link_planted_as_the_witness_key_temp_file_is_not_written_through(
        tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    witness = tmp_path / "wit"
    witness.mkdir()
    victim = _victim(tmp_path)
    (witness / f"{log_id(rt.refresh().ledger_id)}.vkey.tmp").symlink_to(victim)
    try:
        rt.add_witness(witness)  # a leftover temporary file is removed, never followed
        assert next(witness.glob("*.vkey")).read_text().startswith("ouroboros/ledger/")
    finally:
        rt.close()
    assert victim.read_bytes() == PRECIOUS


def test_the_local_checkpoint_replaced_by_a_link_is_not_written_through(
        tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    victim = _victim(tmp_path)
    checkpoint = Path(rt.backend.checkpoint_path)
    checkpoint.unlink()
    checkpoint.symlink_to(victim)
    try:
        with pytest.raises(OSError, match="symbolic link"):
            routing(rt, 1)
    finally:
        rt.close()
    assert victim.read_bytes() == PRECIOUS


def test_a_fifo_planted_as_a_witness_copy_does_not_hang_verify(tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws")
    witness = tmp_path / "wit"
    witness.mkdir()
    rt.add_witness(witness)
    rt.close()
    copy = next(witness.glob("*.checkpoint"))
    copy.unlink()
    os.mkfifo(copy)
    code = textwrap.dedent(f"""
        from ouroboros.kernel import Runtime
        try:
            Runtime.open({str(tmp_path / 'ws')!r}).verify(witnesses=[{str(witness)!r}])
        except Exception as e:
            print("refused:", type(e).__name__, e)
    """)
    here = str(Path(files.__file__).parents[2])  # this tree's code, whatever the cwd
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": here})
    assert "refused: IntegrityError" in r.stdout and "not a regular file" in r.stdout, (
        r.stdout, r.stderr)


def test_flocked_refuses_a_dangling_link_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "created-by-the-victim"
    target.parent.mkdir()
    lock = tmp_path / ".lock"
    lock.symlink_to(target)
    with pytest.raises(OSError, match=r"\.lock.*symbolic link"), files.flocked(lock):
        pass
    assert not target.exists() and lock.is_symlink()


def test_flocked_refuses_a_link_to_an_existing_file_and_a_directory(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    lock = tmp_path / ".lock"
    lock.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"), files.flocked(lock, shared=True):
        pass
    lock.unlink()
    lock.mkdir()
    with pytest.raises(OSError), files.flocked(lock):
        pass
    assert victim.read_bytes() == PRECIOUS


def test_flocked_excludes_another_process_and_releases_on_exit(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    probe = textwrap.dedent(f"""
        import fcntl, os, sys
        fd = os.open({str(lock)!r}, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(7)
        sys.exit(0)
    """)
    with files.flocked(lock):
        assert subprocess.run([sys.executable, "-c", probe]).returncode == 7
    assert subprocess.run([sys.executable, "-c", probe]).returncode == 0
    assert lock.stat().st_mode & 0o777 == 0o600


def test_open_regular_appends_to_a_plain_file_and_refuses_links(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    fd = files.open_regular(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, b"a\n")
    os.close(fd)
    assert log.read_bytes() == b"a\n"
    victim = _victim(tmp_path)
    log.unlink()
    log.symlink_to(victim)
    with pytest.raises(OSError, match=r"calls\.jsonl.*symbolic link"):
        files.open_regular(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    assert victim.read_bytes() == PRECIOUS


_FLOCK = re.compile(r"fcntl\.flock\(")
_CREATE = re.compile(r"os\.open\(.*O_CREAT")
_TMP_WRITE = re.compile(r"tmp\w*\.write_(text|bytes)\(")
_LOCK_OPEN = re.compile(r"""open\([^)]*\.lock|\.lock["']\)\.open\(|open\(self\._path, "w\"""")


def test_every_lock_and_created_file_goes_through_the_guarded_open() -> None:
    """A new ``flock`` on a file opened by name, an ``O_CREAT`` that follows links, or a
    temporary file written by a predictable name would bring the link bugs back. Four modules keep a lock descriptor open between
    uses and so call ``flock`` themselves; their opens are held to the same rule."""
    keeps_fd_open = {"storage/files.py", "storage/sqlite.py", "storage/postgres/ledger.py",
                     "capabilities/skills/metrics.py"}
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            code = line.split("#", 1)[0]
            then = lines[n] if n < len(lines) else ""
            bad = ((_FLOCK.search(code) and rel not in keeps_fd_open)
                   or (_CREATE.search(code) and rel != "storage/files.py"
                   and not ("O_EXCL" in code and "O_NOFOLLOW" in code))
                   or (_LOCK_OPEN.search(code) and "opener=regular_opener" not in line + then)
                   or _TMP_WRITE.search(code))
            if bad:
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_a_link_planted_as_the_ledger_lock_is_one_clear_cli_error(tmp_path: Path) -> None:
    Runtime.init(tmp_path / "ws").close()
    lock = tmp_path / "ws" / "ledger.db.lock"
    target = tmp_path / "created-by-the-victim"
    lock.unlink()
    lock.symlink_to(target)
    r = ouro("state", home=tmp_path / "ws")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{lock} is a symbolic link" in r.stderr
    assert not target.exists()
