"""The PostgreSQL ledger against a real server: many writer processes, kills, direct SQL
attacks, the CLI's init and migrate, and every way the server can be wrong."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledgerkit import raw_sql
from ouroboros.kernel import IntegrityError, Runtime
from ouroboros.kernel.errors import UsageError
from ouroboros.storage.postgres.url import parse

pytestmark = pytest.mark.backends("postgresql")


def ouro(*args: str, home: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ouroboros", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def fill(rt: Runtime, n: int, who: str = "t") -> None:
    for i in range(n):
        out = rt.propose_and_submit(type="routing", target=f"agents/{who}{i % 3}/routing",
                                    value={"w": i}, reasoning="tune", author=who)
        assert out.status == "applied", out


# ------------------------------------------------------------------ many writers
_WRITER = """
import sys
from ouroboros.kernel import Runtime
rt = Runtime.open(sys.argv[1])
who, n = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    out = rt.propose_and_submit(type="routing", target=f"agents/{who}{i}/routing",
                                value={"w": i}, reasoning="race", author=who)
    assert out.status == "applied", out
rt.close()
"""


def test_four_writer_processes_never_fork_or_lose_an_event(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home, checkpoint_interval=16, snapshot_interval=25).close()
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(home), who, "30"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for who in ("a", "b", "c", "d")]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    for p in procs:  # start them together
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
    for p in procs:
        assert p.wait(180) == 0
    rt = Runtime.open(home)
    report = rt.verify()
    seqs = [int(r[0]) for r in raw_sql(home, "SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(report.events))  # contiguous: no gap, no fork
    applied = rt.log(kind="PatchApplied")
    assert len(applied) == 120  # nobody's event was lost
    assert {e.payload["target"] for e in applied} == {
        f"agents/{w}{i}/routing" for w in "abcd" for i in range(30)}
    assert rt.checkpoint().size == report.events  # the local anchor is the newest head
    rt.close()


_KILLED = """
import sys
from ouroboros.kernel import Runtime
rt = Runtime.open(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    rt.propose_and_submit(type="routing", target=f"agents/k{i % 5}/routing", value={"w": i},
                          reasoning="kill " + "x" * (i % 40), author="killer")
    print(i, flush=True)
    i += 1
"""


def test_sigkill_of_writers_mid_append_leaves_a_whole_verifiable_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home, checkpoint_interval=16, snapshot_interval=8).close()
    script = tmp_path / "killed.py"
    script.write_text(_KILLED)
    seen = 0
    for round_ in range(6):
        procs = [subprocess.Popen([sys.executable, str(script), str(home)],
                                  stdout=subprocess.PIPE) for _ in range(2)]
        for p in procs:  # each has one submit in (a busy machine is slow to start)
            assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
            assert p.stdout.readline().strip() == b"0"
        time.sleep(0.05 + 0.05 * round_)
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        rt = Runtime.open(home)  # the dead writers' locks went with their sessions
        report = rt.verify()
        assert report.events >= seen
        seen = report.events
        assert rt.replay().consistent
        fill(rt, 1, who=f"after{round_}")  # the ledger still takes appends
        rt.close()
    assert seen > 10


# ------------------------------------------------------------------ direct SQL attacks
def test_deleting_the_newest_rows_in_the_database_is_caught_by_the_local_anchor(
        tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    fill(rt, 6)
    rt.close()
    total = int(raw_sql(home, "SELECT count(*) FROM events")[0][0])
    raw_sql(home, "DELETE FROM events WHERE seq >= ?", total - 2)
    r = ouro("verify", home=home)
    assert r.returncode == 1 and "are missing" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(IntegrityError, match="are missing"):
        Runtime.open(home)


def test_editing_a_row_in_place_is_named_by_verify(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = Runtime.init(home)
    fill(rt, 4)
    rt.close()
    raw_sql(home, "UPDATE events SET body = overlay(body placing '\\x20'::bytea from 30 "
                  "for 1) WHERE seq = 3")
    r = ouro("verify", "--json", home=home)
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["details"]["seq"] == 3


def test_a_dropped_schema_is_an_integrity_error_not_an_empty_ledger(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Runtime.init(home).close()
    name = parse(json.loads((home / "workspace.json").read_text())["ledger"]).ledger
    raw_sql(home, f"DROP SCHEMA {name} CASCADE")
    r = ouro("state", home=home)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------ the CLI and URLs
def test_init_stores_the_url_without_its_password(pg_server: Any, new_pg_ledger: Any,
                                                  tmp_path: Path) -> None:
    name = parse(new_pg_ledger()).ledger
    url = pg_server.url("ouro_tests", ledger=name, tcp=True, password=pg_server.password)
    home = tmp_path / "ws"
    r = ouro("init", "--ledger", url, "--json", home=home)
    assert r.returncode == 0, r.stderr
    text = (home / "workspace.json").read_text()
    assert pg_server.password not in text and "ledger=" + name in text
    # without the password later commands fail cleanly and say where to put it
    r = ouro("state", home=home, env={"PGPASSFILE": str(tmp_path / "none")})
    assert r.returncode == 1 and "PGPASSWORD" in r.stderr and "Traceback" not in r.stderr
    assert pg_server.password not in r.stderr
    # a wrong password is refused by the server, and said so
    r = ouro("state", home=home, env={"PGPASSWORD": "wrong", "PGPASSFILE": "/nonexistent"})
    assert r.returncode == 1 and "password authentication failed" in r.stderr
    # the right one from the environment: the same ledger opens
    for env in ({"PGPASSWORD": pg_server.password}, {"OURO_LEDGER_URL": url}):
        r = ouro("verify", "--json", home=home, env=env)
        assert r.returncode == 0, r.stderr
    other = pg_server.url("ouro_tests", ledger=name + "x", tcp=True, password="p")
    r = ouro("state", home=home, env={"OURO_LEDGER_URL": other})
    assert r.returncode == 2 and "names" in r.stderr


@pytest.mark.parametrize(("url", "code", "message"), [
    ("postgresql://ouro@127.0.0.1:1/db", 1, "is the PostgreSQL server running"),
    ("postgresql://ouro@/db?ledger=Bad-Name", 2, "bad ledger name"),
    ("postgresql://ouro@/db?nonsense_option=1", 2, "malformed ledger URL"),
    ("postgresql://ouro:s3cret@127.0.0.1:1/db", 1, "is the PostgreSQL server running"),
])
def test_bad_urls_and_dead_servers_are_clean_errors(tmp_path: Path, url: str, code: int,
                                                    message: str) -> None:
    home = tmp_path / "ws"
    r = ouro("init", "--ledger", url, home=home)
    assert r.returncode == code and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "s3cret" not in r.stderr
    assert not home.exists()  # nothing half-made


def test_init_refuses_a_ledger_that_already_holds_events(new_pg_ledger: Any,
                                                         tmp_path: Path) -> None:
    url = new_pg_ledger()
    Runtime.init(tmp_path / "a", ledger=url).close()
    with pytest.raises(UsageError, match="already holds events"):
        Runtime.init(tmp_path / "b", ledger=url)
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ migrate
def _sqlite_workspace(home: Path) -> Runtime:
    return Runtime.init(home, ledger=None, snapshot_interval=5, checkpoint_interval=8)


def test_migrate_copies_verifies_and_switches(new_pg_ledger: Any, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rt = _sqlite_workspace(home)
    assert rt.workspace.ledger_url is None
    fill(rt, 12)
    before, head = rt.state_hash(), rt.log()[-1].hash
    old = Runtime.open(home)  # a process that had the workspace open before the switch
    rt.close()
    url = new_pg_ledger()
    r = ouro("migrate", "--to", url, "--json", home=home)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["head"] == head and out["snapshots"] >= 2 and out["index_rows"] >= 12
    rt = Runtime.open(home)
    assert rt.workspace.ledger_url is not None and rt.state_hash() == before
    fill(rt, 2, who="after")  # appends go to PostgreSQL and are anchored locally
    assert rt.verify().events > out["events"]
    assert len(rt.log(kind="PatchApplied")) == 14
    rt.close()
    # the old ledger is sealed: the stale process cannot grow it behind the new one's back
    with pytest.raises(Exception, match="moved to"):
        fill(old, 1, who="stale")
    old.close()
    # and a second migration onto the now non-empty ledger is refused
    r = ouro("migrate", "--to", url, home=home)
    assert r.returncode == 2 and "already on PostgreSQL" in r.stderr


def test_migrate_onto_a_non_empty_ledger_is_refused_and_changes_nothing(
        new_pg_ledger: Any, tmp_path: Path) -> None:
    url = new_pg_ledger()
    Runtime.init(tmp_path / "other", ledger=url).close()
    home = tmp_path / "ws"
    rt = _sqlite_workspace(home)
    fill(rt, 3)
    rt.close()
    config = (home / "workspace.json").read_bytes()
    r = ouro("migrate", "--to", url, home=home)
    assert r.returncode == 2 and "is not empty" in r.stderr
    assert (home / "workspace.json").read_bytes() == config
    rt = Runtime.open(home)
    fill(rt, 1, who="still")  # still on SQLite, still writable
    rt.verify()
    rt.close()


def test_a_failure_after_the_copy_leaves_the_workspace_as_it_was(
        new_pg_ledger: Any, tmp_path: Path) -> None:
    from ouroboros.kernel.migrate import migrate
    from ouroboros.kernel.workspace import Workspace

    home = tmp_path / "ws"
    rt = _sqlite_workspace(home)
    fill(rt, 5)
    rt.close()
    config = (home / "workspace.json").read_bytes()
    url = new_pg_ledger()

    def crash() -> None:
        raise RuntimeError("injected: the host died before the switch")

    with pytest.raises(RuntimeError, match="injected"):
        migrate(Workspace.load(home), url, before_switch=crash)
    assert (home / "workspace.json").read_bytes() == config
    rt = Runtime.open(home)
    fill(rt, 1, who="still")  # not sealed
    rt.close()
    # the target was emptied: migrating again succeeds
    report = migrate(Workspace.load(home), url)
    assert report.events == 7


def test_a_migrated_copy_that_differs_from_the_anchor_is_not_switched_to(
        new_pg_ledger: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy is verified against the workspace's signed checkpoint: a copy that lost
    the newest events (here: a buggy copier) fails verification and nothing switches."""
    from ouroboros.kernel.migrate import migrate
    from ouroboros.kernel.workspace import Workspace
    from ouroboros.storage.postgres import PostgresLedger

    home = tmp_path / "ws"
    rt = _sqlite_workspace(home)
    fill(rt, 5)
    rt.close()
    config = (home / "workspace.json").read_bytes()
    real = PostgresLedger.copy_in

    def lossy(self: PostgresLedger, events: Any, snapshots: Any, index: Any,
              *source: Any) -> int:
        n = real(self, iter(list(events)[:-2]), snapshots, index, *source)
        return n + 2  # and lie about it

    monkeypatch.setattr(PostgresLedger, "copy_in", lossy)
    with pytest.raises(IntegrityError):
        migrate(Workspace.load(home), new_pg_ledger())
    assert (home / "workspace.json").read_bytes() == config
