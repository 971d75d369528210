"""Injectable time and identifiers, so deadlines, timers and tests agree on "now".

Everything in the platform asks ``clock.now()`` rather than ``datetime.now()``;
tests swap in a ``FrozenClock`` and move it forward.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

# China Standard Time: business dates (working days, application numbers) are local.
CST = timezone(timedelta(hours=8), "Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


_clock: Clock = SystemClock()


def now() -> datetime:
    """The current time, always timezone-aware UTC."""
    return _clock.now().astimezone(UTC)


def local_now() -> datetime:
    return _clock.now().astimezone(CST)


def use_clock(clock: Clock) -> Clock:
    """Install ``clock`` for the process; returns the previous one (tests restore it)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def new_id() -> str:
    """A random, sortable-enough unique id for events and deliveries (UUID4 hex)."""
    return uuid.uuid4().hex
