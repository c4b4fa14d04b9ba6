"""The build jail's cost per build, side by side in one run.

    python bench/build_jail.py [--rounds N] [--out bench/results/build_jail.json]

For each builder (C and Zig through zig, WAT, the MicroPython and CPython syntax checks),
three ways to build the same kind of source, interleaved round by round so the machine's
load falls on all three alike:

- **jailed**: `build()` as shipped: source check, copy, bubblewrap jail, private caches;
- **opt-out**: `build()` with ``OURO_UNJAILED_BUILDS=1``: the same commands and limits, no
  jail (the isolation's own price is jailed − opt-out);
- **direct**: what the builders did before the jail, on the host: ``python -m ziglang`` with
  Zig's shared, writable cache; ``wasmtime.wat2wasm`` and the interpreters' syntax checks in
  this process (the floor a user would compare with).

Every round builds a source no earlier round built (a comment changes), so no in-process
memo or tool-level cache hit flatters one side; the Zig toolchain caches are warm for all.
"""

from __future__ import annotations

import argparse
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

import wasmtime

from ouroboros.capabilities.skills import Limits, ToolSpec
from ouroboros.capabilities.skills.builders import build
from ouroboros.capabilities.skills.building.jail import OPT_OUT_ENV
from ouroboros.capabilities.skills.cache import cache_root
from ouroboros.capabilities.skills.runtimes import Runtimes

CASES = b'[{"input": 1, "expected": 1}]'
SOURCES = {
    "c": ("src/main.c", '#include <stdio.h>\nint main(void) {{ puts("1"); return 0; }}\n// {n}\n'),
    "zig": ("src/main.zig", 'const std = @import("std");\npub fn main() void {{\n'
            '    var buf: [16]u8 = undefined;\n    const t = std.fmt.bufPrint(&buf, "{{d}}\\n", '
            '.{{1}}) catch return;\n    var iov = [_]std.os.wasi.ciovec_t{{.{{ .base = t.ptr, '
            '.len = t.len }}}};\n    var n: usize = 0;\n    _ = std.os.wasi.fd_write(1, &iov, 1, '
            '&n);\n}}\n// {n}\n'),
    "wat": ("src/main.wat", '(module (memory (export "memory") 1) (func (export "_start")))'
            " ;; {n}\n"),
    "micropython": ("src/main.py", "print(1)\n# {n}\n"),
    "cpython": ("src/main.py", "print(1)\n# {n}\n"),
}
_CHECK = "import sys\ncompile(sys.stdin.read(), 'main.py', 'exec')\n"


def make_spec(kind: str, n: int) -> ToolSpec:
    path, template = SOURCES[kind]
    language = "python" if kind in ("micropython", "cpython") else kind
    return ToolSpec(name="bench", description="bench", language=language,
                    files={path: template.format(n=n).encode(), "tests/cases.json": CASES},
                    runtime=kind if language == "python" else None)


def built_jailed(spec: ToolSpec, runtimes: Runtimes) -> None:
    build(spec, runtimes)


def built_opted_out(spec: ToolSpec, runtimes: Runtimes) -> None:
    os.environ[OPT_OUT_ENV] = "1"
    try:
        build(spec, runtimes)
    finally:
        del os.environ[OPT_OUT_ENV]


def built_directly(spec: ToolSpec, runtimes: Runtimes) -> None:
    """The builders before the jail: zig through `python -m ziglang`, the rest in-process."""
    path = next(p for p in spec.files if p.startswith("src/"))
    source = spec.files[path]
    if spec.language in ("c", "zig"):
        with tempfile.TemporaryDirectory(prefix="ouro-bench-") as tmp:
            (Path(tmp) / "src").mkdir()
            (Path(tmp) / path).write_bytes(source)
            zig = [sys.executable, "-m", "ziglang"]
            if spec.language == "c":
                argv = [*zig, "cc", "--target=wasm32-wasi", "-O2", "-s",
                        "-Wl,-z,stack-size=1048576", "-o", "tool.wasm", path]
            else:
                argv = [*zig, "build-exe", "-target", "wasm32-wasi", "-O", "ReleaseSmall",
                        "-femit-bin=tool.wasm", path]
            env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", tmp),
                   "ZIG_GLOBAL_CACHE_DIR": str(cache_root() / "zig"),
                   "ZIG_LOCAL_CACHE_DIR": str(Path(tmp) / ".zig-cache")}
            subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True)
    elif spec.language == "wat":
        wasmtime.wat2wasm(source.decode())
    else:
        assert spec.runtime is not None
        done = runtimes.execute(spec.runtime, source, Limits(fuel=2_000_000_000,
                                                           deadline_s=30.0), source=_CHECK)
        assert done.exit_code == 0


WAYS: dict[str, Callable[[ToolSpec, Runtimes], None]] = {
    "jailed": built_jailed, "opt-out": built_opted_out, "direct": built_directly}


def run(rounds: int) -> dict[str, Any]:
    runtimes = Runtimes()
    results: dict[str, Any] = {}
    n = time.time_ns()
    for kind in SOURCES:
        for way in WAYS.values():  # warm every cache and toolchain first
            n += 1
            way(make_spec(kind, n), runtimes)
        samples: dict[str, list[float]] = {name: [] for name in WAYS}
        for _ in range(rounds):
            for name, way in WAYS.items():
                n += 1
                spec = make_spec(kind, n)
                start = time.perf_counter()
                way(spec, runtimes)
                samples[name].append((time.perf_counter() - start) * 1000)
        med = {name: statistics.median(s) for name, s in samples.items()}
        results[kind] = {
            **{f"{name}_ms": round(v, 1) for name, v in med.items()},
            "jail_cost_ms": round(med["jailed"] - med["opt-out"], 1),
            "jailed_over_direct": round(med["jailed"] / med["direct"], 2),
            "rounds": rounds,
        }
        print(f"{kind:12} jailed {med['jailed']:8.1f} ms   opt-out {med['opt-out']:8.1f} ms   "
              f"direct {med['direct']:8.1f} ms   jail cost {med['jailed'] - med['opt-out']:7.1f} "
              f"ms   jailed/direct {med['jailed'] / med['direct']:6.2f}x", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench/results/build_jail.json"))
    args = parser.parse_args()
    load = os.getloadavg()
    results = run(args.rounds)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_before": load,
                    "load_after": os.getloadavg()},
        "builds": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
