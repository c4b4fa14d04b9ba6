"""A PostgreSQL server that stops answering (SIGSTOP, a hung host, a peer holding the
ledger's locks) must not hang the runtime for ever: every call is bounded by the URL's
``timeout`` (docs/postgresql.md), fails with one clear error, and leaves the ledger
whole once the server answers again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import Runtime
from ouroboros.kernel.dsse import envelope_to_dict
from ouroboros.storage.ledger import LedgerUnavailable
from ouroboros.storage.postgres import lock_key
from ouroboros.storage.postgres.server import LocalServer

pytestmark = pytest.mark.backends("postgresql")

#: The bound the tests' URLs set (seconds): small, so a test that works is quick; the
#: join/subprocess limits below only keep a regression from hanging the suite.
BOUND = "timeout=2&connect_timeout=2"
HANG = 90.0


@pytest.fixture(scope="module")
def frozen_pg() -> Iterator[LocalServer]:
    """A server of this module's own: freezing it must not stall the session's."""
    with LocalServer(fsync=False) as pg:
        pg.create_database("db")
        yield pg


def _server_pids(pg: LocalServer) -> list[int]:
    master = int((pg.data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == master:
                pids.append(int(entry))
    return pids


@contextmanager
def frozen(pg: LocalServer) -> Iterator[None]:
    """Every process of the server stopped (SIGSTOP): connections are accepted by the
    kernel and never answered."""
    pids = _server_pids(pg)
    for pid in pids:
        with suppress(ProcessLookupError):  # a backend whose session just ended
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def ouro(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ouroboros", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=HANG)


def bounded(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; it must return (or raise) well within ``HANG``."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            out.append(None)
        except BaseException as e:
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), "the call waited on the frozen server without a bound"
    return out[0]


def submit(rt: Runtime, i: int) -> None:
    out = rt.propose_and_submit(type="routing", target=f"agents/f{i}/routing",
                                value={"w": i}, reasoning="tune", author="t")
    assert out.status == "applied", out


@pytest.mark.parametrize("call", ["state", "submit"])
def test_a_frozen_server_is_a_bounded_clear_error_and_the_ledger_stays_whole(
        frozen_pg: LocalServer, tmp_path: Path, call: str) -> None:
    url = frozen_pg.url("db", ledger=f"frozen_{call}") + "&" + BOUND
    rt = Runtime.init(tmp_path / "ws", ledger=url)
    submit(rt, 0)
    with frozen(frozen_pg):
        err = bounded((lambda: rt.state("agents/f0/routing")) if call == "state"
                      else (lambda: submit(rt, 1)))
    assert isinstance(err, LedgerUnavailable), err
    assert "did not answer within 2 s" in err.message
    assert "timeout=" in err.hint
    # the server answers again: the same runtime recovers, nothing is half-written
    assert rt.state("agents/f0/routing") == {"w": 0}
    submit(rt, 2)
    assert rt.verify().events == rt.backend.count()
    rt.close()
    again = Runtime.open(tmp_path / "ws")
    assert again.verify().events == again.backend.count()
    again.close()


def test_calls_queued_on_one_runtime_during_a_freeze_each_fail_within_the_bound(
        frozen_pg: LocalServer, tmp_path: Path) -> None:
    """Threads sharing one runtime (one session, one in-process lock): each waited for
    the lock behind the ones ahead, then for the server, so the N-th failed only after
    about N x timeout. Now the lock's wait is bounded by the same timeout."""
    import time

    timeout = 5
    rt = Runtime.init(tmp_path / "ws", ledger=frozen_pg.url("db", ledger="queued_calls")
                      + f"&timeout={timeout}&connect_timeout={timeout}")
    submit(rt, 0)
    took: dict[int, tuple[BaseException | None, float]] = {}

    def call(i: int) -> None:
        t0 = time.monotonic()
        took[i] = (bounded(rt.backend.count), time.monotonic() - t0)

    with frozen(frozen_pg):
        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG)
    assert sorted(took) == [0, 1, 2, 3], took
    for err, seconds in took.values():
        assert isinstance(err, LedgerUnavailable), took
        # two bounds at most (the lock may come free just before its wait ends), not four
        assert seconds < 2 * timeout + 5, took
    assert rt.state("agents/f0/routing") == {"w": 0}
    submit(rt, 1)
    assert rt.verify().events == rt.backend.count()
    rt.close()


