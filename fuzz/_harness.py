"""What every harness shares: instrumentation only when run as a fuzzer, the loop.

A harness module is imported two ways: by ``python fuzz/<target>.py [libFuzzer flags]
CORPUS`` (atheris instruments ``ouroboros`` as it is imported, then fuzzes
``test_one``), and by the pytest suite (tests/security/test_fuzz_harnesses.py), which
runs ``test_one`` over ``seeds()`` and the kept crash inputs with no instrumentation.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Minimised inputs that once failed, one directory per harness: run with the seeds.
CRASHES = Path(__file__).resolve().parent / "crashes"


def instrumented(name: str, *also: str) -> contextlib.AbstractContextManager[Any]:
    """Instrument the imports inside the block when the harness is the fuzzer's main
    module; a plain block under pytest (no coverage hooks in the test process)."""
    if name != "__main__":
        return contextlib.nullcontext()
    import atheris

    manager: contextlib.AbstractContextManager[Any] = atheris.instrument_imports(
        include=["ouroboros", *also])
    return manager


def fuzz(test_one: Callable[[bytes], None]) -> None:
    import atheris

    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


def kept_crashes(target: str) -> Iterator[bytes]:
    folder = CRASHES / target
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        yield path.read_bytes()


def fixture_lines(relative: str, limit: int = 20) -> list[bytes]:
    """The first ``limit`` non-empty lines of a repository file, as seeds."""
    path = ROOT / relative
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    return lines[:limit]
