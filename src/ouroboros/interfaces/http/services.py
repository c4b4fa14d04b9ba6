"""What the routes work with: a pool of open runtimes, the token store, shared indexes.

A `Runtime` is used by one thread at a time, so the server keeps a small pool: a request
leases one (opened with every capability's patch types registered, exactly as the CLI
opens it), uses it, and gives it back warm. Several leases write the one ledger the way
several processes do (the kernel's compare-and-append decides). Submissions, the bulk of
writes, all go through one writer runtime in turn (``lease(writer=True)``): a submit is
CPU-bound under one GIL, so running eight at once only made each fold the other seven's
events and retry (3.3 ms of server CPU per submit instead of 0.6; see docs/serve.md). A lease also carries
the handles made from its runtime (the skill store, the improvement loop), built on
first use.

Routes never open anything themselves: ``services.lease()`` is the one door.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ouroboros.interfaces.http.ratelimit import RateLimit, RateLimiter
from ouroboros.interfaces.http.tokens import TokenStore
from ouroboros.kernel import OuroError, Runtime
from ouroboros.kernel.workspace import Workspace, resolve_home
from ouroboros.storage.ledger import LedgerUnavailable
from ouroboros.storage.sqlite import LedgerBusy

if TYPE_CHECKING:
    from ouroboros.capabilities.improve.intake.store import TelemetryStore
    from ouroboros.capabilities.improve.proposals.loop import ImproveLoop
    from ouroboros.capabilities.skills import SkillStore
    from ouroboros.capabilities.skills.retrieval import SkillIndex
    from ouroboros.kernel.settings import Settings


def open_runtime(home: Path) -> Runtime:
    """The CLI's way of opening a workspace (every capability's registrar applied)."""
    import ouroboros.interfaces.cli.main  # noqa: F401  (fills CAPABILITY_REGISTRARS)
    from ouroboros.interfaces.cli.output import open_runtime as cli_open_runtime

    return cli_open_runtime(home)


@dataclass
class Lease:
    """One runtime and the capability handles made from it, for one request at a time."""

    rt: Runtime
    _handles: dict[str, Any] = field(default_factory=dict)

    def skills(self) -> SkillStore:
        """The workspace's governed skill store on this runtime."""
        store = self._handles.get("skills")
        if store is None:
            from ouroboros.capabilities.skills.governance import open_store

            store = self._handles["skills"] = open_store(self.rt)
        return store

    def index(self) -> SkillIndex:
        """The retrieval index of the skill store, caught up with tools added since (by
        this server or any other process: the index is safe to share between writers)."""
        from ouroboros.capabilities.skills.discovery import open_index, sync_index

        store = self.skills()
        index = self._handles.get("index")
        if index is None:
            index = self._handles["index"] = open_index(store)
        sync_index(store, index)
        return index

    def loop(self) -> ImproveLoop:
        """The improvement loop on this runtime (the CLI's `loop_for`)."""
        from ouroboros.capabilities.improve.registrar import loop_of

        return loop_of(self.rt)


class Busy(OuroError):
    """Every runtime stayed leased for the whole wait."""