def envelope(home: Path, tmp_path: Path) -> Path:
    """An (unsigned) patch envelope: its submit appends a rejection to the ledger."""
    (tmp_path / "c.json").write_text('{"a": 1}')
    env = tmp_path / "p.json"
    r = ouro("patch", "new", "--type", "config", "--target", "agents/a/config", "--value",
             str(tmp_path / "c.json"), "--reason", "x", "-o", str(env), home=home)
    assert r.returncode == 0, r.stderr
    return env


@pytest.mark.parametrize("command", ["state", "submit"])
def test_cli_on_a_frozen_server_exits_with_one_line(frozen_pg: LocalServer, tmp_path: Path,
                                                    command: str) -> None:
    home = tmp_path / "ws"
    url = frozen_pg.url("db", ledger=f"cli_{command}") + "&" + BOUND
    Runtime.init(home, ledger=url).close()
    argv = ["state"] if command == "state" else ["patch", "submit",
                                                 str(envelope(home, tmp_path))]
    with frozen(frozen_pg):
        r = ouro(*argv, home=home)
    assert r.returncode not in (0, 2), r
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "PostgreSQL ledger" in lines[0], r.stderr
    assert ouro("verify", home=home).returncode == 0


@pytest.mark.parametrize("held", ["advisory", "table"])
def test_a_peer_holding_the_ledgers_locks_cannot_stall_the_cli(
        frozen_pg: LocalServer, tmp_path: Path, held: str) -> None:
    """A writer frozen inside its transaction (or any session) holding the append lock or
    a lock on ``events``: the other writers and readers wait ``timeout`` at most."""
    import psycopg

    home = tmp_path / "ws"
    ledger = f"locked_{held}"
    Runtime.init(home, ledger=frozen_pg.url("db", ledger=ledger) + "&" + BOUND).close()
    env = envelope(home, tmp_path)
    with psycopg.connect(frozen_pg.url("db"), autocommit=True) as peer, peer.transaction():
        if held == "advisory":
            peer.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(ledger),))
        else:
            peer.execute(f"LOCK TABLE {ledger}.events IN ACCESS EXCLUSIVE MODE")
        r = ouro("patch", "submit", str(env), home=home)
    assert r.returncode not in (0, 2), r
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: "), r.stderr
    assert "within 2 s" in r.stderr, r.stderr
    assert ouro("verify", home=home).returncode == 0


def test_http_on_a_frozen_server_is_a_503_then_the_server_recovers(
        frozen_pg: LocalServer, tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from serve.live import start

    home = tmp_path / "ws"
    rt = Runtime.init(home, ledger=frozen_pg.url("db", ledger="served") + "&" + BOUND)
    submit(rt, 0)
    rt.close()
    server = start(home, "--no-scheduler")
    try:
        with server.client(server.token("reader", "read")) as c:
            assert c.get("/api/v1/state").status_code == 200
            with frozen(frozen_pg):
                r = c.get("/api/v1/state", timeout=HANG)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "unavailable"
            assert "did not answer within 2 s" in r.json()["error"]["message"]
            assert c.get("/api/v1/state").status_code == 200
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert ouro("verify", home=home).returncode == 0


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "abc", "", "86401", "٣", "2&timeout=3"])
def test_a_bad_timeout_in_the_url_is_a_usage_error(frozen_pg: LocalServer, tmp_path: Path,
                                                   bad: str) -> None:
    url = frozen_pg.url("db", ledger="bad_timeout") + "&timeout=" + bad
    r = subprocess.run([sys.executable, "-m", "ouroboros", "init", "--ledger", url, "--home",
                        str(tmp_path / "ws")], capture_output=True, text=True, timeout=HANG)
    assert r.returncode == 2, r
    assert r.stderr.startswith("error: bad timeout") and "Traceback" not in r.stderr


