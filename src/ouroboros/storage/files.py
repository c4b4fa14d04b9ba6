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

Every file the runtime creates or locks by name is opened here (``open_regular``,
``flocked``): whoever can add entries to a directory the runtime writes (a witness on a
shared mount, an index folder) could otherwise plant a symbolic link under the expected
name and have the runtime create, truncate or overwrite the link's target with its own
rights, or a FIFO that blocks a reader for ever. No link is followed and nothing but a
regular file is used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ouroboros.storage.ledger import LedgerUnavailable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_SIZE_LINE = re.compile(rb"[^\n]*\n(0|[1-9][0-9]{0,18})\n")


#: The most of a checkpoint file read back (a signed note is a few hundred bytes).
MAX_NOTE = 1 << 20

_GUARD = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO opens, not waits


#: How long a lock another process holds is waited for, in seconds, unless
#: ``OURO_LOCK_TIMEOUT`` says otherwise (SQLite's ``busy_timeout`` is 30 s as well).
LOCK_TIMEOUT = 30.0


class LockTimeout(LedgerUnavailable):
    """A lock another process held for longer than the bound (a stopped or stuck holder:
    Ctrl-Z, ``kill -STOP``, a debugger). Nothing was done under it; interfaces show it as
    the ledger's other unavailability errors (exit 1 ``failure``, HTTP 503)."""

    def __init__(self, path: str, bound: float, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{path} is locked by {holder}: gave up after waiting {bound:g} s",
                         "is that process stopped (Ctrl-Z, kill -STOP) or stuck? resume or "
                         "end it; OURO_LOCK_TIMEOUT=SECONDS sets how long to wait")
        self.path = path
        self.pid = pid


def lock_timeout() -> float:
    """The bound on a wait for a lock: ``OURO_LOCK_TIMEOUT`` seconds (0 = do not wait),
    30 by default."""
    raw = os.environ.get("OURO_LOCK_TIMEOUT", "").strip()
    if not raw:
        return LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 86400):
        raise LedgerUnavailable(f"OURO_LOCK_TIMEOUT={raw!r} is not a number of seconds "
                                "from 0 to 86400", "set it to e.g. 30, or unset it",
                                kind="usage")
    return value


def lock_holder(fd: int) -> int | None:
    """The pid the kernel lists for a ``flock`` on ``fd``'s file (``/proc/locks``: the
    process that took it), or None where that is not known."""
    try:
        st = os.fstat(fd)
        with open("/proc/locks", "rb") as fh:
            lines = fh.read(1 << 20).decode("ascii", "replace").splitlines()
    except OSError:
        return None
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"; waiters are "1: -> FLOCK …"
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == where:
            with contextlib.suppress(ValueError):
                return int(parts[4])
    return None


#: ``timeout=`` for a lock whose holder legitimately works for minutes (a model or
#: toolchain build, a proposal through its gates): wait as long as it takes.
UNBOUNDED = math.inf
#: ``ON_LOOP.on``: this thread is an event loop's (set by `sqlite.no_wait` for its whole
#: block, after the commit too): a lock a stranger can hold for as long as they like (a
#: witness's checkpoint copy) is tried, not waited for.
ON_LOOP = threading.local()


