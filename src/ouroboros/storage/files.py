"""Small files replaced whole: checkpoints beside the ledger and in witness directories."""

from __future__ import annotations

import os


def write_atomically(path: str, data: bytes, *, durable: bool) -> None:
    """Replace ``path`` by ``data`` through a temporary file and a rename, so a reader sees
    the old bytes or the new ones, never a mix. The temporary name is fixed: callers hold
    the writers' lock. ``durable`` adds the fsyncs a power loss needs (file, then
    directory); without it a process crash still cannot tear the file."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
