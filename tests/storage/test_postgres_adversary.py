"""The PostgreSQL ledger attacked from outside the kernel: secrets in malformed URLs,
interrupted migrations, a server that drops or kills the connection, a role that may
only read, and rows forged in the tables the kernel never wrote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledgerkit import raw_sql
from ouroboros.kernel import IntegrityError, Runtime
from ouroboros.storage.ledger import LedgerUnavailable
from ouroboros.storage.postgres import PostgresLedger

pytestmark = pytest.mark.backends("postgresql")


def ouro(*args: str, home: Path | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ouroboros", *args]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------ secrets in messages
@pytest.mark.parametrize("url", [
    # a libpq key=value DSN instead of a URL: refused, but its password must not be echoed
    "host=127.0.0.1 dbname=x password=Pw-s3cret-9",
    "host=127.0.0.1 dbname=x password = 'Pw-s3cret-9 with spaces'",
    # a password libpq cannot percent-decode: libpq quotes the raw token in its error
    "postgresql://u:Pw-s3cret-9%zz@127.0.0.1:1/db",
    "postgresql://u:Pw-s3cret-9%@127.0.0.1:1/db",
])
@pytest.mark.parametrize("command", ["init", "migrate"])
def test_a_malformed_ledger_url_never_shows_its_password(tmp_path: Path, url: str,
                                                         command: str) -> None:
    home = tmp_path / "ws"
    if command == "migrate":
        assert ouro("init", home=home).returncode == 0  # a SQLite workspace
        r = ouro("migrate", "--to", url, home=home)
    else:
        r = ouro("init", "--ledger", url, home=home)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert "s3cret" not in r.stderr + r.stdout


# ------------------------------------------------------------------ a lost session
def fill(rt: Runtime, n: int, who: str = "t") -> None:
    for i in range(n):
        out = rt.propose_and_submit(type="routing", target=f"agents/{who}{i % 3}/routing",
                                    value={"w": i}, reasoning="tune", author=who)
        assert out.status == "applied", out


def _terminate(rt: Runtime) -> None:
    """End the runtime's server session from another connection, as an administrator
    (or a server restart, or a dropped network) would."""
    import psycopg

    from ouroboros.storage.postgres.url import for_workspace

    assert isinstance(rt.backend, PostgresLedger)
    pid = rt.backend._db.pgconn.backend_pid
    with psycopg.connect(for_workspace(str(rt.workspace.ledger_url)).conninfo,
                         autocommit=True) as db:
        assert db.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    for _ in range(200):  # the server ends it asynchronously
        if not raw_sql(rt.workspace.home, "SELECT 1 FROM pg_stat_activity WHERE pid = ?", pid):
            return
        time.sleep(0.01)


@pytest.mark.parametrize("call", ["submit", "read"])
def test_a_lost_session_is_one_clear_error_and_the_process_recovers(tmp_path: Path,
                                                                    call: str) -> None:
    """A long-lived process (``ouro serve``) whose session the server ended must not stay
    broken until restarted: the call that meets the dead session fails with a clear
    error, the next one opens a new session; nothing is half-written or lost."""
    rt = Runtime.init(tmp_path / "ws")
    fill(rt, 3)
    before = rt.backend.count()
    _terminate(rt)
    with pytest.raises(LedgerUnavailable, match="cannot be used") as err:
        if call == "submit":
            fill(rt, 1, who="lost")
        else:
            rt.backend.count()
    assert "is the PostgreSQL server running" in err.value.hint
    fill(rt, 2, who="after")  # the same process, a new session
    report = rt.verify()
    assert report.events > before and rt.replay().consistent
    applied = [e.payload["target"] for e in rt.log(kind="PatchApplied")]
    assert "agents/after0/routing" in applied and "agents/after1/routing" in applied
    assert applied.count("agents/lost0/routing") <= 1  # stored once or not at all
    rt.close()
    again = Runtime.open(tmp_path / "ws")  # and a fresh process agrees
    assert again.verify().events == report.events
    again.close()


def test_a_server_restart_between_calls_is_survived_by_an_open_runtime(
        tmp_path: Path) -> None:
    from ouroboros.storage.postgres.server import LocalServer

    with LocalServer(fsync=False) as pg:
        pg.create_database("db")
        rt = Runtime.init(tmp_path / "ws", ledger=pg.url("db", ledger="restarted"))
        fill(rt, 2)
        pg._run(pg.bindir / "pg_ctl", "-D", pg.data, "-l", pg.root / "server.log", "-w",
                "-t", "60", "-m", "fast", "restart")
        with pytest.raises(LedgerUnavailable, match="cannot be used"):
            rt.state("agents/t0/routing")
        assert rt.state("agents/t0/routing") == {"w": 0}  # a new session
        fill(rt, 2, who="after")
        assert rt.verify().events == rt.backend.count()
        rt.close()


def test_http_a_lost_session_is_a_503_problem_then_the_server_recovers(
        pg_server: Any, tmp_path: Path) -> None:
    """``ouro serve`` on a PostgreSQL workspace whose sessions the server ended: the
    request that meets the dead session is a 503 JSON problem naming the ledger (not a
    500 ``internal_error`` with a traceback in the log), and the next one is served."""
    import psycopg

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from serve.live import start

    db = f"serve_{os.getpid()}"
    pg_server.create_database(db)
    home = tmp_path / "ws"
    Runtime.init(home, ledger=pg_server.url(db)).close()
    server = start(home, "--no-scheduler")
    try:
        with server.client(server.token("reader", "read")) as c:
            assert c.get("/api/v1/state").status_code == 200
            with psycopg.connect(pg_server.url("postgres"), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s", (db,))
            r = c.get("/api/v1/state")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            assert "cannot be used" in r.json()["error"]["message"]
            assert c.get("/api/v1/state").status_code == 200
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


# ------------------------------------------------------------------ an interrupted migrate
_DIES = """
import os, sys
from pathlib import Path
from ouroboros.kernel.migrate import migrate
from ouroboros.kernel.workspace import Workspace
home, url, when = sys.argv[1:]
if when == "after-seal":  # the host dies between sealing SQLite and switching the config
    Workspace.save = lambda self: os._exit(9)
