"""MCP tool-run overhead: a warm tool call over MCP (stdio, and streamable HTTP against
``ouro serve``) beside the same call in process, with the transport's floor.

    python bench/mcp_overhead.py [--calls N] [--out bench/results/mcp.json]

Rows, each the p50/p95 of N warm calls of ``sum_ints([1, 2, 3])`` (a WAT tool: the sandbox
costs least, so the overhead shows most):

- ``in-process``: `SkillStore.run` on an open workspace (what an embedding program calls);
- ``mcp ping``: an MCP ``ping`` round trip on the same connection (the physical floor of
  the transport: framing, JSON, the event loop; no tool; the 2026-07-28 era has no ping);
- ``mcp stdio`` (handshake era, as Claude Desktop speaks it, and 2026-07-28) and
  ``mcp http`` (handshake era, bearer token, against ``ouro serve``): ``tools/call``.

"Added p50" is the MCP row's p50 minus the in-process p50 (target: at most 2 ms).
Rounds alternate between the rows, so a burst of machine load hits them alike.
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


async def measure(home: Path, url: str, token: str, calls: int) -> dict[str, list[float]]:
    from mcp import Client, StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    import ouroboros.interfaces.cli.main  # noqa: F401
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.interfaces.cli.output import open_runtime

    samples: dict[str, list[float]] = {}
    rt = open_runtime(home)
    store = open_store(rt)

    async def in_process() -> None:
        store.run("sum_ints", INPUT)

    stdio = StdioServerParameters(command=sys.executable,
                                  args=["-m", "ouroboros", "mcp", "--home", str(home)])
    http = streamable_http_client(f"{url}/mcp", http_client=create_mcp_http_client(
        headers={"Authorization": f"Bearer {token}"}))
    async with Client(stdio, mode="legacy") as legacy, \
            Client(StdioServerParameters(command=stdio.command, args=stdio.args)) as modern, \
            Client(http, mode="legacy") as remote:
        clients = {"mcp stdio (2025-11-25)": legacy, "mcp stdio (2026-07-28)": modern,
                   "mcp http (2025-11-25)": remote}
        for client in clients.values():  # warm: the module, the lease, the tool list
            for _ in range(20):
                await client.call_tool("sum_ints", {"input": INPUT})
        for _ in range(20):
            await in_process()
        for _ in range(ROUNDS):
            per = max(1, calls // ROUNDS)
            samples.setdefault("in-process", []).extend(await timed(in_process, per))
            for label, client in clients.items():
                samples.setdefault(label, []).extend(await timed(
                    functools.partial(client.call_tool, "sum_ints", {"input": INPUT}), per))
                if "2025" in label:  # 2026-07-28 has no ping
                    samples.setdefault(label.replace("mcp", "mcp ping", 1), []).extend(
                        await timed(client.send_ping, per))
    rt.close()
    return samples


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
        server = start(home, "--no-scheduler")
        try:
            samples = anyio.run(measure, home, server.url, token, args.calls)
        finally:
            server.stop()
    base = statistics.median(samples["in-process"])
    rows = []
    print(f"{'row':<34}{'p50 ms':>9}{'p95 ms':>9}{'added p50':>11}")
    for label, values in samples.items():
        p50 = statistics.median(values)
        row = {"row": label, "calls": len(values), "p50_ms": round(p50, 3),
               "p95_ms": round(pct(values, 95), 3),
               "added_p50_ms": round(p50 - base, 3)}
        rows.append(row)
        print(f"{label:<34}{p50:>9.3f}{row['p95_ms']:>9.3f}{row['added_p50_ms']:>11.3f}")
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
