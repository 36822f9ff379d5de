"""Identical reads asked at about the same time share one request.

Why: a thousand ScalingPolicies evaluated in the same round ask Prometheus the same PromQL (the Kubernetes
objects they read come from watch caches instead: clients.watch_cache). A read already in flight is
awaited instead of repeated, and a good answer is reused for `share_seconds` after it arrived (e.g. half the shortest polling
interval, so no evaluation acts on an answer older than that). Failures are shared only with callers
already waiting, never kept: the next caller asks again.

Owns the sharing only; must not interpret answers. One instance per event loop (asyncio tasks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_REMEMBERED = 256  # answers older than the window are dropped once this many are kept


class SharedReads(Generic[T]):
    """Single-flight + short-lived reuse of reads by key."""

    def __init__(self, share_seconds: float) -> None:
        self.share_seconds = share_seconds
        self._in_flight: dict[Hashable, asyncio.Future[T]] = {}
        self._recent: dict[Hashable, tuple[float, T]] = {}

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """The answer for `key`: a fresh shared one, the one in flight, or a new `fetch()`."""
        if self.share_seconds <= 0:
            return await fetch()
        recent = self._recent.get(key)
        if recent is not None and time.monotonic() - recent[0] <= self.share_seconds:
            return recent[1]
        task = self._in_flight.get(key)
        if task is None:
            # A task of its own, so a cancelled caller does not cancel the read the others wait for.
            task = self._in_flight[key] = asyncio.ensure_future(fetch())
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    def _settle(self, key: Hashable, done: asyncio.Future[T]) -> None:
        self._in_flight.pop(key, None)
        if done.cancelled() or done.exception() is not None:
            return
        now = time.monotonic()
        if len(self._recent) >= MAX_REMEMBERED:
            self._recent = {k: kept for k, kept in self._recent.items() if now - kept[0] <= self.share_seconds}
        self._recent[key] = (now, done.result())