migrate(Workspace.load(Path(home)), url,
        before_switch=(lambda: os._exit(9)) if when == "after-copy" else None)
"""


@pytest.mark.parametrize("when", ["after-copy", "after-seal"])
def test_a_migration_killed_after_its_copy_can_be_run_again(new_pg_ledger: Any,
                                                            tmp_path: Path,
                                                            when: str) -> None:
    """The host dies once the copy is committed (during its verification, or after the old
    ledger was sealed): nothing switched, and running ``ouro migrate`` again must finish
    the job instead of refusing the target as 'not empty' forever (it holds nothing but
    a copy of this very ledger)."""
    home = tmp_path / "ws"
    rt = Runtime.init(home, ledger=None, snapshot_interval=5, checkpoint_interval=8)
    fill(rt, 6)
    before, n = rt.state_hash(), rt.backend.count()
    rt.close()
    url = new_pg_ledger()
    script = tmp_path / "dies.py"
    script.write_text(_DIES)
    proc = subprocess.run([sys.executable, str(script), str(home), url, when],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert "ledger" not in json.loads((home / "workspace.json").read_text())  # not switched
    assert raw_sql(home, "SELECT count(*) FROM events") == [(n,)]  # still SQLite's file
    r = ouro("migrate", "--to", url, "--json", home=home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] == n
    rt = Runtime.open(home)
    assert rt.workspace.ledger_url is not None and rt.state_hash() == before
    fill(rt, 1, who="after")
    assert rt.verify().events > n
    rt.close()


def test_migrate_still_refuses_a_target_holding_events_this_ledger_lacks(
        new_pg_ledger: Any, tmp_path: Path) -> None:
    """The leftover of an interrupted copy is replaced only when every event in it is this
    ledger's own: a target that grew past the copy (hosts kept appending) is refused."""
    url = new_pg_ledger()
    home = tmp_path / "ws"
    rt = Runtime.init(home, ledger=None)
    fill(rt, 3)
    rt.close()
    script = tmp_path / "dies.py"
    script.write_text(_DIES)
    assert subprocess.run([sys.executable, str(script), str(home), url, "after-copy"],
                          capture_output=True, timeout=120).returncode == 9
    other = tmp_path / "other"  # a second copy of the workspace that migrated and grew
    shutil.copytree(home, other)
    assert ouro("migrate", "--to", url, home=other).returncode == 0
    grown = Runtime.open(other)
    fill(grown, 1, who="grown")
    total = grown.backend.count()
    grown.close()
    r = ouro("migrate", "--to", url, home=home)
    assert r.returncode == 2 and "is not empty" in r.stderr, r.stderr
    other_rows = raw_sql(other, "SELECT count(*) FROM events")
    assert other_rows == [(total,)]  # nothing of the grown ledger was touched


