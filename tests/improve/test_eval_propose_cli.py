"""`ouro telemetry eval --propose`: findings go through the one pipeline as file patches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def ouro(home: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    where = ["--home", str(home)] if home is not None else []
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, *where],
                          capture_output=True, text=True, timeout=300)


def test_eval_propose_turns_findings_into_pending_file_patches(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    assert ouro(home, "init").returncode == 0
    events = tmp_path / "events.jsonl"
    assert ouro(None, "telemetry", "generate", str(events), "--days", "2",
                "--fault", "web-search-timeouts").returncode == 0
    assert ouro(home, "telemetry", "ingest", str(events)).returncode == 0
    r = ouro(home, "telemetry", "eval", "--propose", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    titles = [p["title"] for p in report["proposals"]]
    assert any("web_search" in t for t in titles)
    assert all(p["status"] == "pending" for p in report["proposals"])
    pending = json.loads(ouro(home, "log", "--kind", "PatchPending", "--json").stdout)
    assert {e["payload"]["patch_hash"] for e in pending}
    assert len(pending) == len(report["proposals"])
    # a second evaluation proposes nothing new: one open proposal per fix
    again = json.loads(ouro(home, "telemetry", "eval", "--propose", "--json").stdout)
    assert again["proposals"] == []


def test_eval_without_propose_writes_nothing_to_the_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    ouro(home, "init")
    events = tmp_path / "events.jsonl"
    ouro(None, "telemetry", "generate", str(events), "--days", "1", "--fault",
         "web-search-timeouts")
    ouro(home, "telemetry", "ingest", str(events))
    before = len(json.loads(ouro(home, "log", "--json").stdout))
    r = ouro(home, "telemetry", "eval", "--json")
    assert r.returncode == 0 and "proposals" not in json.loads(r.stdout)
    assert len(json.loads(ouro(home, "log", "--json").stdout)) == before


def test_concurrent_evaluations_open_one_proposal_per_fix(tmp_path: Path) -> None:
    # the open-fix check and the submission were not one step across processes: three
    # `telemetry eval --propose` at once opened the same fix two or three times
    home = tmp_path / "ws"
    assert ouro(home, "init").returncode == 0
    events = tmp_path / "events.jsonl"
    assert ouro(None, "telemetry", "generate", str(events), "--days", "2",
                "--fault", "web-search-timeouts").returncode == 0
    assert ouro(home, "telemetry", "ingest", str(events)).returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "ouroboros", "telemetry", "eval",
                               "--propose", "--json", "--home", str(home)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (out[-800:], err[-800:])
        assert "Traceback" not in err
    listed = json.loads(ouro(home, "proposals", "list", "--all", "--json").stdout)
    keys = [p["key"] for p in listed if p["status"] == "pending"]
    assert keys and len(keys) == len(set(keys)), sorted(keys)
    pending = json.loads(ouro(home, "pending", "--json").stdout)
    assert len(pending) == len(keys)  # no kernel patch without its proposal
