"""Per-source token buckets: a misbehaving sender cannot flood the API server with incidents.

Bookkeeping on an injectable monotonic clock; must not sleep: a request over the limit is refused with a
Retry-After, never delayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_SOURCES = 10_000  # bound memory: forget the least recently seen sources beyond this


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per key (the client address)."""

    def __init__(self, rate_per_second: float, burst: int, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._now = monotonic
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        """Take one token for key; False when the bucket is empty."""
        now = self._now()
        bucket = self._buckets.pop(key, None) or _Bucket(tokens=self._burst, updated=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets[key] = bucket  # re-insert: dict order = recency
        if len(self._buckets) > MAX_SOURCES:
            self._buckets.pop(next(iter(self._buckets)))
        return allowed

    def retry_after(self, key: str) -> float:
        """Seconds until key has a whole token again (0 when it has one): the honest Retry-After."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self._burst, bucket.tokens + (self._now() - bucket.updated) * self._rate)
        return max(0.0, (1.0 - tokens) / self._rate)
