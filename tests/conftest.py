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
