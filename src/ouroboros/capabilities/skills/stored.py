"""Reading a stored version's files back (``tools/<id>/versions/<fp>/``).

The folder is the workspace's, so any local process of the user can put something else
under a file's name: a FIFO (a plain read waits for a writer for ever), a link to
``/dev/zero`` or to another file, a file of gigabytes, bytes that are not JSON. Every
read here opens a regular file only, without following a link, reads at most a bound far
above anything the runtime writes, and turns whatever it finds instead into `ToolCorrupt`
naming the file: an integrity error a reader reports, never a hang or a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ouroboros.storage.files import UnsafeFile, read_bounded, read_json_file

from .errors import ToolCorrupt

#: The most of a stored source, case file or module read back: registered files are at
#: most 1 MiB (sources, cases) or the build's file cap (64 MiB by default, modules).
MAX_STORED_FILE = 256 << 20
#: The most of a `meta.json` read back (schemas ≤ 64 KiB, descriptions ≤ 1,000 characters,
#: signed metrics a few hundred bytes): a few KiB in practice.
MAX_META_BYTES = 16 << 20


def read_stored(path: Path, limit: int = MAX_STORED_FILE) -> bytes:
    """``path``'s bytes if it is a regular file (no link followed, a FIFO never waited
    on) of at most ``limit`` bytes; otherwise `ToolCorrupt` naming it."""
    data: bytes = _required(read_bounded, path, limit)
    return data


def read_meta(path: Path) -> dict[str, Any]:
    """A version's ``meta.json`` as a JSON object (see `read_stored`)."""
    meta: dict[str, Any] = _required(read_json_file, path, MAX_META_BYTES)
    return meta


def _required(read: Callable[[Path, int], Any], path: Path, limit: int) -> Any:
    """What ``read`` (a bounded reader of `storage.files`) gives for ``path``; a missing,
    unreadable or unsafe file is `ToolCorrupt` naming it."""
    try:
        got = read(path, limit)
    except UnsafeFile as e:  # a link, FIFO, device, folder, too large, torn (it names it)
        raise ToolCorrupt(f"{e}; restore the version's files") from None
    except OSError as e:
        raise ToolCorrupt(f"{path} cannot be read: {e.strerror or e}") from None
    if got is None:
        raise ToolCorrupt(f"{path} is missing; restore the version's files or remove "
                          "the version")
    return got
