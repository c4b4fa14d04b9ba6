"""A tool's files on disk, read and written without ever following a link.

A tool directory is input from a tool author, who may have planted a symlink (the directory
itself, ``src/``, one file) to a secret elsewhere, a hard link to one, or a device or FIFO
that blocks the reader. Every entry is opened relative to its parent's descriptor with
``O_NOFOLLOW`` and checked with ``fstat`` after opening, so nothing swapped in between the
check and the open is ever read. The same walk checks the build's own copy again before a
compiler sees it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import BuildFailed, MalformedTool

MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 4096
MAX_DEPTH = 16

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_tree(root: Path) -> dict[str, bytes]:
    """The files of a tool directory that belong to a spec (relative POSIX path → bytes):
    ``meta.json`` and everything under ``src/`` and ``tests/`` (``__pycache__`` skipped).

    Every other entry is checked all the same. Refuses, naming the entry: `root` itself being
    a symlink or not a directory, a symlink anywhere below it, a file with more than one hard
    link, a device, FIFO or socket, a non-UTF-8 name, more than `MAX_ENTRIES` entries or
    `MAX_DEPTH` levels, a file larger than `MAX_FILE_BYTES`.

    Raises:
        MalformedTool: what is wrong, with the path.
    """
    return _read(root, _in_spec)


def read_tree_all(root: Path) -> dict[str, bytes]:
    """Every regular file under `root`, with the same refusals (for a build's own copy)."""
    return _read(root, lambda rel: True)


def _in_spec(rel: tuple[str, ...]) -> bool:
    if "__pycache__" in rel:
        return False
    return rel == ("meta.json",) or (len(rel) > 1 and rel[0] in ("src", "tests"))


def _read(root: Path, wanted: Callable[[tuple[str, ...]], bool]) -> dict[str, bytes]:
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise MalformedTool(f"{root} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise MalformedTool(f"{root} is a symlink; give the tool directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise MalformedTool(f"{root} is not a directory")
    fd = os.open(root, _DIR_FLAGS)
    try:
        if not _same(os.fstat(fd), st):
            raise MalformedTool(f"{root} changed while it was opened")
        out: dict[str, bytes] = {}
        _walk(fd, root, (), out, [0], wanted)
        return out
    finally:
        os.close(fd)


def _walk(dir_fd: int, root: Path, parts: tuple[str, ...], out: dict[str, bytes],
          count: list[int], wanted: Callable[[tuple[str, ...]], bool]) -> None:
    if len(parts) > MAX_DEPTH:
        raise MalformedTool(f"{root / '/'.join(parts)} is nested deeper than {MAX_DEPTH} levels")
    for name in sorted(os.listdir(dir_fd)):
        count[0] += 1
        if count[0] > MAX_ENTRIES:
            raise MalformedTool(f"{root} holds more than {MAX_ENTRIES} entries")
        rel = (*parts, name)
        shown = root / "/".join(rel)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedTool(f"{shown!s} has a name that is not valid UTF-8") from None
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                if not _same(os.fstat(sub), st):
                    raise MalformedTool(f"{shown} changed while it was read")
                _walk(sub, root, rel, out, count, wanted)
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise MalformedTool(f"{shown} is {_kind(st.st_mode)}; tools may only hold "
                                "regular files and directories")
        if st.st_nlink > 1:
            raise MalformedTool(f"{shown} has {st.st_nlink} hard links; copy the file instead "
                                "of linking it")
        if wanted(rel):
            out["/".join(rel)] = _read_file(dir_fd, name, st, shown)

def _read_file(dir_fd: int, name: str, st: os.stat_result, shown: Path) -> bytes:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:  # ELOOP: it became a symlink after the stat
        raise MalformedTool(f"{shown} cannot be opened safely: {e.strerror}") from None
    try:
        now = os.fstat(fd)
        if not _same(now, st) or not stat.S_ISREG(now.st_mode) or now.st_nlink > 1:
            raise MalformedTool(f"{shown} changed while it was read")
        if now.st_size > MAX_FILE_BYTES:
            raise MalformedTool(f"{shown} is larger than {MAX_FILE_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise MalformedTool(f"{shown} is larger than {MAX_FILE_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_tree(files: dict[str, bytes], into: Path) -> None:
    """Write `files` into the empty directory `into`, creating every directory and file
    with ``O_NOFOLLOW``/``O_EXCL`` relative to its parent, then read the copy back and
    insist it is exactly `files`: nothing followed, nothing extra, nothing different.

    Raises:
        BuildFailed: the copy could not be written as asked, or reads back differently.
    """
    try:
        _write(files, into)
        copy = read_tree_all(into)
    except (OSError, MalformedTool) as e:
        raise BuildFailed(f"the build's copy of the sources cannot be made safely: {e}") from None
    if copy != files:
        raise BuildFailed("the build's copy of the sources differs from the sources")


def _write(files: dict[str, bytes], into: Path) -> None:
    root_fd = os.open(into, _DIR_FLAGS)
    try:
        for rel, data in sorted(files.items()):
            *dirs, name = rel.split("/")
            fd = os.dup(root_fd)
            try:
                for d in dirs:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(d, 0o755, dir_fd=fd)
                    sub = os.open(d, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = sub
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o644, dir_fd=fd)
                with os.fdopen(out, "wb") as fh:
                    fh.write(data)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