class Services:
    """The server's shared state; one per app, closed by the app's lifespan."""

    def __init__(self, home: Path | str | None, *, pool_size: int = 8,
                 lease_timeout: float = 30.0, rate_limit: RateLimit | None = None) -> None:
        self.home = resolve_home(home)
        self.workspace = Workspace.load(self.home)  # WorkspaceMissing names the fix
        self.tokens = TokenStore(self.home)
        #: Every bearer check counts against its token's bucket (API, MCP, OTLP).
        self.limiter = RateLimiter(rate_limit or RateLimit())
        self.pool_size = pool_size
        self.lease_timeout = lease_timeout
        self._idle: queue.LifoQueue[Lease] = queue.LifoQueue()
        self._opened = 0
        self._leased = 0
        self._returned = threading.Condition()
        self._all: list[Lease] = []
        self._open_lock = threading.Lock()
        self._writer: Lease | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        self._telemetry: TelemetryStore | None = None
        self._settings: Settings | None = None
        self._telemetry_lock = threading.Lock()
        #: Serialises decisions (approvals, rejections) and the improvement loop's work in
        #: this server: two approvals of one pending patch in flight at once must not both
        #: run its gates, and the loop's git repositories and state files have one writer.
        self.decisions = threading.RLock()
        #: One submit at a time waits in a thread for a writers' lock another process
        #: holds (an ``anyio.CapacityLimiter``, made on the event loop by the first).
        self.submit_gate: Any = None
        #: A PostgreSQL ledger's ``?timeout=`` (None: SQLite). Its submits wait on the
        #: network, so they run in the thread, and wait their turn at most this long.
        self.ledger_timeout: float | None = None
        if self.workspace.ledger_url is not None:
            from ouroboros.storage.postgres.url import parse

            with contextlib.suppress(LedgerUnavailable):  # opening a runtime names it
                self.ledger_timeout = parse(self.workspace.ledger_url).timeout

    # -- runtimes ---------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, writer: bool = False, wait: bool = True) -> Iterator[Lease]:
        """A runtime for the duration of the block (opened if the pool has room); with
        ``writer``, the one writer runtime, in turn (``wait=False``: `LedgerBusy` at once
        if another thread has it)."""
        if writer:
            if not self._writer_lock.acquire(blocking=wait):
                raise LedgerBusy("the writer runtime is in use")
            try:
                if self._closed:
                    raise Busy("the server is shutting down", "retry in a moment")
                if self._writer is None:
                    self._writer = Lease(open_runtime(self.home))
                    with self._open_lock:
                        self._all.append(self._writer)
                with self._returned:
                    self._leased += 1
                try:
                    yield self._writer
                finally:
                    with self._returned:
                        self._leased -= 1
                        self._returned.notify_all()
            finally:
                self._writer_lock.release()
            return
        lease = self._take()
        with self._returned:
            self._leased += 1
        try:
            yield lease
        finally:
            self._idle.put(lease)
            with self._returned:
                self._leased -= 1
                self._returned.notify_all()

    def _take(self) -> Lease:
        if self._closed:
            raise Busy("the server is shutting down", "retry in a moment")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._open_lock:
            grow = self._opened < self.pool_size
            if grow:
                self._opened += 1
        if grow:
            try:
                lease = Lease(open_runtime(self.home))
            except BaseException:
                with self._open_lock:
                    self._opened -= 1
                raise
            with self._open_lock:
                self._all.append(lease)
            return lease
        try:
            return self._idle.get(timeout=self.lease_timeout)
        except queue.Empty:
            raise Busy(f"all {self.pool_size} runtimes stayed busy for "
                       f"{self.lease_timeout:.0f} s", "retry later") from None

    # -- shared capability state ------------------------------------------------------
    def telemetry(self) -> TelemetryStore:
        """One telemetry store per server (its sanitizer is costly to build)."""
        with self._telemetry_lock:
            if self._telemetry is None:
                from ouroboros.capabilities.improve.intake.store import TelemetryStore

                self._telemetry = TelemetryStore(self.home)
            return self._telemetry

    def settings(self) -> Settings:
        """The workspace's ``ouro.toml`` settings, read once per server.

        Raises:
            SettingsError: the file is not valid (file, line and key named).
        """
        if self._settings is None:
            from ouroboros.kernel.settings import load_settings

            self._settings = load_settings(self.home).settings
        return self._settings

    def export_spans(self) -> bool:
        """Send this process's spans to the workspace's ``[telemetry] otlp_endpoint`` (if
        set and its exporter is installed); whether they go there.

        Only then are *request* spans made (FastAPI's per HTTP request, the MCP SDK's per
        message): the workspace's store keeps only the runtime's ``ouro.*`` spans, so
        otherwise they would be made to be dropped, at 0.3 ms of server CPU per request
        (docs/BENCHMARKS.md, "MCP: tool-run overhead").

        Raises:
            SettingsError: ``ouro.toml`` is not valid (file, line and key named).
        """
        endpoint = self.settings().telemetry.otlp_endpoint
        if not endpoint:
            return False
        from ouroboros.capabilities.improve.intake.spans import exporting, install

        install(self.telemetry(), endpoint)
        if not exporting():
            logging.getLogger("ouroboros.serve").warning(
                "[telemetry] otlp_endpoint is %s but the OTLP exporter is not installed "
                "(pip install opentelemetry-exporter-otlp-proto-http): spans stay local",
                endpoint)
        return exporting()

    def close(self, drain_timeout: float = 60.0) -> None:
        """Refuse new leases, wait (up to ``drain_timeout``) for those in use to come back,
        then close every runtime. A write still running after that is cut off by SQLite's
        transaction, whole: nothing half-appended."""
        with self._open_lock:
            self._closed = True
        with self._returned:
            self._returned.wait_for(lambda: self._leased == 0, timeout=drain_timeout)
        with self._open_lock:
            leases = list(self._all)
        for lease in leases:
            with contextlib.suppress(Exception):
                lease.rt.close()
