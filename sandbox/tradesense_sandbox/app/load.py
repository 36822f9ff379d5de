"""Bounded synthetic traffic against the stand-in app, so Prometheus sees a request rate, errors and latency.

Requests are scheduled on a fixed timetable (request i at start + i / rate) rather than back to back, so the
offered rate does not collapse when the app is slow; a cap on requests in flight keeps a stalled app from
piling up sockets, and the skipped ones are counted rather than hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiohttp

DEFAULT_PATHS = ("/api/v1/trades", "/api/v1/analytics/dashboard", "/api/v1/monitoring/health")
MAX_RATE = 2000.0
MAX_DURATION = 3600.0


@dataclass
class LoadReport:
    """What one load run did; latencies are client-side seconds of completed requests."""

    sent: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failed: int = 0
    """Connection refused, timeouts and other transport failures."""
    skipped: int = 0
    """Scheduled requests not sent because `max_in_flight` requests were still outstanding."""
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def _validate(rate: float, duration: float, paths: Sequence[str], max_in_flight: int) -> None:
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be in (0, {MAX_RATE:g}] requests/s, got {rate}")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION:g}] s, got {duration}")
    if not paths or not all(p.startswith("/") for p in paths):
        raise ValueError("paths must be a non-empty list of absolute paths")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")


class _Sender:
    """Fires requests as tasks, capped at `max_in_flight`, and tallies their outcomes into a report."""

    def __init__(self, session: aiohttp.ClientSession, report: LoadReport, max_in_flight: int) -> None:
        self._session = session
        self._report = report
        self._max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task[None]] = set()

    def fire(self, url: str) -> None:
        if len(self._in_flight) >= self._max_in_flight:
            self._report.skipped += 1
            return
        self._report.sent += 1
        task = asyncio.create_task(self._one(url))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _one(self, url: str) -> None:
        report = self._report
        started = time.perf_counter()
        try:
            async with self._session.get(url) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            report.failed += 1
            return
        report.latencies.append(time.perf_counter() - started)
        report.statuses[status] = report.statuses.get(status, 0) + 1
        if status >= 500:
            report.server_errors += 1
        elif status >= 400:
            report.client_errors += 1
        else:
            report.ok += 1

    async def drain(self, timeout: float) -> None:
        """Wait for outstanding requests up to `timeout`, then cancel the rest."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


async def generate_load(
    base_url: str,
    *,
    rate: float,
    duration: float,
    paths: Sequence[str] = DEFAULT_PATHS,
    max_in_flight: int = 64,
    timeout: float = 5.0,
) -> LoadReport:
    """Send `rate` GET requests per second for `duration` seconds, cycling through `paths`.

    Returns after the last scheduled request has completed or timed out, i.e. within duration + timeout.
    """
    _validate(rate, duration, paths, max_in_flight)
    report = LoadReport()
    total = max(1, round(rate * duration))
    root = base_url.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        sender = _Sender(session, report, max_in_flight)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for i in range(total):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sender.fire(root + paths[i % len(paths)])
        finally:
            await sender.drain(timeout + 1.0)
    return report


class BackgroundLoad:
    """Steady load in a background task until stopped; the rate can change while it runs.

    `async with BackgroundLoad(app.base_url, rate=20) as load: ... load.set_rate(50) ...`; it stops by itself
    after `max_duration` seconds so a forgotten load cannot run for ever.
    """

    def __init__(
        self,
        base_url: str,
        *,
        rate: float,
        paths: Sequence[str] = DEFAULT_PATHS,
        max_duration: float = 300.0,
        max_in_flight: int = 64,
        timeout: float = 5.0,
    ) -> None:
        _validate(rate, max_duration, paths, max_in_flight)
        self.base_url = base_url
        self.rate = rate
        self.paths = tuple(paths)
        self.max_duration = max_duration
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.report = LoadReport()
        self._task: asyncio.Task[None] | None = None

    def set_rate(self, rate: float) -> None:
        """New offered rate, effective from the next request."""
        _validate(rate, self.max_duration, self.paths, self.max_in_flight)
        self.rate = rate

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_duration
        root = self.base_url.rstrip("/")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            sender = _Sender(session, self.report, self.max_in_flight)
            next_at = loop.time()
            i = 0
            try:
                while next_at < deadline:
                    delay = next_at - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sender.fire(root + self.paths[i % len(self.paths)])
                    i += 1
                    next_at += 1.0 / self.rate  # read each time, so set_rate() applies at once
            finally:
                await sender.drain(0.5)

    def start(self) -> None:
        """Begin sending in the running loop."""
        if self._task is not None:
            raise RuntimeError("background load already started")
        self._task = asyncio.create_task(self._run(), name="standin-background-load")

    async def stop(self) -> LoadReport:
        """Stop sending and return the totals."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        return self.report

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
