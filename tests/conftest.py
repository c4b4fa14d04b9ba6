from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ouroboros.kernel import ManualClock, Runtime

#: Test modules whose ledgers run on both backends (SQLite and a real PostgreSQL server):
#: the ledger, the kernel and the kernel's security tests, and the backends' own tests.
BOTH_BACKENDS = ("tests/kernel/", "tests/security/test_kernel_", "tests/storage/")
#: ...except those that use no ledger, or drive the kernel through `ouro` subprocesses
#: only (their cost is interpreter start-up; the CLI on PostgreSQL has its own tests in
#: tests/storage/), to keep CI's budget.
SQLITE_ONLY = ("tests/kernel/test_pure.py", "tests/kernel/test_cli.py",
               "tests/security/test_kernel_trust_cli.py")
BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--ledger-backend", choices=("both", *BACKENDS),
                     default=os.environ.get("OURO_TEST_LEDGER", "both"),
                     help="which ledger backend(s) the kernel and ledger tests run on")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ledger_backend" not in metafunc.fixturenames:
        return
    path = Path(str(metafunc.definition.fspath)).as_posix()
    chosen = metafunc.config.getoption("--ledger-backend")
    if not any(area in path for area in BOTH_BACKENDS) or any(m in path for m in SQLITE_ONLY):
        backends: tuple[str, ...] = ("sqlite",)
    elif chosen == "both":
        backends = BACKENDS
    else:
        backends = (chosen,)
    only = metafunc.definition.get_closest_marker("backends")
    if only is not None:
        backends = tuple(b for b in backends if b in only.args) or ("sqlite",)
    metafunc.parametrize("ledger_backend", backends, indirect=True, scope="module")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run this test on these ledger "
                            "backends only (e.g. a test of SQLite's file format)")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A throw-away PostgreSQL 15 for the whole session (fails, never skips, when the
    server binaries are missing: scripts/bootstrap.sh installs them)."""
    from ouroboros.storage.postgres.server import LocalServer

    server = LocalServer(fsync=False).start()
    try:
        server.create_database("ouro_tests")
        yield server
    finally:
        server.stop()


_ledgers = itertools.count()


@pytest.fixture(scope="session")
def new_pg_ledger(pg_server: Any) -> Any:
    """A function returning the URL of a new, empty ledger on the session's server."""
    return lambda: pg_server.url("ouro_tests", ledger=f"t{os.getpid()}_{next(_ledgers)}")


@pytest.fixture(autouse=True, scope="module")
def ledger_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend ``Runtime.init`` gives new workspaces in this module (parametrised by
    ``pytest_generate_tests``): on PostgreSQL each workspace gets its own new ledger."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield backend
        return
    fresh = request.getfixturevalue("new_pg_ledger")
    real = Runtime.init.__func__  # type: ignore[attr-defined]

    def init(cls: type[Runtime], home: Any = None, **kwargs: Any) -> Runtime:
        if "ledger" not in kwargs:  # (ledger=None asks for SQLite explicitly)
            kwargs["ledger"] = fresh()
        return real(cls, home, **kwargs)  # type: ignore[no-any-return]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Runtime, "init", classmethod(init))
        yield backend


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def rt(tmp_path: Path, clock: ManualClock) -> Iterator[Runtime]:
    runtime = Runtime.init(tmp_path / "ws", clock=clock)
    yield runtime
    runtime.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the session's Ray run last: once a Ray driver runs in this process, every
    later fork (process pools elsewhere in the suite) would inherit its threads."""
    items.sort(key=lambda item: "ray_cluster" in getattr(item, "fixturenames", ()))
