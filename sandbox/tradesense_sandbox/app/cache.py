"""The analytics cache and the login sessions, in Redis when configured and in process memory otherwise.

Keys follow the runbook (`cache:analytics:*`, `session:<user>`) behind an optional prefix, so the runbook's
FLUSHALL / pattern-delete remediations have the effect they have in production: the hit rate drops and
users are logged out. Tests on the shared Redis pass a unique prefix and a test db index.

Must not touch keys outside its prefix: tests share one Redis.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradesense_sandbox.app.metrics import AppMetrics
from tradesense_sandbox.app.mode import ModeSwitch


class KeyValue:
    """Minimal get/set/exists/ping over Redis or an in-memory dict with expiry; errors surface as RedisError."""

    def __init__(self, redis_url: str | None, prefix: str = "") -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._client: aioredis.Redis | None = (
            aioredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0) if redis_url else None
        )
        self._memory: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    @property
    def uses_redis(self) -> bool:
        """Whether a Redis server backs the store."""
        return self._client is not None

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        if self._client is not None:
            raw = await self._client.get(self.prefix + key)
            return raw.decode() if isinstance(raw, bytes) else raw
        with self._lock:
            item = self._memory.get(key)
            if item is None or item[0] <= time.monotonic():
                self._memory.pop(key, None)
                return None
            return item[1]

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        """Store with an expiry."""
        if self._client is not None:
            await self._client.set(self.prefix + key, value, ex=ttl_seconds)
            return
        with self._lock:
            self._memory[key] = (time.monotonic() + ttl_seconds, value)

    async def delete(self, key: str) -> None:
        """Remove a key (no error when absent)."""
        if self._client is not None:
            await self._client.delete(self.prefix + key)
            return
        with self._lock:
            self._memory.pop(key, None)

    def flush_memory(self) -> None:
        """Drop the in-memory store (the in-process equivalent of FLUSHALL)."""
        with self._lock:
            self._memory.clear()

    async def ping(self) -> float:
        """Round-trip time of PING; raises RedisError when unreachable or not configured."""
        if self._client is None:
            raise RedisError("no redis configured")
        started = time.perf_counter()
        await self._client.ping()
        return time.perf_counter() - started

    async def close(self) -> None:
        """Release the Redis connection pool."""
        if self._client is not None:
            await self._client.aclose()


class AnalyticsCache:
    """Read-through cache with hit/request counters; a Redis failure is a miss, never an error to the user."""

    def __init__(self, store: KeyValue, *, ttl_seconds: int, mode: ModeSwitch, metrics: AppMetrics) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._mode = mode
        self._metrics = metrics

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """(value, hit) for `cache:<key>`."""
        self._metrics.cache_requests.inc()
        full_key = f"cache:{key}"
        forced_miss = self._mode.next_lookup_misses()
        cached: str | None = None
        if not forced_miss:
            try:
                cached = await self._store.get(full_key)
            except RedisError:
                cached = None
        if cached is not None:
            self._metrics.cache_hits.inc()
            return json.loads(cached), True
        value = await compute()
        # Serving uncached when Redis fails is the degraded behaviour the cache-hit-rate alert is meant to catch.
        with contextlib.suppress(RedisError):
            await self._store.set(full_key, json.dumps(value), self._ttl)
        return value, False


class SessionStore:
    """`session:<user id>` holds the id of the user's current token; deleting it logs the user out."""

    def __init__(self, store: KeyValue, *, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds

    async def open(self, user_id: int, token_id: str) -> None:
        """Record a login."""
        await self._store.set(f"session:{user_id}", token_id, self._ttl)

    async def is_open(self, user_id: int, token_id: str) -> bool:
        """Whether the token is still the user's live session."""
        return await self._store.get(f"session:{user_id}") == token_id
