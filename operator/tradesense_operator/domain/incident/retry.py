"""Retry policy of a failed step attempt: exponential backoff, persisted as an absolute time.

The next attempt's time is stored in status (not slept on in memory), so a restarted operator keeps
the same schedule instead of retrying at once or forgetting that it was backing off.
"""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_BACKOFF_CAP_SECONDS = 300.0


def backoff_delay(failures: int, *, base: float, cap: float = DEFAULT_BACKOFF_CAP_SECONDS) -> float:
    """Seconds to wait after the n-th failed attempt: base, 2·base, 4·base, … never more than cap."""
    if failures < 1:
        raise ValueError("failures counts failed attempts and starts at 1")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    # 2**failures overflows float for absurd values; the exponent never needs to exceed what reaches cap.
    exponent = min(failures - 1, 62)
    return float(min(cap, base * (2**exponent)))


def next_attempt_at(
    *, attempts: int, retries: int, now: datetime, base: float, cap: float = DEFAULT_BACKOFF_CAP_SECONDS
) -> datetime | None:
    """When to start the next attempt after `attempts` failed ones, or None when the retries are used up.

    A step runs at most `retries + 1` attempts.
    """
    if attempts > retries:
        return None
    return now + timedelta(seconds=backoff_delay(attempts, base=base, cap=cap))
