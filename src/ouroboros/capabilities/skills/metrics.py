"""Usage metrics of a version: uses, failures, latency p50/p95, last use.

A call appends one line to the version's ``calls.log`` (O_APPEND, a shared lock, the
files kept open between calls): cheap enough for a sub-millisecond call. Reading a version folds the log into meta.json's
``metrics`` under an exclusive lock, so two processes never lose a count.

A store passes its ``metrics.key`` (32 random bytes, not the signing key): then every line
carries a nonce, the time it was written under the lock, and an HMAC binding it to the
version, and ``metrics`` its own HMAC with the time of the newest line counted. A fold counts
only lines with a valid HMAC, an unseen nonce and a later time (a plain append, a replayed
or another version's line never counts) and reports the others in ``rejected``; metrics
without a valid HMAC start over from nothing, so an edited count promotes nothing
(``promote_after_uses``).
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import hmac
import itertools
import json
import math
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ouroboros.storage.files import (
    LockTimeout,
    UnsafeFile,
    flocked,
    link_new,
    lock_bounded,
    open_regular,
    read_small,
    sweep_unlocked,
)

from .errors import ToolCorrupt
from .stored import read_meta

WINDOW = 200
#: The longest ``calls.log`` line a fold reads: the runtime writes a couple of hundred bytes
#: a line, so a longer one is junk, skipped to its newline (never held whole) and rejected.
MAX_CALL_LINE = 64 << 10
#: The most nonces one fold remembers against replays (about 13 MiB); past that the oldest are
#: forgotten and every line no newer than them is refused (see `_fold_signed`).
MAX_SEEN = 1 << 16


def empty() -> dict[str, Any]:
    return {"uses": 0, "failures": 0, "p50_ms": None, "p95_ms": None, "last_used": None,
            "recent_ms": []}


def clean(metrics: Any) -> dict[str, Any]:
    """Metrics as read from meta.json, every field of its type: meta.json's one field that
    changes with use is not in the fingerprint nor the ledger, so a scribbled field starts
    over rather than breaking every listing and call of the version."""
    out = empty()
    if not isinstance(metrics, dict):
        return out
    for key in ("uses", "failures"):
        value = metrics.get(key)
        if type(value) is int and value >= 0:
            out[key] = value
    recent = metrics.get("recent_ms")
    if isinstance(recent, list):
        out["recent_ms"] = [float(x) for x in recent if type(x) in (int, float)
                            and math.isfinite(x) and x >= 0][-WINDOW:]
    for key in ("p50_ms", "p95_ms"):
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            out[key] = float(value)
    if isinstance(metrics.get("last_used"), str):
        out["last_used"] = metrics["last_used"]
    for key in ("rejected", "after"):  # the signed fields (see `trusted`)
        value = metrics.get(key)
        if type(value) is int and value >= 0:
            out[key] = value
    return out


# -- the runtime's own records: a MAC a plain append cannot forge ---------------------------

KEY = "metrics.key"
_KEYS: dict[Path, bytes] = {}
_KEY_TEMP = re.compile(r"\.metrics\.key\.[0-9a-f]{16}")


def key_of(root: Path) -> bytes:
    """The store's metrics key, ``<root>/metrics.key`` (mode 0600), made on first use; a
    damaged one is replaced (every count then starts over, none is forged)."""
    root = Path(root)
    key = _KEYS.get(root)
    if key is None:
        key = _KEYS[root] = _load_key(root / KEY)
    return key


def _load_key(path: Path) -> bytes:
    # A temporary a killed maker left (only where the system lacks O_TMPFILE) would be a
    # second copy of the key: removed before the key is used.
    sweep_unlocked(path.parent, lambda name: _KEY_TEMP.fullmatch(name) is not None)
    for _ in range(5):
        try:
            data = read_small(path, 64)
        except UnsafeFile:  # a planted link or FIFO: replaced (the name, never its target)
            data = b""
        if data is not None and len(data) == 32:
            return data
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if data is not None:  # damaged: the name goes, then a new key takes it
                path.unlink(missing_ok=True)
            # Linked in whole (`files.link_new`): two first users agree on one key, and a
            # kill leaves no key or the whole key, never a torn one or a hidden copy.
            link_new(path, secrets.token_bytes(32), lambda: f".{KEY}.{secrets.token_hex(8)}")
        except FileExistsError:
            continue
        except IsADirectoryError:
            break
    raise ToolCorrupt(f"{path} is not the store's metrics key (a directory, or it keeps "
                      "changing); remove it: a new key is made and every use count restarts")


@functools.lru_cache(maxsize=1024)
def who(version_dir: Path) -> str:
    """What a version's records are bound to: ``tool@fingerprint`` from its folder."""
    return f"{version_dir.parent.parent.name}@{version_dir.name}"


#: HMAC states with the key already absorbed, one per key: a call copies one (the key's
#: padding and OpenSSL's digest lookup cost more than the line itself, right after a run)
_MACS: dict[bytes, Any] = {}


