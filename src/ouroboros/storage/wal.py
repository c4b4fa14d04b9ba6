"""WAL checkpoints of the SQLite ledger on a thread of their own, off the append path.

SQLite's automatic checkpoint runs inside whichever ``COMMIT`` takes the WAL past 1,000
frames: that one commit copies the frames into the database and makes two fsyncs (5-20
ms here), about every 400 appends. `WalCheckpointer` runs the same passive checkpoint at
the same cadence on its own connection and thread, so the copy and the fsyncs overlap
the next appends (the ``sqlite3`` module releases the GIL inside SQLite).

Nothing about durability changes: a commit is durable when ``COMMIT`` returns, exactly as
before (``synchronous`` is the writer's, and the checkpoint connection uses the same
value, so a checkpoint syncs the WAL before copying and the database after, as the
automatic one did). A checkpoint only copies committed pages from the WAL into the
database; a process killed in the middle leaves both files valid (SQLite's recovery).

A passive checkpoint never waits for a lock and never holds one a writer needs. Its one
limit: while appends keep coming, the WAL is never wholly copied at the instant the next
transaction starts, so SQLite never rewinds it and it keeps growing. So once the thread
finds more than `REWIND_FRAMES` in the WAL, the writer's next commit rewinds it itself
(``wal_checkpoint(RESTART)``: it copies only the few frames committed since the thread's
checkpoint). The writer also rewinds on its own after twice as many frames' worth of
commits without one, and truncates the file (``TRUNCATE``) if it ever grows past that
size: the WAL stays bounded when the thread falls behind or has stopped.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

#: SQLite's own automatic-checkpoint threshold (frames), kept as the cadence.
CHECKPOINT_FRAMES = 1000
#: Frames in the WAL past which the writer rewinds it (32 MiB at 8 KiB pages; SQLite's
#: own rewinds kept it near 8 MiB, but each rewind costs the writer a few milliseconds).
REWIND_FRAMES = 4 * CHECKPOINT_FRAMES
#: The writer looks at the WAL file's size once per this many commits (one ``stat``).
_SIZE_EVERY = 32
#: A first guess of WAL frames per commit, replaced by the measured rate after each
#: checkpoint: high, so the first checkpoint and the writer's own rewinds come early.
_FIRST_FRAMES_PER_COMMIT = 4.0


class WalCheckpointer:
    """Passive checkpoints of ``path``'s WAL on a daemon thread, woken by `committed`.

    Owned by one `SQLiteLedger`, whose writer calls `committed` after each commit with
    its lock held; `close` stops the thread (after the checkpoint it may be running)
    before the ledger closes its connection."""

    def __init__(self, path: str, synchronous: str, page_size: int) -> None:
        self.path = path
        self.wal_path = path + "-wal"
        self._synchronous = synchronous
        self._frame_bytes = page_size + 24  # a WAL frame: a 24-byte header and a page
        #: The cadence and the rewind point, in WAL frames (the module's values; tests
        #: use smaller ones to reach them with fewer appends).
        self.cadence = CHECKPOINT_FRAMES
        self.rewind_frames = REWIND_FRAMES
        self._per_commit = _FIRST_FRAMES_PER_COMMIT  # WAL frames a commit adds (measured)
        self._commits = 0  # since the thread's last wake-up
        self._since_rewind = 0  # commits since the WAL was last rewound
        self._until_size_check = 1  # the first commit looks (a WAL other writers left)
        self._rewind = False  # set by the thread: the WAL passed REWIND_FRAMES
        self._wake = threading.Event()
        self._stop = False
        #: Held by whichever of the thread or the writer's rewind is checkpointing: in
        #: this process they take turns instead of meeting on SQLite's checkpoint lock.
        self._running = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Passive checkpoints run and rewinds made (observable in tests and benches).
        self.checkpoints = 0
        self.rewinds = 0
        self.truncations = 0

    # ------------------------------------------------------------------ writer side
    def committed(self, db: sqlite3.Connection) -> None:
        """Count a commit on ``db`` (the writer's connection); wake the thread at the
        cadence, rewind the WAL when it asks for it or has not for too long."""
        self._commits += 1
        self._since_rewind += 1
        if (self._commits * self._per_commit >= self.cadence and not self._stop
                and not self._wake.is_set()):
            if self._thread is None:
                self._start()
            self._wake.set()
        bound = 2 * self.rewind_frames
        if self._rewind or self._since_rewind * self._per_commit > bound:
            self._rewind_now(db, "RESTART")
        self._until_size_check -= 1
        if self._until_size_check <= 0:
            # The hard bound, whatever the estimates: a WAL file past it is truncated
            # (RESTART rewinds the WAL but leaves the file at its size).
            self._until_size_check = _SIZE_EVERY
            try:
                size = os.stat(self.wal_path).st_size
            except FileNotFoundError:
                return
            if size > bound * self._frame_bytes or (
                    self._thread is None and size > self.cadence * self._frame_bytes):
                # The second case: a WAL past the cadence that this process's commits
                # did not grow. Writers that append a few times and exit (one `ouro`
                # command each) never reach the cadence themselves, and while another
                # process keeps a connection open SQLite's checkpoint at the last close
                # never comes: the first writer to see it truncates, as the automatic
                # checkpoint would have copied it.
                self._rewind_now(db, "TRUNCATE")

    def _rewind_now(self, db: sqlite3.Connection, mode: str) -> None:
        with self._running:  # at most one passive checkpoint of the thread to wait for
            (busy_ms,) = db.execute("PRAGMA busy_timeout").fetchone()
            # No waiting on readers of other processes: a busy rewind is tried again
            # later instead of stalling this append.
            db.execute("PRAGMA busy_timeout=0")
            try:
                busy, log, _ = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            except sqlite3.Error:
                # As with SQLite's automatic checkpoint, a failed checkpoint does not fail
                # the commit before it (already durable).
                busy, log = 1, -1
            finally:
                db.execute(f"PRAGMA busy_timeout={busy_ms}")
        self._rewind = False
        if log > 0 and self._since_rewind > 0:
            self._per_commit = max(log / self._since_rewind, 0.5)
        if busy:  # tried again after another quarter of the bound
            self._since_rewind = int(1.5 * self.rewind_frames / self._per_commit)
            return
        self._since_rewind = 0
        if mode == "TRUNCATE":
            self.truncations += 1
        else:
            self.rewinds += 1

    # ------------------------------------------------------------------ the thread
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {self.path}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # mode=rw: a ledger file removed meanwhile is not created again, empty.
        try:
            db = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=rw", uri=True,
                                 isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the writer's own rewinds and truncations still bound the WAL
        try:
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA wal_autocheckpoint=0")
            last_log = 0
            while True:
                self._wake.wait()
                if self._stop:
                    return
                commits, self._commits = self._commits, 0
                self._wake.clear()
                try:
                    with self._running:
                        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue  # as a failed automatic checkpoint: the next one tries again
                self.checkpoints += 1
                log = int(row[1])
                if log >= self.rewind_frames:
                    self._rewind = True
                if log > 0 and commits > 0:
                    # Frames the commits since the last run added (the WAL may have been
                    # rewound in between: then all of it is new).
                    added = log - last_log if log >= last_log else log
                    self._per_commit = max(added / commits, 0.5)
                last_log = log
        finally:
            db.close()

    def close(self) -> None:
        """Stop the thread, waiting for the checkpoint it may be running."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
