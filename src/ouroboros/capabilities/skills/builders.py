"""Builders: source in a `ToolSpec` to something the sandbox runs.

Every toolchain comes from the project's own dependencies (the `ziglang` wheel for C and Zig,
`wasmtime.wat2wasm` for WAT, the interpreters' wheels for Python); only Rust uses the host's
rustc, when it has the wasm32-wasip1 standard library. A refusal is `BuildFailed` carrying the
compiler's own output.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from .cache import cache_root
from .errors import BuildFailed, ToolchainMissing
from .runtimes import Runtimes, cpython_interpreter, micropython_interpreter
from .sandbox import Limits
from .spec import ToolSpec

BUILD_TIMEOUT_S = 300
ALLOWED_IMPORT_MODULES = ("wasi_snapshot_preview1",)
_SYNTAX_CHECK = {
    "cpython": "import sys\ncompile(sys.stdin.read(), 'main.py', 'exec')\n",
    "micropython": "import sys\ncompile(sys.stdin.read(), 'main.py', 'exec')\n",
}


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


def build(spec: ToolSpec, runtimes: Runtimes) -> Built:
    """Build a spec.

    Raises:
        BuildFailed: the source does not compile (with the compiler output).
        ToolchainMissing: the language's toolchain is not available here.
    """
    if spec.language == "python":
        return _build_python(spec, runtimes)
    if spec.runtime not in (None, "wasi"):
        raise BuildFailed(f"runtime {spec.runtime!r} is not available for {spec.language}")
    if spec.language == "wat":
        wasm, version = _build_wat(spec), f"wasmtime {importlib.metadata.version('wasmtime')}"
    elif spec.language in ("c", "zig"):
        wasm, version = _build_zig(spec), f"ziglang {importlib.metadata.version('ziglang')}"
    elif spec.language == "rust":
        wasm, version = _build_rust(spec), rust_version()
    else:  # pragma: no cover - validate_spec refuses other languages
        raise BuildFailed(f"no builder for {spec.language}")
    check_module(wasm)
    return Built("wasi", version, "", wasm)


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


def _build_python(spec: ToolSpec, runtimes: Runtimes) -> Built:
    runtime = spec.runtime or "cpython"
    if runtime not in ("cpython", "micropython"):
        raise BuildFailed(f"python runtime {runtime!r} is unknown; use cpython or micropython")
    interp = cpython_interpreter() if runtime == "cpython" else micropython_interpreter()
    source = spec.files[spec.source_path]
    done = runtimes.execute(
        runtime, source, Limits(fuel=2_000_000_000, deadline_s=30.0), source=_SYNTAX_CHECK[runtime]
    )
    if done.exit_code != 0:
        raise BuildFailed(
            f"src/main.py does not compile on {runtime}",
            done.stderr.decode("utf-8", "replace").strip(),
        )
    return Built(runtime, interp.version, interp.digest, None)


def _build_wat(spec: ToolSpec) -> bytes:
    text = spec.files[spec.source_path].decode("utf-8", "replace")
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as e:
        raise BuildFailed("src/main.wat does not assemble", str(e)) from None


def _run_compiler(argv: list[str], cwd: Path, what: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(cwd)),
        "ZIG_GLOBAL_CACHE_DIR": str(cache_root() / "zig"),
        "ZIG_LOCAL_CACHE_DIR": str(cwd / ".zig-cache"),
    }
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{what} took longer than {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()
        raise BuildFailed(f"{what} failed", output.replace(str(cwd) + "/", ""))


def _write_sources(spec: ToolSpec, into: Path) -> None:
    for rel, data in spec.files.items():
        if rel.startswith("src/"):
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def _build_zig(spec: ToolSpec) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ouro-build-") as tmp:
        work = Path(tmp)
        _write_sources(spec, work)
        out = work / "tool.wasm"
        zig = [sys.executable, "-m", "ziglang"]
        if spec.language == "c":
            sources = sorted(p for p in spec.files if p.startswith("src/") and p.endswith(".c"))
            argv = [*zig, "cc", "--target=wasm32-wasi", "-O2", "-s",
                    "-Wl,-z,stack-size=1048576", "-o", str(out), *sources]
            _run_compiler(argv, work, "the C compiler (zig cc)")
        else:
            argv = [*zig, "build-exe", "-target", "wasm32-wasi", "-O", "ReleaseSmall",
                    f"-femit-bin={out}", spec.source_path]
            _run_compiler(argv, work, "the Zig compiler")
        return out.read_bytes()


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


def rust_version() -> str:
    rustc = shutil.which("rustc") or "rustc"
    out = subprocess.run([rustc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _build_rust(spec: ToolSpec) -> bytes:
    target = rust_target()
    if target is None:
        raise ToolchainMissing(
            "rust tools need rustc with the wasm32-wasip1 standard library, which this host "
            "lacks: run `rustup target add wasm32-wasip1`, or write the tool in C, Zig, WAT "
            "or Python"
        )
    with tempfile.TemporaryDirectory(prefix="ouro-build-") as tmp:
        work = Path(tmp)
        _write_sources(spec, work)
        out = work / "tool.wasm"
        argv = [shutil.which("rustc") or "rustc", "--edition=2021", "--target", target,
                "-C", "opt-level=2", "-o", str(out), spec.source_path]
        _run_compiler(argv, work, "rustc")
        return out.read_bytes()