# ------------------------------------------------------------------ another workspace's ledger
def test_another_workspaces_ledger_under_this_ones_name_is_refused_on_open(
        tmp_path: Path) -> None:
    """Whoever can write the database swaps two ledgers' schemas: each workspace's URL now
    names the other's ledger, whole and validly signed (by the other runtime key). Opening
    must refuse it by the genesis the workspace pinned, even when the other workspace's
    checkpoint was copied too, and no event may be signed into the other ledger."""
    from ouroboros.storage.postgres.url import parse

    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        rt = Runtime.init(home)
        fill(rt, 2, who=home.name)
        rt.close()
    a, b = (parse(json.loads((h / "workspace.json").read_text())["ledger"]).ledger
            for h in homes)
    for statement in (f"ALTER SCHEMA {a} RENAME TO {a}_x", f"ALTER SCHEMA {b} RENAME TO {a}",
                      f"ALTER SCHEMA {a}_x RENAME TO {b}"):
        raw_sql(homes[0], statement)
    sizes = [raw_sql(h, "SELECT count(*) FROM events") for h in homes]
    r = ouro("verify", home=homes[0])
    assert r.returncode == 1 and "another workspace's ledger" in r.stderr, r.stderr
    shutil.copy(homes[1] / "ledger.checkpoint", homes[0] / "ledger.checkpoint")
    with pytest.raises(IntegrityError, match="another workspace's ledger"):
        Runtime.open(homes[0])
    assert [raw_sql(h, "SELECT count(*) FROM events") for h in homes] == sizes


# ------------------------------------------------------------------ URLs libpq reads otherwise
def test_a_url_without_a_host_part_is_libpqs_default_not_malformed(
        pg_server: Any, tmp_path: Path) -> None:
    """``postgresql:///db?host=…`` (empty authority: libpq's defaults, here the socket
    folder given as a parameter) is a valid libpq URL; it was mangled to ``postgresql:/db``
    and refused as malformed."""
    from urllib.parse import quote

    home = tmp_path / "ws"
    url = (f"postgresql:///ouro_tests?ledger=noauth_{os.getpid()}&user=ouro"
           f"&host={quote(str(pg_server.root), safe='')}&port={pg_server.port}")
    r = ouro("init", "--ledger", url, "--json", home=home)
    assert r.returncode == 0, r.stderr
    rt = Runtime.open(home)
    fill(rt, 1)
    assert rt.verify().events > 1
    rt.close()


@pytest.mark.parametrize(("query", "named"), [
    ("sslmode=bogus", "sslmode"),
    ("target_session_attrs=nonsense", "target_session_attrs"),
])
def test_a_bad_libpq_parameter_value_is_a_usage_error(tmp_path: Path, query: str,
                                                      named: str) -> None:
    """libpq refuses these values before any connection is tried: the URL is wrong (exit
    2), not the server down (exit 1, 'is the server running?')."""
    home = tmp_path / "ws"
    r = ouro("init", "--ledger", f"postgresql://u:Pw-s3cret-9@127.0.0.1:1/db?{query}",
             home=home)
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and "server running" not in r.stderr
    assert "s3cret" not in r.stderr and "Traceback" not in r.stderr
    assert not home.exists()


_SUBMITS_THROUGH_TERMINATIONS = """
import json, sys
from ouroboros.kernel import IntegrityError, Runtime
from ouroboros.storage.ledger import LedgerUnavailable
rt = Runtime.open(sys.argv[1])
print(rt.backend._db.pgconn.backend_pid, flush=True)
applied, failed = [], []
for i in range(int(sys.argv[2])):
    target = f"agents/w{i}/routing"
    try:
        out = rt.propose_and_submit(type="routing", target=target, value={"w": i},
                                    reasoning="r", author="w")
        assert out.status == "applied", out
        applied.append(target)
    except LedgerUnavailable:
        failed.append(target)
    print(rt.backend._db.pgconn.backend_pid, flush=True)
rt.close()
print(json.dumps({"applied": applied, "failed": failed}), flush=True)
"""


