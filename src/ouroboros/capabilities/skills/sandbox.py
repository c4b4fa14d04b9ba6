"""The WASM sandbox: wasmtime with fuel, an epoch deadline, a memory cap and an output cap.

A guest gets exactly what the WASI config hands it: its argv, and stdin / stdout / stderr
served from host memory (the two WASI calls that move bytes, `fd_read` and `fd_write`, are
shadowed by host functions, so a call needs no temporary file and no I/O thread). No preopened directory (so no file of the host exists for
it), an empty environment, and no sockets (WASI preview 1 has no way to open one). Compiled
modules are cached on disk under a key of the wasmtime version, the engine configuration
and the WASM hash, so a cache hit deserialises native code and never recompiles.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from .dists import version as dist_version
from .errors import (
    DeadlineExceeded,
    FuelExhausted,
    MemoryLimitExceeded,
    OutputTooLarge,
    SandboxError,
    ToolCrashed,
)
from .stdio import (
    CURRENT,
    Capture,
    OutputFull,
    Stdio,
    clock_res_get,
    clock_time_get,
    fd_read,
    fd_write,
    random_get,
)

WASM_PAGE = 65536
TICK_S = 0.002
MAX_WASM_STACK = 1 << 20
UNLIMITED_FUEL = (1 << 63) - 1


@dataclass(frozen=True)
class Limits:
    """What one call may consume. `fuel=None` means no instruction cap (the deadline stays)."""

    fuel: int | None = 1_000_000_000
    deadline_s: float = 10.0
    memory_bytes: int = 256 << 20
    output_bytes: int = 1 << 20
    real_clock: bool = False  # the `clock` capability; otherwise a fixed clock (stdio.py)

    def __post_init__(self) -> None:
        if self.fuel is not None and self.fuel <= 0:
            raise ValueError("fuel must be positive")
        if self.deadline_s <= 0 or self.memory_bytes < WASM_PAGE or self.output_bytes <= 0:
            raise ValueError("deadline, memory and output limits must be positive")


@dataclass(frozen=True)
class Execution:
    """A guest that ran to its end (exit code and all); limit hits raise instead."""

    stdout: bytes
    stderr: bytes
    exit_code: int
    fuel_used: int | None
    elapsed_s: float


class EpochTicker:
    """Advances an engine's epoch every `TICK_S` while at least one call is running.

    One thread per engine, idle (blocked on a condition) when nothing runs, so a deadline
    costs a store one integer rather than a timer thread per call.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="ouro-epoch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # One epoch per TICK_S of wall-clock time, counted from the clock rather than from
        # wake-ups: a guest that keeps this process busy (a flood of host calls holding the
        # GIL) delays the thread, and must not stretch its deadline by as much.
        last = time.monotonic()
        while True:
            with self._cond:
                if self._active == 0:
                    while self._active == 0:
                        self._cond.wait()
                    last = time.monotonic()
            time.sleep(TICK_S)
            ticks = int((time.monotonic() - last) / TICK_S)
            for _ in range(ticks):
                self._engine.increment_epoch()
            last += ticks * TICK_S

    def __enter__(self) -> EpochTicker:
        with self._cond:
            self._active += 1
            self._cond.notify()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1


class ModuleCache:
    """Compiled modules: in this process, else a `.cwasm` on disk, else compiled and saved.

    The key covers everything that changes the native code, so a stale file is never loaded.
    `compiles`, `disk_hits` and `memory_hits` let tests prove a hit never recompiles.
    """

    def __init__(self, engine: wasmtime.Engine, config_key: str, directory: Path | None) -> None:
        self.engine = engine
        self.config_key = config_key
        self.directory = directory
        self.version = dist_version("wasmtime", wasmtime.__file__)
        self._modules: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self.compiles = 0
        self.disk_hits = 0
        self.memory_hits = 0

    def key(self, wasm_hash: str) -> str:
        raw = f"wasmtime={self.version};{self.config_key};wasm={wasm_hash}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def get(self, wasm: bytes, wasm_hash: str | None = None) -> wasmtime.Module:
        digest = wasm_hash or "sha256:" + hashlib.sha256(wasm).hexdigest()
        with self._lock:
            module = self._modules.get(digest)
            if module is not None:
                self.memory_hits += 1
                return module
            module = self._load_or_compile(wasm, digest)
            self._modules[digest] = module
            return module

    def _load_or_compile(self, wasm: bytes, digest: str) -> wasmtime.Module:
        path = None if self.directory is None else self.directory / f"{self.key(digest)}.cwasm"
        if path is not None and _trusted(path):
            try:
                module = wasmtime.Module.deserialize_file(self.engine, str(path))
                self.disk_hits += 1
                return module
            except wasmtime.WasmtimeError:
                path.unlink(missing_ok=True)  # written by another build: recompile
        module = wasmtime.Module(self.engine, wasm)
        self.compiles += 1
        if path is not None:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(module.serialize())
            os.replace(tmp, path)
        return module


