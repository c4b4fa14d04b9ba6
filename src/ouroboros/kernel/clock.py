"""Time as an injectable dependency, so cool-downs and monitoring windows are testable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **kwargs: float) -> None:
        self._now += timedelta(**kwargs)


def iso(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (``isoformat`` is C code; ``strftime`` is slower)."""
    if t.tzinfo is not UTC:  # naive (local) or another zone: convert first
        t = t.astimezone(UTC)
    return t.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_when(text: str, now: datetime) -> datetime:
    """A moment given by a person: ``30d``, ``12h`` or ``45m`` from now, an ISO date
    (midnight UTC), or an ISO date and time (UTC unless it says otherwise)."""
    text = text.strip()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in units:
        try:
            return now + timedelta(**{units[text[-1]]: int(text[:-1])})
        except OverflowError:
            raise ValueError(f"{text!r} is past the calendar's end (year 9999)") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give 30d, 12h, 45m, 2027-01-31 or "
                         "2027-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:  # in UTC here, so an offset that leaves the calendar is this error, not later
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is past the calendar's ends (years 1 to 9999) in "
                         "UTC") from None