def test_the_timeout_is_kept_with_the_workspace_and_not_passed_to_libpq(
        frozen_pg: LocalServer, tmp_path: Path) -> None:
    rt = Runtime.init(tmp_path / "ws", ledger=frozen_pg.url("db", ledger="kept") + "&timeout=7")
    assert "timeout=7" in str(rt.workspace.ledger_url)
    rt.close()
    again = Runtime.open(tmp_path / "ws")
    assert again.backend.url.timeout == 7  # type: ignore[attr-defined]
    row = again.backend._db.execute("SELECT current_setting('lock_timeout'), "  # type: ignore[attr-defined]
                                    "current_setting('statement_timeout')").fetchone()
    assert row == ("7s", "7s")
    again.close()



def test_the_urls_own_server_options_win(frozen_pg: LocalServer, tmp_path: Path) -> None:
    url = (frozen_pg.url("db", ledger="own_options")
           + "&timeout=7&options=-c%20lock_timeout%3D5000")
    rt = Runtime.init(tmp_path / "ws", ledger=url)
    row = rt.backend._db.execute("SELECT current_setting('lock_timeout'), "  # type: ignore[attr-defined]
                                 "current_setting('statement_timeout')").fetchone()
    assert row == ("5s", "7s")
    rt.close()


def test_requests_queued_during_a_freeze_each_fail_within_the_bound_not_in_turn(
        frozen_pg: LocalServer, tmp_path: Path) -> None:
    """Requests that reach the server while PostgreSQL is frozen: each used to wait for
    the ones ahead of it (one writer runtime, one session, one lock), so the N-th failed
    only after about N x timeout. Now a request that cannot get its turn within the URL's
    timeout is a 503 at once: all of them answer within the bound plus slack, and once the
    server answers again everything works and the ledger verifies."""
    import time

    import httpx

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from serve.live import start

    timeout = 5
    home = tmp_path / "ws"
    rt = Runtime.init(home, ledger=frozen_pg.url("db", ledger="queued")
                      + f"&timeout={timeout}&connect_timeout={timeout}")
    submit(rt, 0)
    bodies = [envelope_to_dict(rt.sign(rt.propose(
        type="routing", target=f"agents/q{i}/routing", value={"w": i}, reasoning="tune",
        author="root"), "root")) for i in range(5)]
    rt.close()
    server = start(home, "--no-scheduler")
    try:
        submitter = server.token("agent", "submit")
        with server.client(submitter) as c:
            assert c.post("/api/v1/patches", json=bodies[4]).status_code == 201
        answers: dict[int, tuple[int, float]] = {}

        def post(i: int) -> None:
            t0 = time.monotonic()
            with server.client(submitter) as c:
                try:
                    r = c.post("/api/v1/patches", json=bodies[i], timeout=HANG)
                    answers[i] = (r.status_code, time.monotonic() - t0)
                except httpx.HTTPError as e:
                    answers[i] = (-1, time.monotonic() - t0)
                    raise AssertionError(e) from e

        with frozen(frozen_pg):
            threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(HANG)
        # within the bound plus slack (two bounds: the one ahead may have just begun),
        # where waiting in turn takes four bounds
        assert sorted(answers) == [0, 1, 2, 3], answers
        for status, took in answers.values():
            assert status == 503, answers
            assert took < 2 * timeout + 5, answers
        with server.client(submitter) as c:
            for body in bodies[:4]:
                r = c.post("/api/v1/patches", json=body)
                assert r.status_code == 201, r.text
        with server.client(server.token("reader", "read")) as c:
            assert c.get("/api/v1/verify").json()["ok"] is True
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert ouro("verify", home=home).returncode == 0