def _mac(key: bytes, bound: str, body: bytes) -> str:
    base = _MACS.get(key)
    if base is None:
        base = _MACS[key] = hmac.new(key, digestmod="sha256")
    h = base.copy()
    h.update(bound.encode() + b"\n" + body)
    return str(h.hexdigest())


class _Nonces:
    """Unique call ids without a random draw per call: a random prefix per process (new
    in a forked child) and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):08x}"


_NONCES = _Nonces()


def _body(metrics: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in metrics.items() if k != "mac"}, sort_keys=True,
                      separators=(",", ":")).encode()


def sign(key: bytes, bound: str, metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k != "mac"}
    out.setdefault("rejected", 0)
    out.setdefault("after", 0)
    out["mac"] = _mac(key, bound, _body(out))
    return out


def signed_empty(key: bytes, bound: str) -> dict[str, Any]:
    """A new version's metrics, signed, so its first genuine calls count."""
    return sign(key, bound, empty())


def trusted(key: bytes, bound: str, metrics: Any) -> dict[str, Any] | None:
    """The metrics, cleaned, if their MAC is the runtime's for this version; else None."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("mac"), str):
        return None
    try:
        genuine = hmac.compare_digest(metrics["mac"], _mac(key, bound, _body(metrics)))
    except (TypeError, ValueError):  # unserialisable values, non-ASCII MAC
        return None
    return {**clean(metrics), "mac": metrics["mac"]} if genuine else None


def untrusted() -> dict[str, Any]:
    """What a reader shows for metrics without a valid MAC: nothing counted, one rejected."""
    return {**empty(), "rejected": 1, "after": 0}


def _call(key: bytes, bound: str, raw: bytes) -> dict[str, Any] | None:
    body, tab, mac = raw.partition(b"\t")
    if not tab:
        return None
    try:
        if not hmac.compare_digest(mac.strip(), _mac(key, bound, body).encode()):
            return None
        call = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(call, dict) or type(call.get("ok")) is not bool \
            or type(call.get("ms")) not in (int, float) or type(call.get("t")) is not int \
            or not isinstance(call.get("id"), str) or not isinstance(call.get("at"), str):
        return None
    return call


def record(
    metrics: dict[str, Any], ok: bool, elapsed_ms: float, when: str | None = None
) -> dict[str, Any]:
    """Pure: the metrics after one more call."""
    out = {**empty(), **metrics}
    out["uses"] += 1
    if not ok:
        out["failures"] += 1
    recent = [*out["recent_ms"], round(elapsed_ms, 3)][-WINDOW:]
    out["recent_ms"] = recent
    out["p50_ms"] = percentile(recent, 50)
    out["p95_ms"] = percentile(recent, 95)
    out["last_used"] = when or datetime.now(UTC).isoformat(timespec="seconds")
    return out


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every figure was really observed)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return float(ordered[int(rank) - 1])


LOG = "calls.log"


def append(version_dir: Path, ok: bool, elapsed_ms: float, key: bytes | None = None) -> None:
    """One call line, appended with one ``write`` under the shared lock (with a key: a
    nonce, the time under the lock and the MAC, see the module's docstring).

    The lock and log files stay open between calls (``_Appender``): a warm call costs
    flock, fstat, write, flock, with no path lookups and no opens."""
    now = datetime.now(UTC)
    if key is None:
        line = (f'{{"ok": {"true" if ok else "false"}, "ms": {round(elapsed_ms, 3)!r}, '
                f'"at": "{now.isoformat(timespec="seconds")}"}}\n').encode()
        _APPENDER.write(version_dir, line)
        return
    bound, nonce = who(version_dir), _NONCES.next()

    def signed() -> bytes:  # under the lock: later than every line a fold has counted
        # the JSON by hand (every field is a literal, a hex nonce or a number): json.dumps
        # was a third of a warm call's metrics cost; the fold MACs the bytes as written
        body = (f'{{"at":"{now.isoformat(timespec="seconds")}","id":"{nonce}",'
                f'"ms":{round(elapsed_ms, 3)!r},"ok":{"true" if ok else "false"},'
                f'"t":{time.time_ns()}}}').encode()
        return body + b"\t" + _mac(key, bound, body).encode() + b"\n"

    _APPENDER.write(version_dir, signed)


class _Appender:
    """Open (lock, log) descriptors per version folder, a bounded number of them.

    ``fold`` unlinks the log under the exclusive lock; an appender holding the shared lock
    sees that as a link count of 0 and reopens by name, so a line never lands in a log
    already folded. One process-wide mutex covers flock..write..unlock, because a flock
    belongs to the open file, which the threads of this process share."""

    LIMIT = 64

    def __init__(self) -> None:
        self._fds: dict[Path, tuple[int, int]] = {}
        self._mutex = threading.Lock()

    def write(self, version_dir: Path, line: bytes | Callable[[], bytes]) -> None:
        with self._mutex:
            lock_fd, log_fd = self._open(version_dir)
            try:
                lock_bounded(lock_fd, fcntl.LOCK_SH, _lock_name(version_dir))
            except LockTimeout:  # drop this open file: the given-up wait may still unlock it
                del self._fds[version_dir]
                os.close(lock_fd)
                os.close(log_fd)
                raise
            try:
                if os.fstat(log_fd).st_nlink == 0:  # folded since it was opened
                    os.close(log_fd)
                    try:
                        log_fd = _open_log(version_dir)
                    except OSError:  # the version folder itself is gone
                        del self._fds[version_dir]
                        raise
                    self._fds[version_dir] = (lock_fd, log_fd)
                os.write(log_fd, line if isinstance(line, bytes) else line())
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
                if version_dir not in self._fds:
                    os.close(lock_fd)

    def _open(self, version_dir: Path) -> tuple[int, int]:
        fds = self._fds.get(version_dir)
        if fds is not None:
            return fds
        if len(self._fds) >= self.LIMIT:
            self.close()
        lock_fd = open_regular(version_dir / ".lock", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                               0o644)
        try:
            log_fd = _open_log(version_dir)
        except BaseException:
            os.close(lock_fd)
            raise
        self._fds[version_dir] = (lock_fd, log_fd)
        return lock_fd, log_fd

    def close(self) -> None:
        for lock_fd, log_fd in self._fds.values():
            os.close(lock_fd)
            os.close(log_fd)
        self._fds.clear()

    def _after_fork(self) -> None:
        self._mutex = threading.Lock()
        self.close()


@functools.lru_cache(maxsize=1024)
def _lock_name(version_dir: Path) -> str:
    return os.path.join(version_dir, ".lock")  # built once, not on every call


def _open_log(version_dir: Path) -> int:
    return open_regular(version_dir / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


_APPENDER = _Appender()
os.register_at_fork(after_in_child=_APPENDER._after_fork)
os.register_at_fork(after_in_child=_NONCES.reset)
atexit.register(_APPENDER.close)


def fold(version_dir: Path, write_meta: Any, key: bytes | None = None) -> dict[str, Any]:
    """Fold pending call lines into meta.json; return the up-to-date meta. With a key,
    metrics without a valid MAC are also started over (signed) when there is no log."""
    log = version_dir / LOG
    with locked(version_dir):
        meta = read_meta(version_dir / "meta.json")
        if key is not None:
            bound, has_log = who(version_dir), log.is_file()
            if not has_log and trusted(key, bound, meta.get("metrics")) is not None:
                return meta
            meta["metrics"] = _fold_signed(key, bound, meta.get("metrics"),
                                           log if has_log else None)
            write_meta(version_dir / "meta.json", meta)
            if has_log:
                log.unlink()
            return meta
        if not log.is_file():
            return meta
        metrics = clean(meta.get("metrics"))
        for raw in _lines(log):
            if raw is None:
                continue  # overlong: not a line the runtime wrote
            try:
                call = json.loads(raw)
                metrics = record(metrics, bool(call["ok"]), float(call["ms"]), call["at"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a crashed writer: skip it
        meta["metrics"] = metrics
        write_meta(version_dir / "meta.json", meta)
        log.unlink()
        return meta


def _lines(log: Path) -> Iterator[bytes | None]:
    """The log's lines one at a time (the last one even without its newline), each at
    most `MAX_CALL_LINE` long; None for a longer one, read past in bounded chunks, so a
    log of gigabytes (or one line of them) never sits in memory."""
    with open(log, "rb") as f:
        while line := f.readline(MAX_CALL_LINE + 1):
            if len(line) <= MAX_CALL_LINE or line.endswith(b"\n"):
                yield line.rstrip(b"\r\n")
                continue
            while line and not line.endswith(b"\n"):  # the rest of the overlong line
                line = f.readline(MAX_CALL_LINE)
            yield None


def _fold_signed(key: bytes, bound: str, stored: Any, log: Path | None) -> dict[str, Any]:
    metrics = trusted(key, bound, stored)
    if metrics is None:  # edited, copied or from before keys: start over, trusting only
        # lines written from now on (any already in the log could be replays)
        metrics = {**empty(), "rejected": 1, "after": time.time_ns()}
    after = newest = int(metrics.get("after") or 0)
    # the nonces counted, oldest first; once MAX_SEEN are held the oldest is forgotten and
    # `after` rises to its time, so its replay (no newer) is refused all the same
    rejected, seen, order = 0, set(), deque[tuple[int, str]]()
    for raw in _lines(log) if log is not None else ():
        call = None if raw is None else _call(key, bound, raw)
        if call is None or call["t"] <= after or call["id"] in seen:
            rejected += 1  # forged, torn, overlong, replayed or another version's
            continue
        seen.add(call["id"])
        order.append((call["t"], call["id"]))
        if len(order) > MAX_SEEN:
            t, nonce = order.popleft()
            seen.discard(nonce)
            after = max(after, t)
        newest = max(newest, call["t"])
        metrics = record(metrics, call["ok"], float(call["ms"]), call["at"])
    metrics["after"] = newest
    metrics["rejected"] = int(metrics.get("rejected") or 0) + rejected
    return sign(key, bound, metrics)


@contextmanager
def locked(version_dir: Path, shared: bool = False) -> Iterator[None]:
    with flocked(version_dir / ".lock", shared=shared, mode=0o644):
        yield