def lock_bounded(fd: int, op: int, path: str | os.PathLike[str],
                 timeout: float | None = None) -> None:
    """``flock(fd, op)``, waiting at most `lock_timeout` seconds for another process to
    let go, else `LockTimeout` (naming ``path`` and, where the kernel says, the holder).

    Uncontended it is one ``flock(LOCK_NB)``. Contended, one thread waits in a blocking
    ``flock`` on a duplicate of ``fd`` (so it wakes the moment the holder lets go, no
    polling) while the caller waits for it up to the bound. A wait given up leaves that
    thread to take the lock when the holder lets go and drop it at once: after a
    `LockTimeout` the caller must not lock through ``fd``'s open file (close it, or open
    the lock file again), since that late unlock would release its lock. ``timeout``:
    another bound than ``OURO_LOCK_TIMEOUT`` (`UNBOUNDED`: the plain blocking wait)."""
    try:
        fcntl.flock(fd, op | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    bound = lock_timeout() if timeout is None else timeout
    if bound == UNBOUNDED:
        fcntl.flock(fd, op)
        return
    if bound == 0:  # no wait: no thread left behind blocked in flock
        raise LockTimeout(os.fspath(path), bound, lock_holder(fd))
    got, mutex, state = threading.Event(), threading.Lock(), {"abandoned": False}
    failed: list[OSError] = []
    dup = os.dup(fd)

    def wait() -> None:
        try:
            fcntl.flock(dup, op)
        except OSError as e:
            failed.append(e)
        with mutex:
            if state["abandoned"] and not failed:
                fcntl.flock(dup, fcntl.LOCK_UN)
            got.set()
        os.close(dup)

    threading.Thread(target=wait, name="ouro-lock-wait", daemon=True).start()
    if not got.wait(bound):
        with mutex:
            if not got.is_set():
                state["abandoned"] = True
        if state["abandoned"]:
            raise LockTimeout(os.fspath(path), bound, lock_holder(fd))
    if failed:
        raise failed[0]


class UnsafeFile(OSError):
    """A link or special file where the runtime expected its own regular file; its
    ``strerror`` names the path (callers often show only that)."""

    def __str__(self) -> str:
        return str(self.strerror)


def open_regular(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open`` that follows no symbolic link in the last component and returns only a
    regular file's descriptor; the refusal is an ``OSError`` naming the path."""
    try:
        fd = os.open(path, flags | _GUARD, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFile(errno.ELOOP, f"{os.fspath(path)} is a symbolic link; the runtime "
                             "does not follow links in the files it keeps (remove it)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(errno.EINVAL, f"{os.fspath(path)} is not a regular file (remove it)")
    return fd


def regular_opener(path: str, flags: int) -> int:
    """``open(path, mode, opener=regular_opener)``: the built-in ``open`` through
    ``open_regular`` (0644 before the umask, as ``open`` creates files)."""
    return open_regular(path, flags, 0o644)


@contextlib.contextmanager
def flocked(path: str | os.PathLike[str], *, shared: bool = False,
            flags: int = os.O_RDWR | os.O_CREAT, mode: int = 0o600,
            timeout: float | None = None) -> Iterator[int]:
    """Hold ``flock`` on ``path`` (a lock file, or a log appended under its own lock:
    ``flags``; created if missing) for the block; yields the descriptor. The lock goes
    with the descriptor, released by the close. Another process holding it past
    `lock_timeout` (or ``timeout``) is a `LockTimeout` (see `lock_bounded`)."""
    fd = open_regular(path, flags, mode)
    try:
        if fcntl is not None:
            lock_bounded(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, path, timeout)
        yield fd
    finally:
        os.close(fd)


class DamagedFile(UnsafeFile):
    """A file of the runtime's that holds what the runtime never writes there: more bytes
    than the bound, text that is not UTF-8, JSON that is torn or of another shape."""


def read_small(path: str | os.PathLike[str], limit: int | None = MAX_NOTE) -> bytes | None:
    """At most ``limit`` bytes (all with None) of a regular file, None when there is none."""
    try:
        fd = open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    return _read_fd(fd, limit)


def read_bounded(path: str | os.PathLike[str], limit: int, *,
                 follow_links: bool = False) -> bytes | None:
    """A regular file's bytes, None when there is none: a link, FIFO, device or folder is
    `UnsafeFile` (never followed, never waited on), more than ``limit`` bytes `DamagedFile`
    (judged by its size before reading, so a huge file costs no memory); both name it.
    ``follow_links``: a link is read through when it ends at a regular file (the user's own
    files, e.g. a settings file kept in a dotfiles folder); the rest holds."""
    try:
        fd = _open_followed(path) if follow_links else open_regular(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_size > limit:
        os.close(fd)
        raise _too_large(path, limit)
    data = _read_fd(fd, limit + 1)
    if len(data) > limit:  # it grew while being read
        raise _too_large(path, limit)
    return data


def _open_followed(path: str | os.PathLike[str]) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(errno.EINVAL, f"{os.fspath(path)} is not a regular file (remove it)")
    return fd


def _too_large(path: str | os.PathLike[str], limit: int) -> DamagedFile:
    return DamagedFile(errno.EFBIG, f"{os.fspath(path)} is larger than {limit} bytes: not a "
                       "file the runtime wrote (restore or remove it)")


def read_text_file(path: str | os.PathLike[str], limit: int, *,
                   follow_links: bool = False) -> str | None:
    """`read_bounded` decoded as UTF-8; other bytes are `DamagedFile` naming the offset."""
    data = read_bounded(path, limit, follow_links=follow_links)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DamagedFile(errno.EILSEQ, f"{os.fspath(path)} is not UTF-8 text (byte "
                          f"{e.start}): restore or remove it") from None


def read_json_file(path: str | os.PathLike[str], limit: int,
                   shape: type = dict) -> Any:
    """`read_bounded` parsed as JSON of type ``shape`` (an object by default), None when
    there is no file; torn JSON, text that is not UTF-8 or another shape is `DamagedFile`."""
    data = read_bounded(path, limit)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, nested past the stack
        raise DamagedFile(errno.EINVAL, f"{os.fspath(path)} is not valid JSON "
                          f"({type(e).__name__}): restore or remove it") from None
    if not isinstance(value, shape):
        raise DamagedFile(errno.EINVAL, f"{os.fspath(path)} is not a JSON "
                          f"{'object' if shape is dict else shape.__name__}: restore or "
                          "remove it")
    return value


def _read_fd(fd: int, limit: int | None) -> bytes:
    """At most ``limit`` bytes of ``fd`` (all with None); closes it."""
    try:
        out, size = bytearray(), os.fstat(fd).st_size
        while limit is None or len(out) < limit:
            # reads sized by the file, not the limit: a few-KiB file under a 16 MiB bound
            # must not cost a 16 MiB buffer
            want = max(size - len(out), 1 << 16)
            chunk = os.read(fd, want if limit is None else min(want, limit - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)


def replace_file(path: str | os.PathLike[str], data: bytes | str, *, durable: bool = False,
                 mode: int = 0o644) -> None:
    """Replace ``path`` whole by writing ``<path>.tmp`` and renaming it over: readers see
    the old or the new file, never half of one. A leftover temporary file (a crash, or a
    planted link) is removed, never written through; ``durable`` fsyncs the file before the
    rename and its folder after it, so a power loss leaves the old file or the new one,
    not an empty one or a rename that never reached the disk."""
    tmp = os.fspath(path) + ".tmp"
    create_new(tmp, data, durable=durable, mode=mode)
    os.replace(tmp, path)
    if durable:
        fsync_dir(os.path.dirname(os.path.abspath(path)))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the names created, renamed or removed in the folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_new(path: str | os.PathLike[str], data: bytes | str, *, durable: bool = False,
               mode: int = 0o644) -> None:
    """Write ``data`` to a new file ``path``; whatever was there (a leftover temporary
    file, a planted link) is removed first, never written through."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_note(path: str) -> bytes | None:
    """A checkpoint file's bytes (at most ``MAX_NOTE``), None when there is none; the
    caller holds whatever lock orders it with the writers."""
    return read_small(path, MAX_NOTE)


class InPlaceFile:
    """A file rewritten in place on every append (the ledger's own checkpoint): ``data``
    at offset 0, any longer tail cut. The descriptor stays open, so a rewrite is fstat +
    pwrite, not open + pwrite + fstat + close. If the file was removed or renamed over since it was opened
    (its link count is 0), it is opened again by name: the write always lands in the file
    that readers find at ``path``. Callers serialise rewrites (the writers' lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def rewrite(self, data: bytes, *, durable: bool) -> None:
        fd = self._fd
        if fd is None:
            fd = self._fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        st = os.fstat(fd)
        if st.st_nlink == 0:
            os.close(fd)
            self._fd = None
            fd = self._fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
    replace_file(path, data, durable=True)


def tree_size(note: bytes) -> int:
    """The tree size a signed checkpoint commits to (its second line, C2SP
    tlog-checkpoint), or -1 for anything that is not one. Read without checking the
    signature: only to order writers; readers verify."""
    m = _SIZE_LINE.match(note)
    return int(m.group(1)) if m else -1


def rewrite_unless_newer(path: str, data: bytes, *, durable: bool, lock: bool = True) -> bool:
    """Rewrite ``path`` in place (as `InPlaceFile` does) unless it already holds a
    checkpoint of a larger tree; ``True`` if it wrote. ``lock``: take the file's own ``flock`` to order writers (it is
    rewritten in place, so always the same inode; held by another process past the bound:
    `LockTimeout`); ``False`` when the caller already holds a lock that orders them."""
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if lock and fcntl is not None:  # released by the close; on an event loop, no wait
            lock_bounded(fd, fcntl.LOCK_EX, path, 0.0 if getattr(ON_LOOP, "on", False)
                         else None)
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


@contextlib.contextmanager
def scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory under ``parent`` for work that is renamed into place or dropped:
    ``flock``ed (on the directory itself) while the block runs, removed after it. A kill
    leaves it behind unlocked, for `sweep_scratch` to remove."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        if fcntl is not None:
            with contextlib.suppress(OSError):  # no flock here (some NFS): never swept
                fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)  # swept between its creation and the lock: take another
    try:
        yield path
    finally:
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def sweep_scratch(parent: Path, prefix: str) -> None:
    """Remove the `scratch_dir` folders under ``parent`` whose process died (a kill, a
    power loss): those no live process holds locked."""
    sweep_unlocked(parent, lambda name: name.startswith(prefix))


def lock_exclusive(fd: int) -> None:
    """Wait for ``flock(LOCK_EX)`` on a descriptor just created (``O_EXCL | O_NOFOLLOW``)
    that marks a temporary file as its live writer's (see `sweep_unlocked`)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def sweep_unlocked(parent: Path, match: Callable[[str], bool]) -> None:
    """Remove the entries of ``parent`` whose name ``match``es and that no live process
    holds locked: temporaries a killed writer left. Links and special files are left; a
    folder that cannot be read or changed is left as it is."""
    try:
        names = [name for name in os.listdir(parent) if match(name)]
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            fd = os.open(parent / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
            try:
                mode = os.fstat(fd).st_mode
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a live writer
                if stat.S_ISDIR(mode):
                    shutil.rmtree(parent / name, ignore_errors=True)
                elif stat.S_ISREG(mode):
                    os.unlink(parent / name)
            finally:
                os.close(fd)


def link_new(path: Path, data: bytes, temp_name: Callable[[], str], *,
             mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``, written whole and fsynced before it gets its name,
    then linked into place: a crash leaves the name free or the file complete, never an
    empty or torn one, and link, unlike rename, never replaces a file another writer put
    there first (`FileExistsError`). For secrets (private keys, MAC keys): where the system
    allows it (O_TMPFILE) the file has no name at all before the link, so a kill leaves
    no second copy; elsewhere a named temporary (``temp_name()`` in the same folder),
    locked while it lives, which the caller sweeps (`sweep_unlocked`) if a kill left it."""
    if not _link_anonymous(path, data, mode):
        _link_named(path, data, temp_name, mode)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _link_anonymous(path: Path, data: bytes, mode: int) -> bool:
    """`link_new` by O_TMPFILE; False where the system or file system cannot (then
    nothing was written)."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return False  # a file system without O_TMPFILE
        raise
    try:
        _write_all(fd, data)
        # A dir_fd makes os.link call linkat(AT_SYMLINK_FOLLOW), not link(), which would
        # try to link the /proc entry itself
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        os.close(fd)
    return True


def _link_named(path: Path, data: bytes, temp_name: Callable[[], str], mode: int) -> None:
    """`link_new` where O_TMPFILE is missing: a named temporary, locked from its creation
    to its removal so that a sweep leaves a live writer's alone."""
    while True:
        tmp = path.with_name(temp_name())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
        lock_exclusive(fd)
        if os.fstat(fd).st_nlink:
            break
        os.close(fd)  # swept between its creation and the lock: take another name
    try:
        _write_all(fd, data)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)
