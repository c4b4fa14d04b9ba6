"""Per-token rate limits: a token bucket for each token, checked after the token is.

A token may make ``burst`` requests at once and ``rate`` a second after that; the request
over it is answered 429 with ``Retry-After`` (whole seconds until a request would pass)
and does nothing. Buckets are keyed by the token's id only once the token verified, so
neither a flood of made-up tokens nor a wrong secret presented with a real id touches a
real token's bucket, and the buckets held are at most the tokens issued. The check is a
few float operations under a lock, on the event loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ouroboros.kernel.errors import UsageError

MAX_RATE = 1e6  # requests a second: far past what one server answers


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests a second per token after a ``burst``; ``rate`` 0 turns it off."""

    rate: float = 100.0
    burst: int = 200

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and 0 <= self.rate <= MAX_RATE):
            raise UsageError(f"a rate limit must be a number of requests a second >= 0, "
                             f"not {self.rate!r}")
        if self.burst < 1:
            raise UsageError(f"a burst must be at least 1 request, not {self.burst!r}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @classmethod
    def parse(cls, rate: str, burst: int | None = None) -> RateLimit:
        """``--rate-limit`` text: ``50`` (a second), ``off`` or ``0``; burst defaults to
        twice the rate (at least 1)."""
        text = rate.strip().lower().removesuffix("/s")
        if text in ("off", "0", "none"):
            return cls(rate=0.0, burst=burst or 1)
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--rate-limit {rate!r} is not a number of requests a second",
                             "e.g. --rate-limit 50, or off") from None
        if not (math.isfinite(value) and 0 <= value <= MAX_RATE):  # before the burst
            raise UsageError(f"--rate-limit {rate!r} must be a number from 0 to {MAX_RATE:g}")
        return cls(rate=value, burst=burst if burst is not None else max(1, math.ceil(2 * value)))


class RateLimiter:
    """Token buckets by key (a token's id); `take` says whether a request may pass."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (level, when)

    def take(self, key: str) -> float:
        """0.0 if a request of ``key`` may pass now (and count it), else the seconds until
        one would."""
        limit = self.limit
        if not limit.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            level, then = self._buckets.get(key, (float(limit.burst), now))
            level = min(float(limit.burst), level + max(0.0, now - then) * limit.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / limit.rate


def retry_after(wait: float) -> str:
    """``Retry-After`` in whole seconds (RFC 9110), rounded up, at least 1."""
    return str(max(1, math.ceil(wait)))
