"""An in-memory ring of the app's access and auth log lines, which tests and the emulator turn into pod logs.

Lines look like a real backend's: `2026-01-05T14:30:00.123Z ERROR access method=GET path=/api/v1/trades
status=500 ...`, so the runbook's `grep ERROR` and `grep -E "(auth|login|token)" | grep -v 200` work on them.
Every entry carries a sequence number, so a reader can follow the ring incrementally (like `kubectl logs -f`).

In memory only; must not write files or the process's stdout.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line with its position in the ring."""

    seq: int
    at: datetime
    level: str
    logger: str
    message: str

    def render(self) -> str:
        """The text line as a container would print it."""
        stamp = self.at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.at.microsecond // 1000:03d}Z"
        return f"{stamp} {self.level} {self.logger} {self.message}"


class LogRing:
    """Bounded and thread-safe: the app writes from its loop thread while tests read from theirs."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"log ring capacity must be at least 1, got {capacity}")
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._next_seq = 1

    def write(self, level: str, logger: str, message: str) -> LogEntry:
        """Append a line; the oldest line falls out when the ring is full."""
        with self._lock:
            entry = LogEntry(self._next_seq, datetime.now(UTC), level, logger, message)
            self._next_seq += 1
            self._entries.append(entry)
            return entry

    def entries(self, *, since_seq: int = 0) -> list[LogEntry]:
        """Entries with a sequence number greater than `since_seq`, oldest first."""
        with self._lock:
            return [e for e in self._entries if e.seq > since_seq]

    def lines(self, *, since_seq: int = 0, tail: int | None = None) -> list[str]:
        """Rendered lines, optionally only the last `tail` of them (like `kubectl logs --tail`)."""
        selected = self.entries(since_seq=since_seq)
        if tail is not None:
            selected = selected[-tail:] if tail > 0 else []
        return [e.render() for e in selected]

    def text(self, *, since_seq: int = 0, tail: int | None = None) -> str:
        """The log as one string with a trailing newline per line, the shape of a pod log."""
        return "".join(line + "\n" for line in self.lines(since_seq=since_seq, tail=tail))

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest line (0 when empty), for incremental reads."""
        with self._lock:
            return self._next_seq - 1

    def clear(self) -> None:
        """Drop all lines (sequence numbers keep increasing)."""
        with self._lock:
            self._entries.clear()


def mask_email(email: str) -> str:
    """Keep the domain and first letter only: enough to spot a targeted account, not a copy of user data."""
    local, sep, domain = email.partition("@")
    if not sep:
        return (email[:1] + "***") if email else "<empty>"
    return f"{local[:1]}***@{domain}"
