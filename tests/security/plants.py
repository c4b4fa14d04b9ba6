"""What an attacker who can write into the workspace (any local process of the user), or a
damaged disk, puts under the name of a file the runtime reads back, and how a test runs
the reader so that a wrong answer fails the test instead of the machine: a FIFO would
block a reader for ever (so readers run in a child with a deadline) and `/dev/zero` or a
huge file would fill its memory (so the child's address space is capped)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

#: The plants every reader of a JSON file meets (the test ids of the files using it).
PLANTS = ["fifo", "dev_zero", "link_to_victim", "huge", "not_utf8", "torn", "wrong_shape"]
#: The address space a reader's child gets: a file read whole past it fails there.
MEMORY_CAP = 1 << 31


def cap_memory() -> None:
    """``preexec_fn`` of a reader's child: /dev/zero read whole would pass `MEMORY_CAP`
    and fail in the child, not fill the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(argv: list[str], *, timeout: float = 30, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` in a child with a deadline and `cap_memory`."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env, preexec_fn=cap_memory)


def run_python(script: str, *args: str, timeout: float = 30
               ) -> subprocess.CompletedProcess[str]:
    """A reader script (``python -c``) in a child, as `run_capped`."""
    return run_capped([sys.executable, "-c", script, *args], timeout=timeout)


def plant(path: Path, how: str, victim: Path | None = None, shape: bytes = b"", *,
          huge: int = 1 << 30) -> None:
    """Put the ``how`` plant under ``path`` (whatever was there goes):

    ``fifo``; ``dev_zero`` (a link to it); ``link_to_victim`` (a link to ``victim``, often
    a valid copy, so reading through would work); ``dangling_link``; ``huge`` (a sparse
    file of ``huge`` NULs: no disk); ``directory``; ``not_utf8``; ``torn`` (JSON cut
    short); ``wrong_shape`` (``shape``: valid JSON of a type the reader does not expect).
    """
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    path.unlink(missing_ok=True)
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev_zero":
        path.symlink_to("/dev/zero")
    elif how == "link_to_victim":
        assert victim is not None, "link_to_victim needs a victim"
        path.symlink_to(victim)
    elif how == "dangling_link":
        path.symlink_to(path.with_name(path.name + ".nowhere"))
    elif how == "huge":
        with open(path, "wb") as fh:
            fh.truncate(huge)
    elif how == "directory":
        path.mkdir()
    elif how == "not_utf8":
        path.write_bytes(b'{"name": "\xff\xfe"}\n')
    elif how == "torn":
        path.write_bytes(b'{"name": "sha256:')
    elif how == "wrong_shape":
        path.write_bytes(shape)
    else:
        raise ValueError(f"no plant {how!r}")
