"""MCP tool-run overhead: a warm tool call over MCP (stdio, and streamable HTTP against
``ouro serve``) beside the same call in process, with the transport's floor.

    python bench/mcp_overhead.py [--calls N] [--out bench/results/mcp.json]

Rows, each the p50/p95 of N warm calls of ``sum_ints([1, 2, 3])`` (a WAT tool: the sandbox
costs least, so the overhead shows most):

- ``in-process``: `SkillStore.run` on an open workspace (what an embedding program calls);
- ``mcp ping``: an MCP ``ping`` round trip on the same connection (the physical floor of
  the transport: framing, JSON, the event loop; no tool; the 2026-07-28 era has no ping);
- ``mcp stdio`` (handshake era, as Claude Desktop speaks it, and 2026-07-28) and
  ``mcp http`` (both eras, bearer token, against ``ouro serve``): ``tools/call``;
- ``http api``: ``POST /api/v1/tools/sum_ints/run`` on the same server (the baseline an
  HTTP user would pick), from an async httpx client like the MCP client's.

"Added p50" is the row's p50 minus the in-process p50 (target: at most 2 ms). Rounds
alternate between the rows, so a burst of machine load hits them alike. For the rows
against ``ouro serve`` the server's CPU per call is also given (from /proc, over each
row's calls): on a loaded machine it is steadier than wall-clock time.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

ROUNDS = 5
INPUT = [1, 2, 3]


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def workspace(root: Path) -> Path:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.capabilities.skills.starter import starter_dirs
    from ouroboros.interfaces.cli.output import open_runtime
    from ouroboros.kernel import Runtime

    home = root / "ws"
    Runtime.init(home).close()
    with open_runtime(home) as rt:
        open_store(rt).add_dir(next(d for d in starter_dirs() if d.name == "sum_ints"))
    return home


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(home: Path, url: str, token: str, calls: int, server_pid: int
                  ) -> tuple[dict[str, list[float]], dict[str, float]]:
    import httpx
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    import ouroboros.interfaces.cli.main  # noqa: F401
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.interfaces.cli.output import open_runtime

    samples: dict[str, list[float]] = {}
    server_cpu: dict[str, float] = {}
    rt = open_runtime(home)
    store = open_store(rt)

    async def in_process() -> None:
        store.run("sum_ints", INPUT)

    stdio = StdioServerParameters(command=sys.executable,
                                  args=["-m", "ouroboros", "mcp", "--home", str(home)])
    auth = {"Authorization": f"Bearer {token}"}

    def http() -> Any:
        return streamable_http_client(f"{url}/mcp",
                                      http_client=create_mcp_http_client(headers=auth))

    async with Client(stdio, mode="legacy") as legacy, \
            Client(StdioServerParameters(command=stdio.command, args=stdio.args)) as modern, \
            Client(http(), mode="legacy") as remote, Client(http()) as remote_modern, \
            httpx.AsyncClient(base_url=url, headers=auth) as api:
        async def api_run() -> None:
            r = await api.post("/api/v1/tools/sum_ints/run", json={"input": INPUT})
            r.raise_for_status()

        calls_of: dict[str, Callable[[], Awaitable[Any]]] = {"in-process": in_process}
        for label, client in {"mcp stdio (2025-11-25)": legacy,
                              "mcp stdio (2026-07-28)": modern,
                              "mcp http (2025-11-25)": remote,
                              "mcp http (2026-07-28)": remote_modern}.items():
            calls_of[label] = functools.partial(client.call_tool, "sum_ints", {"input": INPUT})
            if "2025" in label:  # 2026-07-28 has no ping
                calls_of[label.replace("mcp", "mcp ping", 1)] = client.send_ping
        calls_of["http api (POST /tools/sum_ints/run)"] = api_run
        for call in calls_of.values():  # warm: the module, the lease, the tool list
            for _ in range(20):
                await call()
        for _ in range(ROUNDS):
            per = max(1, calls // ROUNDS)
            for label, call in calls_of.items():
                before = cpu_seconds(server_pid)
                samples.setdefault(label, []).extend(await timed(call, per))
                server_cpu[label] = server_cpu.get(label, 0.0) + cpu_seconds(server_pid) - before
    rt.close()
    return samples, server_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("bench/results/mcp.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from ouroboros.interfaces.http.tokens import TokenStore
    start = importlib.import_module("serve.live").start  # the tests' live-server helper

    with tempfile.TemporaryDirectory() as tmp:
        home = workspace(Path(tmp))
        token = TokenStore(home).new("bench", "submit")[0]
        server = start(home, "--no-scheduler", "--rate-limit", "off")
        try:
            samples, server_cpu = anyio.run(measure, home, server.url, token, args.calls,
                                            server.proc.pid)
        finally:
            server.stop()
    base = statistics.median(samples["in-process"])
    rows = []
    print(f"{'row':<38}{'p50 ms':>9}{'p95 ms':>9}{'added p50':>11}{'server CPU':>12}")
    for label, values in samples.items():
        p50 = statistics.median(values)
        row: dict[str, Any] = {"row": label, "calls": len(values), "p50_ms": round(p50, 3),
                               "p95_ms": round(pct(values, 95), 3),
                               "added_p50_ms": round(p50 - base, 3)}
        served = "http" in label
        if served:
            row["server_cpu_ms_per_call"] = round(server_cpu[label] / len(values) * 1000, 3)
        rows.append(row)
        cpu = f"{row['server_cpu_ms_per_call']:>12.3f}" if served else ""
        print(f"{label:<38}{p50:>9.3f}{row['p95_ms']:>9.3f}{row['added_p50_ms']:>11.3f}{cpu}")
    result: dict[str, Any] = {"benchmark": "mcp", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform(),
                          "load_1m": round(os.getloadavg()[0], 2)},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load (1 min) {result['machine']['load_1m']}; wrote {args.out}")


if __name__ == "__main__":
    main()
