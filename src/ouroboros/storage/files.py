"""Small files rewritten on every append: the signed checkpoint beside the ledger and its
copies in witness directories.

Why not a temporary file and a rename: on ext4 (the default Linux file system) a rename
over an existing file, like a truncation to zero, makes the kernel start writing the new
data out at once (``auto_da_alloc``), which measured 1.4–3.8 ms per replacement here,
5–10 times a whole governed submit. A checkpoint is instead rewritten in place with one
``pwrite`` at offset 0 (about 2 µs):

- a process crash cannot tear it: a write of a few hundred bytes to the page cache is one
  system call that completes or does not happen;
- its length never shrinks (tree sizes only grow), so no truncation is needed; a longer
  file than the note means someone else wrote there, and the note then fails to parse;
- concurrent readers can see a half-copied page, so readers either hold the writers' lock
  (the local checkpoint) or read again when a signature fails (witness copies).

With ``durable`` the file is fsynced after the ledger's own commit was: the checkpoint can
then never survive a power loss that the events it vouches for did not.

Where writers publish after their commit and outside the ledger's lock (PostgreSQL), two
of them can arrive in either order; ``rewrite_unless_newer`` keeps a checkpoint from
moving back: it compares tree sizes under a lock and leaves a newer checkpoint alone.
"""

from __future__ import annotations

import os
import re

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SIZE_LINE = re.compile(rb"[^\n]*\n(0|[1-9][0-9]{0,18})\n")


#: The most of a checkpoint file read back (a signed note is a few hundred bytes).
MAX_NOTE = 1 << 20


def read_note(path: str) -> bytes | None:
    """A checkpoint file's bytes (at most ``MAX_NOTE``), None when there is none; the
    caller holds whatever lock orders it with the writers."""
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_NOTE)
    except FileNotFoundError:
        return None


def rewrite_in_place(path: str, data: bytes, *, durable: bool) -> None:
    """Write ``data`` at offset 0 of ``path`` (created if missing), cut any longer tail."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


class InPlaceFile:
    """``rewrite_in_place`` for a file rewritten on every append (the ledger's own
    checkpoint): the descriptor stays open, so a rewrite is fstat + pwrite, not open +
    pwrite + fstat + close. If the file was removed or renamed over since it was opened
    (its link count is 0), it is opened again by name: the write always lands in the file
    that readers find at ``path``. Callers serialise rewrites (the writers' lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def rewrite(self, data: bytes, *, durable: bool) -> None:
        fd = self._fd
        if fd is None:
            fd = self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        if st.st_nlink == 0:
            os.close(fd)
            self._fd = None
            fd = self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            st = os.fstat(fd)
        os.pwrite(fd, data, 0)
        if st.st_size > len(data):
            os.ftruncate(fd, len(data))
        if durable:
            os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_new(path: str, data: bytes) -> None:
    """Create ``path`` with ``data`` durably (once-only files such as a verifier key)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def tree_size(note: bytes) -> int:
    """The tree size a signed checkpoint commits to (its second line, C2SP
    tlog-checkpoint), or -1 for anything that is not one. Read without checking the
    signature: only to order writers; readers verify."""
    m = _SIZE_LINE.match(note)
    return int(m.group(1)) if m else -1


def rewrite_unless_newer(path: str, data: bytes, *, durable: bool, lock: bool = True) -> bool:
    """``rewrite_in_place`` unless ``path`` already holds a checkpoint of a larger tree;
    ``True`` if it wrote. ``lock``: take the file's own ``flock`` to order writers (it is
    rewritten in place, so always the same inode); ``False`` when the caller already holds
    a lock that orders them."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if lock and fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close
        if tree_size(os.pread(fd, 1 << 16, 0)) > tree_size(data):
            return False
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
        if durable:
            os.fsync(fd)
        return True
    finally:
        os.close(fd)
