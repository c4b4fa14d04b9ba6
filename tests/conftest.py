from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ouroboros.kernel import ManualClock, Runtime


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
