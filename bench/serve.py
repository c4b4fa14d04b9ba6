"""Service-layer benchmark: what HTTP costs over calling the capabilities in process.

    python bench/serve.py [--submits N] [--runs N] [--spans N] [--concurrency C]
                          [--out bench/results/serve.json]

Three measures, each side by side with its in-process baseline in the same run:

1. **Governed submits/s**: envelopes signed by another process, submitted by a concurrent
   client (C keep-alive connections of a minimal asyncio HTTP/1.1 client, so that on a
   2-core machine the client's CPU does not starve the server) to ``ouro serve`` in its
   own process,
   versus ``Runtime.submit`` of equally foreign envelopes in this process (every signature
   verified in both). Target: HTTP >= 50 % of in-process.
2. **Tool-run overhead**: p50 of ``POST /api/v1/tools/sum_ints/run`` (one client, keep-alive)
   minus p50 of ``SkillStore.run`` in process, interleaved. Target: <= 2 ms added.
3. **OTLP spans ingested/s**: protobuf export requests of 500 tool spans each, posted
   sequentially, versus `receiver.receive` of the same decoded requests in process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ouroboros.interfaces.http.tokens import TokenStore
from ouroboros.kernel import Runtime


def setup(home: Path) -> None:
    """A workspace where key alice may set config on agents/* (and the sum_ints tool)."""
    with Runtime.init(home) as rt:
        rt.keyring.new("alice")
        kid, public = rt.keyring.public("alice")
        policy = rt.value("kernel/trust")
        policy["keys"][kid] = {"name": "alice", "public": public}
        policy["delegations"].append({"name": "alice", "keys": [kid], "threshold": 1,
                                      "types": ["config"], "targets": ["agents/*"],
                                      "rights": []})
        rt.submit(rt.sign(rt.propose("trust", "kernel/trust", value=policy, author="operator",
                                     reasoning="bench"), "root"))


SIGNER = """
import json, sys
from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict
home, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Runtime.open(home) as rt:
    out = [envelope_to_dict(rt.sign(rt.propose("config", f"agents/{prefix}{i}/config",
           value={"i": i, "w": [0.1, 0.2]}, reasoning="bench", author="alice"), "alice"))
           for i in range(n)]
json.dump(out, sys.stdout)
"""


def foreign_envelopes(home: Path, prefix: str, n: int) -> list[dict[str, Any]]:
    """Envelopes signed in another process (so no signature memo helps the submitter)."""
    done = subprocess.run([sys.executable, "-c", SIGNER, str(home), prefix, str(n)],
                          capture_output=True, text=True, check=True)
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "ouroboros", "serve", "--home", str(home),
                             "--port", "0", "--json", "--no-scheduler",
                             "--rate-limit", "off"],  # the bench floods one token on purpose
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)["listening"]


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def in_process_submits(home: Path, envelopes: list[dict[str, Any]]) -> dict[str, float]:
    with Runtime.open(home) as rt:
        start = time.perf_counter()
        statuses = [rt.submit(e).status for e in envelopes]
        seconds = time.perf_counter() - start
    assert statuses.count("applied") == len(envelopes), set(statuses)
    return {"per_s": len(envelopes) / seconds, "seconds": seconds}


async def _post_loop(host: str, port: int, head: bytes, bodies: list[bytes],
                     codes: list[int]) -> None:
    """One keep-alive connection posting bodies one after another: a minimal HTTP/1.1
    client (a few lines of asyncio), so the client's own CPU stays small on a 2-core
    machine and the figure is the server's."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while bodies:
            body = bodies.pop()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            codes.append(int(status_line.split()[1]))
    finally:
        writer.close()


async def _http_submits(url: str, token: str, envelopes: list[dict[str, Any]],
                        concurrency: int) -> tuple[float, list[int]]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = str(parts.hostname), int(parts.port or 80)
    head = (f"POST /api/v1/patches HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: ").encode()
    bodies = [json.dumps(e).encode() for e in envelopes]
    codes: list[int] = []
    start = time.perf_counter()
    await asyncio.gather(*(_post_loop(host, port, head, bodies, codes)
                           for _ in range(concurrency)))
    return time.perf_counter() - start, codes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_submits(url: str, token: str, envelopes: list[dict[str, Any]],
                 concurrency: int, server_pid: int) -> dict[str, float]:
    cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
    seconds, codes = asyncio.run(_http_submits(url, token, envelopes, concurrency))
    assert codes.count(201) == len(envelopes), sorted(set(codes))
    return {"per_s": len(envelopes) / seconds, "seconds": seconds,
            "client_cpu_s": time.process_time() - cpu,
            "server_cpu_ms_per_submit": (cpu_seconds(server_pid) - server_cpu)
            / len(envelopes) * 1000}


def tool_runs(url: str, token: str, home: Path, n: int) -> dict[str, float]:
    import ouroboros.interfaces.cli.main  # noqa: F401  (capability registrars)
    from ouroboros.capabilities.skills.governance import open_store
    from ouroboros.interfaces.cli.output import open_runtime

    rt = open_runtime(home)
    store = open_store(rt)
    payload = [1, 2, 3, 4, 5]
    local: list[float] = []
    remote: list[float] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        for _ in range(20):  # warm both paths
            store.run("sum_ints", payload)
            c.post("/api/v1/tools/sum_ints/run", json={"input": payload})
        for _ in range(n):  # interleaved: both see the same machine
            t = time.perf_counter()
            assert store.run("sum_ints", payload).output == 15
            local.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            r = c.post("/api/v1/tools/sum_ints/run", json={"input": payload})
            remote.append((time.perf_counter() - t) * 1000)
            assert r.json()["output"] == 15
    rt.close()
    p50_local, p50_remote = statistics.median(local), statistics.median(remote)
    return {"in_process_p50_ms": p50_local, "http_p50_ms": p50_remote,
            "added_p50_ms": p50_remote - p50_local, "n": n}


def span_requests(n_spans: int, per_request: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    now = time.time_ns()
    requests = []
    for r in range(0, n_spans, per_request):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        attr = rs.resource.attributes.add()
        attr.key, attr.value.string_value = "service.name", "bench-agent"
        ss = rs.scope_spans.add()
        for i in range(r, min(r + per_request, n_spans)):
            span = ss.spans.add()
            span.trace_id = (i + 1).to_bytes(16, "big")
            span.span_id = (i + 1).to_bytes(8, "big")
            span.name = "execute_tool web_search"
            span.start_time_unix_nano = now - 1_000_000_000 + i
            span.end_time_unix_nano = now - 900_000_000 + i
            a = span.attributes.add()
            a.key, a.value.string_value = "gen_ai.tool.name", "web_search"
            if i % 10 == 0:
                span.status.code = Status.STATUS_CODE_ERROR
                span.status.message = "upstream timed out after 30s"
        requests.append(req.SerializeToString())
    return requests


def otlp(url: str, token: str, home: Path, n_spans: int) -> dict[str, float]:
    from ouroboros.capabilities.improve.intake.receiver import decode, receive, seen_keys
    from ouroboros.capabilities.improve.intake.store import TelemetryStore

    bodies = span_requests(n_spans, 500)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        start = time.perf_counter()
        for body in bodies:
            assert c.post("/v1/traces", content=body).status_code == 200
        http_s = time.perf_counter() - start
    local_home = home.parent / "otlp-local"
    local_home.mkdir()
    store, seen = TelemetryStore(local_home), seen_keys(local_home)
    store.sanitizer  # noqa: B018  (built before the clock, as the server's is warm)
    start = time.perf_counter()
    stored = sum(receive(decode(b, "traces", "protobuf"), "traces", store, seen).stored
                 for b in bodies)
    local_s = time.perf_counter() - start
    seen.close()
    assert stored == n_spans, stored
    # the server's own tool runs (above) are in the store too, as the runtime's spans
    kept = sum(1 for e in TelemetryStore(home).events() if e["tool"] == "web_search")
    assert kept == n_spans, kept
    return {"http_spans_per_s": n_spans / http_s, "in_process_spans_per_s": n_spans / local_s,
            "spans": n_spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serve.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "machine": f"{platform.machine()} {os.cpu_count()} cores, "
                                          f"Python {platform.python_version()}",
                               "load_before": load_before, "submit_rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            base_home, http_home = Path(tmp) / f"base{r}", Path(tmp) / f"http{r}"
            setup(base_home)
            setup(http_home)
            local = in_process_submits(base_home, foreign_envelopes(base_home, "b", args.submits))
            envelopes = foreign_envelopes(http_home, "h", args.submits)
            proc, url = start_server(http_home)
            try:
                token = TokenStore(http_home).new("bench", "submit")[0]
                remote = http_submits(url, token, envelopes, args.concurrency, proc.pid)
            finally:
                stop_server(proc)
            ratio = remote["per_s"] / local["per_s"]
            results["submit_rounds"].append({
                "in_process_per_s": local["per_s"], "http_per_s": remote["per_s"],
                "ratio": ratio, "client_cpu_s": remote["client_cpu_s"],
                "server_cpu_ms_per_submit": remote["server_cpu_ms_per_submit"],
                "in_process_ms_per_submit": 1000 / local["per_s"]})
            print(f"submits/s round {r + 1}: in-process {local['per_s']:.0f}, HTTP "
                  f"{remote['per_s']:.0f} ({args.concurrency} connections) = {ratio:.0%}; "
                  f"server CPU {remote['server_cpu_ms_per_submit']:.2f} ms/submit, client "
                  f"CPU {remote['client_cpu_s'] / len(envelopes) * 1000:.2f} ms/submit")
        home = Path(tmp) / "tools"
        setup(home)
        import ouroboros.interfaces.cli.main  # noqa: F401
        from ouroboros.capabilities.skills.governance import open_store
        from ouroboros.capabilities.skills.starter import starter_dirs
        from ouroboros.interfaces.cli.output import open_runtime

        with open_runtime(home) as rt:
            open_store(rt).add_dir(next(d for d in starter_dirs() if d.name == "sum_ints"))
        proc, url = start_server(home)
        try:
            token = TokenStore(home).new("bench", "submit")[0]
            results["tool_run"] = tool_runs(url, token, home, args.runs)
            results["otlp"] = otlp(url, token, home, args.spans)
        finally:
            stop_server(proc)
    t = results["tool_run"]
    print(f"tool run p50: in-process {t['in_process_p50_ms']:.3f} ms, HTTP "
          f"{t['http_p50_ms']:.3f} ms, added {t['added_p50_ms']:.3f} ms")
    o = results["otlp"]
    print(f"OTLP spans/s: HTTP {o['http_spans_per_s']:.0f}, in-process receiver "
          f"{o['in_process_spans_per_s']:.0f}")
    results["load_after"] = os.getloadavg()
    ratios = sorted(r["ratio"] for r in results["submit_rounds"])
    results["submit_ratio_median"] = ratios[len(ratios) // 2]
    print(f"load average before {load_before[0]:.1f}, after {results['load_after'][0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
