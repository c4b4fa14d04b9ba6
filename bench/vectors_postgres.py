"""The skill index's vectors in PostgreSQL beside the file store, in one run (issue 14).

    python bench/vectors_postgres.py [--tools N] [--calls N] [--out bench/results/vectors_postgres.json]

Both stores get the same N random unit vectors (384-d, as the e5 model's) in batches of 500;
then a second reader opens each (loads every row) and answers `refresh()` + `nearest(q, 10)`
(what a dense search does per query) and `refresh()` alone. PostgreSQL is a throw-away
server from the Debian binaries on a unix socket, fsync on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ouroboros.capabilities.skills.embedding import normalise
from ouroboros.capabilities.skills.retrieval.pgvectors import PostgresVectorStore
from ouroboros.capabilities.skills.retrieval.vectors import FileVectorStore, VectorStore
from ouroboros.kernel import Runtime
from ouroboros.storage.postgres.server import LocalServer
from ouroboros.storage.postgres.url import parse
from skills import timed  # the skills benchmark's timer: same warm-up, p50 in ms

DIM = 384


def p50_ms(fn: Callable[[], Any], n: int) -> float:
    return float(timed(fn, n, warmup=min(50, n))["p50_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "vectors_postgres.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = normalise(rng.standard_normal((args.tools, DIM)).astype(np.float32))
    items = [(f"t{i}", f"f{i}", f"tool {i}") for i in range(args.tools)]
    load = os.getloadavg()[0]
    rows: dict[str, dict[str, float]] = {}
    server = LocalServer(fsync=True).start()
    try:
        server.create_database("bench")
        url = server.url("bench", ledger="vectors_bench")
        with tempfile.TemporaryDirectory() as tmp:
            Runtime.init(Path(tmp) / "ws", ledger=url).close()
            makers: dict[str, Callable[[], VectorStore]] = {
                "file": lambda: FileVectorStore(Path(tmp) / "index"),
                "postgresql": lambda: PostgresVectorStore(parse(url))}
            for name, make in makers.items():
                writer = make()
                start = time.perf_counter()
                for i in range(0, args.tools, 500):
                    writer.append(items[i:i + 500], vectors[i:i + 500], "bench-model")
                append_s = time.perf_counter() - start
                start = time.perf_counter()
                reader = make()
                open_ms = (time.perf_counter() - start) * 1000
                query = vectors[17]
                assert reader.nearest(query, 1)[0][0].tool_id == "t17"

                def search(r: Any = reader, q: Any = query) -> Any:
                    r.refresh()
                    return r.nearest(q, 10)

                rows[name] = {"append_rows_per_s": round(args.tools / append_s),
                              "open_ms": round(open_ms, 1),
                              "refresh_and_nearest_p50_ms": round(p50_ms(search, args.calls), 3),
                              "refresh_p50_ms": round(p50_ms(reader.refresh, args.calls), 3)}
    finally:
        server.stop()
    result = {"benchmark": "vectors_postgres", "tools": args.tools, "dim": DIM,
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_1m": [round(load, 2), round(os.getloadavg()[0], 2)]},
              "stores": rows}
    print(f"{'store':<12}{'append rows/s':>15}{'open ms':>10}{'refresh+nearest':>17}"
          f"{'refresh':>10}")
    for name, r in rows.items():
        print(f"{name:<12}{r['append_rows_per_s']:>15}{r['open_ms']:>10}"
              f"{r['refresh_and_nearest_p50_ms']:>17}{r['refresh_p50_ms']:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load {result['machine']['load_1m']}; wrote {args.out}")


if __name__ == "__main__":
    main()
