"""Batches on Ray: a private Ray started on this machine, or a cluster joined by address.

`RayExecutor` implements the executor interface (`executor.py`) with one Ray task per
batch. Ray is heavy (~0.3 s to import, ~3 s to start), so it is imported only here and
only when `--executor ray` is asked for; without it that fails with a usage error.

Started locally, Ray is kept small and quiet: as many CPUs as workers (at most the
machine's), a 128 MiB object store, no dashboard, no usage statistics, every service on
loopback (127.0.0.1), only errors in the log, its session files in a fresh temporary directory that `close` removes after
`ray.shutdown()`. Joined to a cluster (`address`, or `$OURO_RAY_ADDRESS`), it leaves the
cluster running and the cluster must have the same `ouroboros` installed. A Ray that is
already running in this process (a notebook, the test session) is used as it is and not
shut down.

A task runs with `max_retries=0`: a batch that killed its worker is reported
(`ExecutorFailed`, exit 1), never silently run again; an exception raised inside a task
reaches the caller as itself (a `UsageError` stays a `UsageError`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

from ouroboros.capabilities.evolve.executor import ExecutorFailed
from ouroboros.kernel.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

ADDRESS_ENV = "OURO_RAY_ADDRESS"
# Ray's switch for "single-machine Ray": every service on 127.0.0.1 (its default on macOS).
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
OBJECT_STORE_BYTES = 128 << 20
# "auto" (a cluster started on this host with `ray start`), host:port, or ray://host:port.
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


def load_ray(local: bool = True) -> ModuleType:
    """Import Ray (with usage statistics off), or say how to install it. `local`: the
    Ray this process starts binds to loopback only (Ray reads that at import time and
    otherwise advertises the machine's network address).

    Raises:
        UsageError: Ray is not installed (exit 2).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--executor ray needs Ray, which is not installed here",
                         "pip install 'ouroboros[ray]', or use --executor process") from exc
    return ray


def resolve_address(address: str | None) -> str | None:
    """The cluster to join: `address`, else `$OURO_RAY_ADDRESS`, else None (start one).

    Raises:
        UsageError: the address is not `auto`, `host:port` or `ray://host:port`.
    """
    address = address if address is not None else os.environ.get(ADDRESS_ENV) or None
    if address is None:
        return None
    address = address.strip()
    if not _ADDRESS.match(address):
        raise UsageError(f"Ray address {address!r} is not auto, HOST:PORT or ray://HOST:PORT",
                         f"check --ray-address or ${ADDRESS_ENV}")
    return address


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayExecutor:
    """One Ray task per batch, results in order (see the module docstring)."""

    def __init__(self, workers: int, *, address: str | None = None) -> None:
        address = resolve_address(address)
        self._ray = load_ray(local=address is None)
        self._owned = False
        self._temp_dir: str | None = None
        ray = self._ray
        if not ray.is_initialized():
            self._start(ray, workers, address)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, min(workers, cpus))
        self.address = address
        self._task = ray.remote(num_cpus=1, max_retries=0)(_apply)

    def _start(self, ray: ModuleType, workers: int, address: str | None) -> None:
        quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        try:
            if address is not None:
                ray.init(address=address, **quiet)
            else:
                self._temp_dir = tempfile.mkdtemp(prefix="ouro-ray-")
                # On loopback: a private Ray is reachable from this machine only. Its workers
                # import what this process can (a `module:function` fitness, say): Ray
                # passes on only the installed packages, so the search path goes along.
                search_path = [p for p in dict.fromkeys([*sys.path, os.getcwd()])
                               if p and os.path.isdir(p)]
                ray.init(num_cpus=max(1, min(workers, os.cpu_count() or 1)),
                         include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                         _temp_dir=self._temp_dir, _node_ip_address="127.0.0.1",
                         job_config=ray.job_config.JobConfig(code_search_path=search_path),
                         **quiet)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            self._remove_temp()
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise ExecutorFailed(f"cannot start or join {where}: {_first_line(exc)}",
                                 "check the address and that the cluster runs the same Ray "
                                 "version, or use --executor process") from None
        self._owned = True

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        ray = self._ray
        refs = [self._task.remote(fn, item) for item in items]
        try:
            return list(ray.get(refs))
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                raise cause from None  # the task's own error, as raised in the worker
            raise ExecutorFailed(f"a Ray task failed: {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:
            for ref in refs:  # leave nothing of this batch running
                ray.cancel(ref, force=True)
            raise ExecutorFailed(f"a Ray worker was lost mid-batch: {_first_line(exc)}",
                                 "a task may have crashed its worker (see the Ray logs); "
                                 "nothing from this batch was kept") from None

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()
            self._owned = False
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