def test_sessions_terminated_mid_submit_never_fork_lose_or_double_an_event(
        tmp_path: Path) -> None:
    """A writer's session is ended by the server again and again while it submits (some
    mid-call, after or before the commit): each call that meets it fails cleanly, the
    writer goes on with a new session, and the ledger verifies, holds every patch the
    writer was told was applied, and none twice."""
    import psycopg

    from ouroboros.storage.postgres.url import for_workspace

    home = tmp_path / "ws"
    Runtime.init(home, checkpoint_interval=8, snapshot_interval=10).close()
    script = tmp_path / "writer.py"
    script.write_text(_SUBMITS_THROUGH_TERMINATIONS)
    proc = subprocess.Popen([sys.executable, str(script), str(home), "60"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    conninfo = for_workspace(str(json.loads((home / "workspace.json").read_text())["ledger"]))
    ended = 0
    with psycopg.connect(conninfo.conninfo, autocommit=True) as admin:
        for line in proc.stdout:
            if line.startswith("{"):
                result = json.loads(line)
                break
            if int(line) % 3 == 0 or ended < 3:  # end some sessions, not every one
                ended += int(admin.execute("SELECT count(*) FROM (SELECT pg_terminate_backend("
                                           "%s)) t", (int(line),)).fetchone()[0])
    assert proc.wait(120) == 0
    assert ended >= 3 and result["failed"], result  # the attack did land
    rt = Runtime.open(home)
    rt.verify()
    assert rt.replay().consistent
    targets = [e.payload["target"] for e in rt.log(kind="PatchApplied")]
    assert len(targets) == len(set(targets))  # nothing applied twice
    assert set(result["applied"]) <= set(targets)  # nothing it was told about is lost
    assert set(targets) <= set(result["applied"]) | set(result["failed"])
    rt.close()


def test_the_skill_vector_rows_survive_a_lost_session(new_pg_ledger: Any,
                                                       tmp_path: Path) -> None:
    """The skill index's rows share the ledger's schema and server: after the session is
    ended, the call that meets it fails cleanly and the next one opens a new session."""
    import psycopg

    from ouroboros.storage.postgres.url import parse
    from ouroboros.storage.postgres.vectors import PostgresVectorRows

    url = new_pg_ledger()
    Runtime.init(tmp_path / "ws", ledger=url).close()
    rows = PostgresVectorRows(parse(url))
    rows.append([("t1", "fp", "text")], [b"\0" * 16], "m", 4)
    with psycopg.connect(parse(url).conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (rows._db.pgconn.backend_pid,))
    with pytest.raises(LedgerUnavailable, match="cannot be used"):
        for _ in range(200):  # until the server has ended it
            rows.state()
            time.sleep(0.01)
    rows.append([("t2", "fp", "text")], [b"\1" * 16], "m", 4)
    assert rows.state()[1:] == (2, "m", 4)
    rows.close()


def test_mcp_calls_name_a_lost_session_instead_of_an_internal_error(tmp_path: Path,
                                                                     caplog: Any) -> None:
    """An MCP tool call that meets a dead PostgreSQL session reads the backend's message
    and hint ('unavailable'-like failure), not 'internal' with a traceback in the log."""
    from ouroboros.interfaces.mcp.errors import describe

    rt = Runtime.init(tmp_path / "ws")
    _terminate(rt)
    with pytest.raises(LedgerUnavailable) as err:
        rt.backend.count()
    call = describe(err.value)
    assert call.code == "failure" and "cannot be used" in call.message
    assert "is the PostgreSQL server running" in (call.hint or "")
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
    rt.close()


def test_init_into_a_schema_holding_another_applications_events_table_touches_nothing(
        pg_server: Any, tmp_path: Path) -> None:
    """``?ledger=NAME`` names a schema where another application keeps a table called
    ``events``: init must refuse it as not a ledger (exit 2, not 'damaged: restore from a
    backup') and leave no table or function of ours in that application's schema."""
    import psycopg

    schema = f"otherapp_{os.getpid()}"
    with psycopg.connect(pg_server.url("ouro_tests"), autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(f"CREATE TABLE {schema}.events (id int PRIMARY KEY, name text)")
        db.execute(f"INSERT INTO {schema}.events VALUES (1, 'theirs')")
    home = tmp_path / "ws"
    r = ouro("init", "--ledger", pg_server.url("ouro_tests", ledger=schema), home=home)
    assert r.returncode == 2, r.stderr
    assert "not an Ouroboros ledger" in r.stderr and "Traceback" not in r.stderr
    assert not home.exists()
    with psycopg.connect(pg_server.url("ouro_tests"), autocommit=True) as db:
        tables = db.execute("SELECT table_name FROM information_schema.tables WHERE "
                            "table_schema = %s", (schema,)).fetchall()
        functions = db.execute("SELECT proname FROM pg_proc p JOIN pg_namespace n ON "
                               "n.oid = p.pronamespace WHERE nspname = %s",
                               (schema,)).fetchall()
        rows = db.execute(f"SELECT * FROM {schema}.events").fetchall()
    assert tables == [("events",)] and functions == [] and rows == [(1, "theirs")]


def test_a_role_that_may_only_read_reads_and_is_told_why_it_cannot_write(
        pg_server: Any, tmp_path: Path) -> None:
    import psycopg

    home = tmp_path / "ws"
    rt = Runtime.init(home)
    fill(rt, 2)
    rt.close()
    ledger = parse_ledger(home)
    role = f"reader_{os.getpid()}"
    with psycopg.connect(pg_server.url("ouro_tests"), autocommit=True) as db:
        db.execute(f"CREATE ROLE {role} LOGIN")
        db.execute(f"GRANT USAGE ON SCHEMA {ledger} TO {role}")
        db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {ledger} TO {role}")
    config = json.loads((home / "workspace.json").read_text())
    config["ledger"] = config["ledger"].replace("ouro@", f"{role}@")
    (home / "workspace.json").write_text(json.dumps(config))
    assert ouro("verify", home=home).returncode == 0
    assert ouro("state", "agents/t0/routing", home=home).returncode == 0
    rt = Runtime.open(home)
    with pytest.raises(LedgerUnavailable) as err:
        fill(rt, 1, who="ro")
    rt.close()
    assert "permission denied for table events" in err.value.message
    assert "cannot be used: ERROR" not in err.value.message
    assert role in err.value.hint and "INSERT" in err.value.hint


def parse_ledger(home: Path) -> str:
    from ouroboros.storage.postgres.url import parse

    return parse(json.loads((home / "workspace.json").read_text())["ledger"]).ledger


# ------------------------------------------------------------------ the SQLite-only byte test's twin
def test_every_single_bit_flip_in_the_database_is_named_by_verify(tmp_path: Path) -> None:
    """tests/kernel/test_ledger.py::test_every_single_byte_change_is_detected copies the
    SQLite file per example; here one PostgreSQL ledger is flipped and restored in place:
    every bit flipped in any event's body or signature (first, middle and last byte, and a
    spread of others) is named by the chain check at exactly that event."""
    from ouroboros.kernel.ledger import verify_events
    from ouroboros.kernel.workspace import Workspace
    from ouroboros.storage.backends import open_ledger

    home = tmp_path / "ws"
    rt = Runtime.init(home, checkpoint_interval=5)
    fill(rt, 8)
    rt.close()
    ws = Workspace.load(home)
    backend = open_ledger(home, ws.ledger_url)
    n = backend.count()
    checked = 0
    for seq in range(n):
        for column in ("body", "sig"):
            [(original,)] = raw_sql(home, f"SELECT {column} FROM events WHERE seq = ?", seq)
            original = bytes(original)
            for pos in sorted({0, len(original) // 2, len(original) - 1,
                               *range(7 * seq + 3, len(original), 97)}):
                data = bytearray(original)
                data[pos] ^= 0x01
                raw_sql(home, f"UPDATE events SET {column} = ? WHERE seq = ?", bytes(data),
                        seq)
                with pytest.raises(IntegrityError) as err:
                    verify_events(backend.read(), pinned_genesis=ws.config["genesis"])
                assert err.value.seq == seq, (seq, column, pos, str(err.value))
                checked += 1
            raw_sql(home, f"UPDATE events SET {column} = ? WHERE seq = ?", original, seq)
    verify_events(backend.read(), pinned_genesis=ws.config["genesis"])  # restored whole
    backend.close()
    assert checked > 4 * n
