"""The guest's stdin, stdout and stderr, kept in host memory.

`fd_read` and `fd_write` are shadowed by these host functions: stdin is served from a bytes
object and output is captured up to a cap, so a call needs no temporary file and no wasmtime
I/O thread. Every pointer and length from the guest is checked before use; descriptors other
than 0, 1 and 2 do not exist (no file is ever opened in the sandbox).
"""

from __future__ import annotations

import struct
import threading

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


class Stdio:
    """One call's stdin bytes and output captures, found by the shadowed WASI calls."""

    def __init__(self, stdin: bytes, out: Capture, err: Capture) -> None:
        self.stdin = stdin
        self.pos = 0
        self.out = out
        self.err = err


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
