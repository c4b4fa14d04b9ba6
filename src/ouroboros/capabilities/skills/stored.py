"""Reading a stored version's files back (``tools/<id>/versions/<fp>/``).

The folder is the workspace's, so any local process of the user can put something else
under a file's name: a FIFO (a plain read waits for a writer for ever), a link to
``/dev/zero`` or to another file, a file of gigabytes, bytes that are not JSON. Every
read here opens a regular file only, without following a link, reads at most a bound far
above anything the runtime writes, and turns whatever it finds instead into `ToolCorrupt`
naming the file: an integrity error a reader reports, never a hang or a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ouroboros.storage.files import UnsafeFile, read_small

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
    try:
        data = read_small(path, limit + 1)
    except UnsafeFile as e:  # a link, FIFO, device or folder (the message names it)
        raise ToolCorrupt(f"{e}; restore the version's files") from None
    except OSError as e:
        raise ToolCorrupt(f"{path} cannot be read: {e.strerror or e}") from None
    if data is None:
        raise ToolCorrupt(f"{path} is missing; restore the version's files or remove "
                          "the version")
    if len(data) > limit:
        raise ToolCorrupt(f"{path} is larger than {limit} bytes: not a file the runtime "
                          "wrote; restore it or remove the version")
    return data


def read_meta(path: Path) -> dict[str, Any]:
    """A version's ``meta.json`` as a JSON object (see `read_stored`)."""
    data = read_stored(path, MAX_META_BYTES)
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, nested past the stack
        raise ToolCorrupt(f"{path} is not JSON ({type(e).__name__}); restore it or "
                          "remove the version") from None
    if not isinstance(meta, dict):
        raise ToolCorrupt(f"{path} is not a JSON object; restore it or remove the version")
    return meta
