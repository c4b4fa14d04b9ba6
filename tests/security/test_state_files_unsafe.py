"""The runtime's small state files beside the ledger: solve counters, build-time
estimates, the scheduler's records, Slack's replay cache, the telemetry cursor, the
proposals, the vector index's and the ANN index's manifests. A workspace writer (any
local process of the user) who puts a FIFO, a link to a device or to another file, a huge
file or bytes that are not what the runtime writes under one of those names must meet
the reader's documented answer (start over, rebuild, or an error naming the file) within
a deadline and a 2 GiB address space, with no traceback, and no write may go through a
planted link."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .plants import PLANTS, cap_memory, plant

# Each reader in a child: prints what it got; the test checks the answer.
READER = """
import sys, json, time
from pathlib import Path
what, path = sys.argv[1], Path(sys.argv[2])
if what == "solve_stats":
    from ouroboros.capabilities.skills.control import SolveStats
    s = SolveStats(path)
    print(s.read()["tasks"], s.bump("reused")["tasks"])
elif what == "build_times":
    from types import SimpleNamespace
    from ouroboros.interfaces.cli.tool import _build_times, _record_build_time
    store = SimpleNamespace(root=path.parent)
    print(len(_build_times(store)))
    _record_build_time(store, "c", 1.0)
    print(_build_times(store))
elif what == "schedule":
    from ouroboros.capabilities.improve.schedule import JobRecords
    print(JobRecords(path).read())
elif what == "slack":
    from ouroboros.capabilities.improve.proposals.slack import ReplayCache
    c = ReplayCache(path)
    print(c.seen_before("v0=ab", time.time(), 300), c.seen_before("v0=ab", time.time(), 300))
elif what == "vectors":
    from ouroboros.capabilities.skills.retrieval.vectors import FileVectorStore
    from ouroboros.capabilities.skills.retrieval.vectors import RetrievalError
    try:
        FileVectorStore(path.parent)
        print("LOADED")
    except RetrievalError as e:
        print("REFUSED", e)
elif what == "ann":
    from ouroboros.capabilities.skills.retrieval.ann import _load
    print(_load(path.parent, "t", 3))
"""

EXPECT = {"solve_stats": "0 1\n", "build_times": "0\n{'c': 1.0}\n", "schedule": "{}\n",
          "slack": "False True\n", "ann": "None\n"}


def _run(what: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", READER, what, str(path)],
                          capture_output=True, text=True, timeout=30, preexec_fn=cap_memory)


@pytest.mark.parametrize("how", PLANTS)
@pytest.mark.parametrize("what, name", [
    ("solve_stats", "solve-stats.json"), ("build_times", "build-times.json"),
    ("schedule", "schedule.json"), ("slack", "slack-replays.json"),
    ("vectors", "manifest.json"), ("ann", "manifest.json")])
def test_a_planted_state_file_gets_the_readers_answer_in_time(
        tmp_path: Path, what: str, name: str, how: str) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    victim = tmp_path / "victim.json"
    kept = b'{"precious": 1}\n'
    victim.write_bytes(kept)
    plant(folder / name, how, victim, b"[1, 2]\n")
    child = _run(what, folder / name)
    assert child.returncode == 0 and "Traceback" not in child.stderr, \
        (child.stdout, child.stderr[-2000:])
    if what == "vectors":  # the index is refused naming its manifest (rebuilt by a search)
        assert child.stdout.startswith("REFUSED") and "manifest.json" in child.stdout, \
            child.stdout
    else:  # counts and records start over, the next write replaces the planted file
        assert child.stdout == EXPECT[what], child.stdout
    assert victim.read_bytes() == kept  # nothing written through a link


@pytest.mark.parametrize("how", ["fifo", "dev_zero", "link_to_victim", "not_utf8"])
def test_the_telemetry_cursor_and_a_proposal_file_planted(tmp_path: Path, how: str) -> None:
    from ouroboros.kernel import Runtime

    home = tmp_path / "ws"
    Runtime.init(home).close()
    victim = tmp_path / "victim"
    victim.write_text("7\n")
    cursor = home / "telemetry" / "ledger.cursor"
    cursor.parent.mkdir()
    cursor.write_text("0")
    plant(cursor, how, victim, b"")
    child = subprocess.run([sys.executable, "-m", "ouroboros", "telemetry", "collect", "--home",
                            str(home), "--json"], capture_output=True, text=True, timeout=60,
                           preexec_fn=cap_memory)
    assert child.returncode == 0 and "Traceback" not in child.stderr, \
        (child.stdout, child.stderr[-2000:])
    assert victim.read_text() == "7\n"  # never written through
    cursor.unlink()

    from ouroboros.capabilities.improve.proposals.store import ProposalStore

    store = ProposalStore.init(tmp_path / "proposals")
    month = store.root / "2026" / "12"
    month.mkdir(parents=True)
    (month / "0001-x.md").write_text("x")
    plant(month / "0001-x.md", how, victim, b"")
    child = subprocess.run([sys.executable, "-c", PROPOSALS, str(store.root)],
                           capture_output=True, text=True, timeout=30, preexec_fn=cap_memory)
    assert child.returncode == 0, (child.stdout, child.stderr[-2000:])
    assert child.stdout.startswith("UNREADABLE") and "0001-x.md" in child.stdout, child.stdout
    assert victim.read_text() == "7\n"
    os.unlink(month / "0001-x.md")


PROPOSALS = """
import sys
from pathlib import Path
from ouroboros.capabilities.improve.proposals.proposal import UnreadableState
from ouroboros.capabilities.improve.proposals.store import ProposalStore
try:
    ProposalStore(Path(sys.argv[1])).all()
    print("READ")
except UnreadableState as e:
    print("UNREADABLE", e)
"""
