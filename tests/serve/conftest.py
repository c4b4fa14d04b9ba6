from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ouroboros.kernel import Runtime

from .live import LiveServer, start


def new_workspace(home: Path) -> Path:
    Runtime.init(home).close()
    return home


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server per test module, on its own workspace (no scheduled work)."""
    home = new_workspace(tmp_path_factory.mktemp("serve") / "ws")
    server = start(home, "--no-scheduler")
    try:
        yield server
    finally:
        code, err = server.stop()
        assert code == 0, err
        assert "Traceback" not in err, err
