"""The guest's stdin, stdout, stderr, clock and randomness, kept in host memory.

`fd_read` and `fd_write` are shadowed by these host functions: stdin is served from a bytes
object and output is captured up to a cap, so a call needs no temporary file and no wasmtime
I/O thread. Every pointer and length from the guest is checked before use; descriptors other
than 0, 1 and 2 do not exist (no file is ever opened in the sandbox).

`clock_time_get`, `clock_res_get` and `random_get` are shadowed too, so a tool is a pure
function of its input: every clock starts at a fixed instant (2000-01-01T00:00:00Z for the
wall clock, 0 for the others) and advances a millisecond per reading, so waiting loops still
end; random bytes come from a generator with a fixed seed. A tool whose meta.json grants the
`clock` capability reads the host's real clocks instead (visible in review: it is part of
the version). The same input therefore gives the same output today and in a year, which
replay relies on and a time bomb cannot get around.
"""

from __future__ import annotations

import random
import struct
import threading
import time

import wasmtime


class Capture:
    """stdout/stderr kept in memory up to a cap; bytes beyond it are counted, not kept."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.overflow = False

    def write(self, chunk: bytes | bytearray) -> int:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.overflow = True
            self.data += chunk[: max(room, 0)]
        else:
            self.data += chunk
        return len(chunk)


class OutputFull(Exception):
    """Raised from `fd_write` once a capture overflows: the guest stops there, rather than
    writing on into the void until its fuel or deadline runs out."""


EBADF, EFAULT, EINVAL = 8, 21, 28
IOV_MAX = 1024
CURRENT = threading.local()


FIXED_WALL_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
CLOCK_STEP_NS = 1_000_000
RANDOM_SEED = 0x0B0E05
REALTIME, MONOTONIC = 0, 1


class Stdio:
    """One call's stdin bytes, output captures and clock, found by the shadowed WASI calls."""

    def __init__(self, stdin: bytes, out: Capture, err: Capture, real_clock: bool = False
                 ) -> None:
        self.stdin = stdin
        self.pos = 0
        self.out = out
        self.err = err
        self.real_clock = real_clock
        self.ticks = 0
        self.rng = random.Random(RANDOM_SEED)

    def now_ns(self, clock_id: int) -> int:
        if self.real_clock:
            return time.time_ns() if clock_id == REALTIME else time.monotonic_ns()
        self.ticks += 1
        base = FIXED_WALL_NS if clock_id == REALTIME else 0
        return base + self.ticks * CLOCK_STEP_NS


def _guest_memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get("memory")
    return memory if isinstance(memory, wasmtime.Memory) else None


def fd_read(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nread: int) -> int:
    """stdin served from host memory: no temporary file and no I/O thread per call."""
    stdio: Stdio | None = getattr(CURRENT, "stdio", None)
    memory = _guest_memory(caller)
    if fd != 0 or stdio is None or memory is None:
        return EBADF
    if not 0 <= count <= IOV_MAX:
        return EINVAL
    try:
        table = memory.read(caller, iovs, iovs + 8 * count)
        total = 0
        for i in range(count):
            buf, length = struct.unpack_from("<II", table, 8 * i)
            chunk = stdio.stdin[stdio.pos : stdio.pos + length]
            if chunk:
                memory.write(caller, chunk, buf)
            stdio.pos += len(chunk)
            total += len(chunk)
            if len(chunk) < length:
                break
        memory.write(caller, struct.pack("<I", total), nread)
    except (wasmtime.WasmtimeError, IndexError, ValueError, struct.error):
        return EFAULT
    return 0


def fd_write(caller: wasmtime.Caller, fd: int, iovs: int, count: int, nwritten: int) -> int:
    """stdout and stderr captured in host memory, up to the output cap."""
    stdio: Stdio | None = getattr(CURRENT, "stdio", None)
    memory = _guest_memory(caller)
    if fd not in (1, 2) or stdio is None or memory is None:
        return EBADF
    if not 0 <= count <= IOV_MAX:
        return EINVAL
    sink = stdio.out if fd == 1 else stdio.err
    try:
        table = memory.read(caller, iovs, iovs + 8 * count)
        total = 0
        for i in range(count):
            buf, length = struct.unpack_from("<II", table, 8 * i)
            if buf + length > memory.data_len(caller):
                return EFAULT
            # Past the cap only the count matters: copy at most one byte beyond it.
            keep = min(length, max(sink.cap - len(sink.data), 0) + 1)
            if keep:
                sink.write(memory.read(caller, buf, buf + keep))
            if keep < length:
                sink.overflow = True
            total += length
        if sink.overflow:
            raise OutputFull
        memory.write(caller, struct.pack("<I", total), nwritten)
    except (wasmtime.WasmtimeError, IndexError, ValueError, struct.error):
        return EFAULT
    return 0


def clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, out: int) -> int:
    """A fixed, stepping clock (or the real one for a tool granted `clock`)."""
    stdio: Stdio | None = getattr(CURRENT, "stdio", None)
    memory = _guest_memory(caller)
    if stdio is None or memory is None:
        return EBADF
    if not 0 <= clock_id <= 3:
        return EINVAL
    try:
        memory.write(caller, struct.pack("<Q", stdio.now_ns(clock_id)), out)
    except (wasmtime.WasmtimeError, IndexError, ValueError, struct.error):
        return EFAULT
    return 0


def clock_res_get(caller: wasmtime.Caller, clock_id: int, out: int) -> int:
    memory = _guest_memory(caller)
    if memory is None:
        return EBADF
    if not 0 <= clock_id <= 3:
        return EINVAL
    try:
        memory.write(caller, struct.pack("<Q", CLOCK_STEP_NS), out)
    except (wasmtime.WasmtimeError, IndexError, ValueError, struct.error):
        return EFAULT
    return 0


def random_get(caller: wasmtime.Caller, buf: int, length: int) -> int:
    """Seeded bytes: the same every call, so a tool's 'random' choices replay exactly."""
    stdio: Stdio | None = getattr(CURRENT, "stdio", None)
    memory = _guest_memory(caller)
    if stdio is None or memory is None:
        return EBADF
    if not 0 <= length <= 1 << 20:
        return EINVAL
    try:
        if buf + length > memory.data_len(caller):
            return EFAULT
        memory.write(caller, stdio.rng.randbytes(length), buf)
    except (wasmtime.WasmtimeError, IndexError, ValueError):
        return EFAULT
    return 0
