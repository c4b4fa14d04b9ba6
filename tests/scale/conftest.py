"""One private Ray for the whole test session (starting one costs ~3 s): 2 CPUs, a small
object store, no dashboard; every `RayExecutor` made by a test (or by `ouro` run
in-process) joins it and leaves it running, and the session shuts it down at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ouroboros.capabilities.evolve.ray_backend import RayExecutor


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayExecutor]:
    executor = RayExecutor(2)
    yield executor
    executor.close()
