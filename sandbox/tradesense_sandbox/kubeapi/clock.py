"""The emulated API server's clock and its timestamp formats (RFC 3339, UTC, `Z`).

Wall time plus an offset that tests move forward (`advance`), so grace periods, minReadySeconds,
progress deadlines and Event expiry can be reached without sleeping. The offset is process-wide:
every emulated cluster in a process shares it, as pods on one real cluster share its nodes' clocks.
It only moves forward while a test runs; `reset` (test teardown) returns it to wall time, because the
operator under test reads the wall clock and compares it with timestamps the emulator wrote.
"""

from __future__ import annotations

import datetime
import threading

_lock = threading.Lock()
_offset = [datetime.timedelta()]  # one cell, moved forward under the lock


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + _offset[0]


def advance(seconds: float) -> datetime.datetime:
    """Move the emulated clock forward; returns the new now."""
    if seconds < 0:
        raise ValueError("the emulated clock only moves forward")
    with _lock:
        _offset[0] += datetime.timedelta(seconds=seconds)
    return now()


def reset() -> None:
    """Back to wall time (between tests: objects a test stamped in the emulated future are its own)."""
    with _lock:
        _offset[0] = datetime.timedelta()


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """Seconds precision, like `metadata.creationTimestamp`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime.datetime | None = None) -> str:
    """Microsecond precision, like `eventTime` and lease `renewTime`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