def _trusted(path: Path) -> bool:
    """A .cwasm is native code that wasmtime runs as found: load only a regular file owned by
    this user in a folder owned by this user, neither writable by anyone else."""
    try:
        for st in (os.lstat(path.parent), os.lstat(path)):
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


HostStubs = dict[tuple[str, str], Callable[..., object]]


class WasmSandbox:
    """Runs WASI command modules (`_start`) under `Limits`, one fresh store per call.

    `host_stubs` satisfies a known interpreter's extra imports with functions that refuse
    (MicroPython's host bridge); any other import a module asks for makes it fail to load.
    """

    def __init__(self, cache_dir: Path | None, host_stubs: HostStubs | None = None) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.max_wasm_stack = MAX_WASM_STACK
        config.cranelift_opt_level = "speed"
        self.engine = wasmtime.Engine(config)
        config_key = f"fuel=1;epoch=1;stack={MAX_WASM_STACK};opt=speed"
        self.modules = ModuleCache(self.engine, config_key, cache_dir)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()
        self.linker.allow_shadowing = True
        io_type = wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()])
        wasi = "wasi_snapshot_preview1"
        self.linker.define_func(wasi, "fd_read", io_type, fd_read, access_caller=True)
        self.linker.define_func(wasi, "fd_write", io_type, fd_write, access_caller=True)
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        self.linker.define_func(wasi, "clock_time_get", wasmtime.FuncType([i32, i64, i32], [i32]),
                                clock_time_get, access_caller=True)
        self.linker.define_func(wasi, "clock_res_get", wasmtime.FuncType([i32, i32], [i32]),
                                clock_res_get, access_caller=True)
        self.linker.define_func(wasi, "random_get", wasmtime.FuncType([i32, i32], [i32]),
                                random_get, access_caller=True)
        self._stubs = host_stubs or {}
        self._stubbed: set[tuple[str, str]] = set()
        self._pres: dict[int, wasmtime.InstancePre] = {}
        self._ticker = EpochTicker(self.engine)
        self._lock = threading.Lock()

    def _instance_pre(self, module: wasmtime.Module) -> wasmtime.InstancePre:
        with self._lock:
            pre = self._pres.get(id(module))
            if pre is None:
                for imp in module.imports:
                    key = (imp.module, imp.name or "")
                    if key in self._stubs and key not in self._stubbed:
                        ty = imp.type
                        assert isinstance(ty, wasmtime.FuncType)
                        self.linker.define_func(key[0], key[1], ty, self._stubs[key])
                        self._stubbed.add(key)
                try:
                    pre = self.linker.instantiate_pre(module)
                except wasmtime.WasmtimeError as e:
                    raise ToolCrashed(f"module cannot be loaded: {_first_line(e)}") from None
                self._pres[id(module)] = pre
            return pre

    def run(
        self,
        wasm: bytes,
        argv: Sequence[str],
        stdin: bytes,
        limits: Limits,
        wasm_hash: str | None = None,
    ) -> Execution:
        """Run one guest to completion.

        Raises:
            FuelExhausted, DeadlineExceeded, MemoryLimitExceeded, OutputTooLarge, ToolCrashed.
        """
        module = self.modules.get(wasm, wasm_hash)
        pre = self._instance_pre(module)
        out, err = Capture(limits.output_bytes), Capture(limits.output_bytes)
        fuel = UNLIMITED_FUEL if limits.fuel is None else limits.fuel
        store = wasmtime.Store(self.engine)
        try:
            store.set_limits(
                memory_size=limits.memory_bytes, instances=4, tables=8, memories=2,
                table_elements=1 << 20,
            )
            store.set_fuel(fuel)
            store.set_epoch_deadline(math.ceil(limits.deadline_s / TICK_S) + 1)
            wasi = wasmtime.WasiConfig()
            wasi.argv = list(argv)
            wasi.env = []
            store.set_wasi(wasi)
            CURRENT.stdio = Stdio(stdin, out, err, real_clock=limits.real_clock)
            exit_code, trap, elapsed, near_cap = self._drive(pre, store, limits)
            used = None if limits.fuel is None else fuel - store.get_fuel()
        finally:
            CURRENT.stdio = None
            store.close()
        if out.overflow or err.overflow:
            raise OutputTooLarge(
                f"the tool wrote more than the {limits.output_bytes}-byte output cap"
            )
        if trap is not None:
            raise _classify_trap(trap, limits, near_cap)
        if exit_code != 0 and (near_cap or _says_out_of_memory(err.data)):
            raise MemoryLimitExceeded(f"the tool hit the {_mib(limits)} memory cap")
        return Execution(bytes(out.data), bytes(err.data), exit_code, used, elapsed)

    def _drive(
        self, pre: wasmtime.InstancePre, store: wasmtime.Store, limits: Limits
    ) -> tuple[int, wasmtime.Trap | None, float, bool]:
        """Instantiate and call `_start`: (exit code, trap, seconds, memory near the cap)."""
        exit_code, trap = 0, None
        instance: wasmtime.Instance | None = None
        start = time.perf_counter()
        with self._ticker:
            try:
                instance = pre.instantiate(store)
                start_fn = instance.exports(store).get("_start")
                if not isinstance(start_fn, wasmtime.Func):
                    raise ToolCrashed("module has no _start export: it is not a WASI command")
                start_fn(store)
            except wasmtime.ExitTrap as e:
                exit_code = e.code
            except OutputFull:
                exit_code = 1  # the caller sees the overflow flag and raises OutputTooLarge
            except wasmtime.Trap as e:
                trap = e
            except wasmtime.WasmtimeError as e:
                if "memory" in str(e) or "limit" in str(e):
                    raise MemoryLimitExceeded(
                        f"the module needs more memory than the {_mib(limits)} cap"
                    ) from None
                raise ToolCrashed(f"module failed to start: {_first_line(e)}") from None
        elapsed = time.perf_counter() - start
        return exit_code, trap, elapsed, _memory_near_cap(store, instance, limits)


