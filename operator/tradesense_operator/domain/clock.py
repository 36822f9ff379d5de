"""Time as an injected dependency, so schedules, deadlines and windows are testable without sleeping.

SystemClock is the only reader of the wall clock; nothing else here may read it or sleep on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


class Clock(Protocol):
    """Anything that tells the current time (always timezone-aware UTC)."""

    def now(self) -> datetime:
        """Current time, tz-aware UTC."""
        ...


@runtime_checkable
class ObservableClock(Protocol):
    """A clock that says when it moved, so a sleeper waiting for a due time on it wakes without polling."""

    def now(self) -> datetime:
        """Current time, tz-aware UTC."""
        ...

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (from any thread) after every move; returns the unsubscribe function."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Current time, tz-aware UTC."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; thread-safe because the operator runs in its own thread."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every advance/set (in the mover's thread); returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _moved(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def now(self) -> datetime:
        """Current (manual) time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by a timedelta or seconds; returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("time only moves forward")
        with self._lock:
            self._now += step
            moved_to = self._now
        self._moved()
        return moved_to

    def set(self, when: datetime) -> None:
        """Jump to an absolute time (not earlier than now)."""
        with self._lock:
            if when < self._now:
                raise ValueError("time only moves forward")
            self._now = when
        self._moved()
