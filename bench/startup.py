"""Start-up benchmark: what one `ouro` invocation costs, next to its physical limits.

    python bench/startup.py [--rounds N] [--out bench/results/startup.json]

Each command runs as a fresh process, as a user or an agent calls it, in interleaved
rounds (the machine is shared and noisy: interleaving keeps the ratios honest). Baselines
in the same rounds: `python -c pass` (the interpreter's own start-up) and a raw wasmtime
call in a fresh process (import wasmtime, compile the same WAT tool, run it once through
WASI): the floor for `ouro tool run` of a WAT tool. Targets (issue 17): `ouro --help` and
`ouro state` ≤ 0.25 s, `ouro tool run` of a WAT tool ≤ 0.3 s.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WAT = REPO / "src/ouroboros/capabilities/skills/starter/sum_ints"
TARGETS = {"ouro --help": 0.25, "ouro state": 0.25, "ouro tool run (WAT)": 0.30}

RAW_WASMTIME = """
import sys, tempfile, wasmtime
from pathlib import Path
wat = Path(sys.argv[1]).read_text()
engine = wasmtime.Engine()
module = wasmtime.Module(engine, wat)
with tempfile.TemporaryDirectory() as tmp:
    stdin, stdout = Path(tmp) / "in", Path(tmp) / "out"
    stdin.write_text("[1, 2]")
    wasi = wasmtime.WasiConfig()
    wasi.stdin_file, wasi.stdout_file = str(stdin), str(stdout)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap:
        pass
    sys.stdout.write(stdout.read_text())
"""


def commands(home: Path) -> dict[str, list[str]]:
    ouro = [sys.executable, "-m", "ouroboros"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "raw wasmtime call": [sys.executable, "-c", RAW_WASMTIME, str(WAT / "src/main.wat")],
        "ouro --help": [*ouro, "--help"],
        "ouro --version": [*ouro, "--version"],
        "ouro state": [*ouro, "state", "--home", str(home)],
        "ouro log": [*ouro, "log", "--home", str(home)],
        "ouro tool run (WAT)": [*ouro, "tool", "run", "sum_ints", "--input", "[1, 2]",
                                "--home", str(home)],
    }


def wall(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run; CPU time moves less with the
    machine's load, so both are reported."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)[:200]} exited {child.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def modules_imported(args: list[str], env: dict[str, str]) -> int:
    probe = ("import contextlib, io, sys\nfrom ouroboros.interfaces.cli.main import run\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    run(sys.argv[1:])\n"
             "print(len(sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True,
                         text=True, check=True).stdout
    return int(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/startup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        env = {**os.environ, "COLUMNS": "80"}
        env.pop("OURO_HOME", None)
        # An installed ouroboros has its bytecode compiled (pip does it); with
        # PYTHONDONTWRITEBYTECODE set (as in some CI shells) an editable checkout would
        # recompile every module on every start, which measures the compiler, not ouro.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        ouro = [sys.executable, "-m", "ouroboros"]
        subprocess.run([*ouro, "init", "--home", str(home)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*ouro, "tool", "add", str(WAT), "--home", str(home)], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        cmds = commands(home)
        for cmd in cmds.values():  # warm the page cache and wasmtime's module cache
            wall(cmd, env)
        load_before = os.getloadavg()[0]
        samples: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                elapsed, used = wall(cmd, env)
                samples[name].append(elapsed)
                cpu[name].append(used)
        counts = {"ouro --help": modules_imported(["--help"], env),
                  "ouro state": modules_imported(["state", "--home", str(home)], env),
                  "ouro tool run (WAT)": modules_imported(
                      ["tool", "run", "sum_ints", "--input", "[1, 2]", "--home", str(home)],
                      env)}
    base = statistics.median(samples["python -c pass"])
    raw = statistics.median(samples["raw wasmtime call"])
    rows: dict[str, dict[str, Any]] = {}
    print(f"{'command':<24}{'median s':>10}{'min s':>8}{'cpu s':>7}{'× pass':>8}{'× raw':>7}"
          f"{'target':>8}{'modules':>9}")
    for name, values in samples.items():
        med = statistics.median(values)
        target = TARGETS.get(name)
        rows[name] = {"median_s": round(med, 4), "min_s": round(min(values), 4),
                      "cpu_median_s": round(statistics.median(cpu[name]), 4),
                      "x_python_pass": round(med / base, 2), "x_raw_wasmtime": round(med / raw, 2),
                      "target_s": target, "met": None if target is None else med <= target,
                      "modules": counts.get(name)}
        print(f"{name:<24}{med:>10.3f}{min(values):>8.3f}{statistics.median(cpu[name]):>7.3f}"
              f"{med / base:>8.1f}{med / raw:>7.2f}"
              f"{'' if target is None else f'{target:.2f}':>8}"
              f"{counts.get(name, ''):>9}")
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform(),
                          "load_avg_1m": [round(load_before, 2),
                                          round(os.getloadavg()[0], 2)]},
              "rounds": args.rounds, "commands": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
