"""The emulated API server's clock and its timestamp formats (RFC 3339, UTC, `Z`).

Wall time plus an offset that tests move forward (`advance`), so grace periods, minReadySeconds,
progress deadlines and Event expiry can be reached without sleeping. The offset is process-wide:
every emulated cluster in a process shares it, as pods on one real cluster share its nodes' clocks.
It never goes backwards.
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


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """Seconds precision, like `metadata.creationTimestamp`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(moment: datetime.datetime | None = None) -> str:
    """Microsecond precision, like `eventTime` and lease `renewTime`."""
    return (moment or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