def _memory_near_cap(
    store: wasmtime.Store, instance: wasmtime.Instance | None, limits: Limits
) -> bool:
    """wasmtime-py exposes no resource-limiter callback, so a refused `memory.grow` is
    inferred: the guest died with its memory within 2 MiB of the cap."""
    if instance is None:
        return False
    memory = instance.exports(store).get("memory")
    if not isinstance(memory, wasmtime.Memory):
        return False
    return memory.data_len(store) + (2 << 20) >= limits.memory_bytes


def _says_out_of_memory(stderr: bytearray) -> bool:
    tail = bytes(stderr[-400:])
    return b"MemoryError" in tail or b"memory allocation failed" in tail


def _classify_trap(trap: wasmtime.Trap, limits: Limits, near_cap: bool) -> SandboxError:
    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return FuelExhausted(f"the tool ran out of fuel ({limits.fuel} instructions)")
    if code == wasmtime.TrapCode.INTERRUPT:
        return DeadlineExceeded(f"the tool ran past its {limits.deadline_s:g} s deadline")
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return ToolCrashed("the tool overflowed its stack (runaway recursion?)")
    if near_cap:
        return MemoryLimitExceeded(f"the tool hit the {_mib(limits)} memory cap")
    return ToolCrashed(f"the tool trapped: {_first_line(trap)}")


def _mib(limits: Limits) -> str:
    return f"{limits.memory_bytes / (1 << 20):g} MiB"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
