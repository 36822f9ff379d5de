"""The stand-in app's database access: a bounded connection pool and the few queries its routes run.

The pool is the point: the runbook's "Database Connection Pool Exhausted" alert watches
`tradesense_db_connections_active`, and a simulated leak (mode `db_leak`) holds slots until routes that
need the database answer 503. Without a DSN the same pool accounting applies and the queries answer from
deterministic synthetic data, so the app is useful in tests that have no PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import psycopg

from tradesense_sandbox.app.metrics import AppMetrics
from tradesense_sandbox.app.mode import ModeSwitch

_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY", "QQQ", "JPM")


class PoolExhausted(Exception):
    """No pool slot became free within the acquire timeout."""


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or failed the query (message holds no connection string)."""


class Database:
    """Pool accounting plus the app's queries; real PostgreSQL when a DSN is configured."""

    def __init__(
        self, *, dsn: str | None, pool_size: int, acquire_timeout: float, mode: ModeSwitch, metrics: AppMetrics | None = None
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"db pool_size must be at least 1, got {pool_size}")
        self.dsn = dsn
        self.pool_size = pool_size
        self.acquire_timeout = acquire_timeout
        self._mode = mode
        self._metrics = metrics
        self._lock = threading.Lock()
        self._in_use = 0
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    def attach_metrics(self, metrics: AppMetrics) -> None:
        """Late binding: the metrics' gauge reads `active()`, so the two are built in that order."""
        self._metrics = metrics
        metrics.db_pool_size.set(self.pool_size)

    def active(self) -> int:
        """Slots in use right now, leaked ones included (capped at the pool size, as a real pool would be)."""
        with self._lock:
            return min(self.pool_size, self._in_use + self._mode.current.db_leak)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any] | None]:
        """A pool slot (and a connection when PostgreSQL is configured), or `PoolExhausted` after the timeout."""
        deadline = time.monotonic() + self.acquire_timeout
        while True:
            with self._lock:
                if self._in_use + self._mode.current.db_leak < self.pool_size:
                    self._in_use += 1
                    break
            if time.monotonic() >= deadline:
                raise PoolExhausted(
                    f"no database connection free within {self.acquire_timeout:g}s (pool size {self.pool_size})"
                )
            await asyncio.sleep(0.01)
        conn: psycopg.AsyncConnection[Any] | None = None
        healthy = True
        try:
            if self.dsn is not None:
                conn = self._idle.pop() if self._idle else await self._connect()
            yield conn
        except psycopg.Error as exc:
            healthy = False
            raise DatabaseUnavailable(f"database query failed: {type(exc).__name__}") from exc
        finally:
            if conn is not None:
                if healthy and not conn.closed:
                    self._idle.append(conn)
                else:
                    await conn.close()
            with self._lock:
                self._in_use -= 1

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        assert self.dsn is not None
        try:
            return await asyncio.wait_for(psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=2), 3.0)
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {type(exc).__name__}") from exc

    async def _fetch(self, name: str, sql: LiteralString, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """Run one query under the pool and the query-duration histogram; None means "no database configured"."""
        delay = self._mode.current.db_latency_ms / 1000.0
        started = time.perf_counter()
        try:
            async with self.connection() as conn:
                if conn is None:
                    if delay:
                        await asyncio.sleep(delay)
                    return None
                async with conn.cursor() as cur:
                    if delay:
                        # A real slow statement, so pg_stat_statements shows it to the slow-queries runbook.
                        await cur.execute("SELECT pg_sleep(%s)", (delay,))
                    await cur.execute(sql, params)
                    return await cur.fetchall()
        finally:
            if self._metrics is not None:
                self._metrics.db_query_duration.labels(query=name).observe(time.perf_counter() - started)

    async def user_password_hash(self, email: str) -> tuple[int, str] | None:
        """(user id, stored hash) for a login, None for an unknown email; without a database: no users."""
        rows = await self._fetch("user_by_email", "SELECT id, password_hash FROM users WHERE email = %s", (email,))
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1])

    async def recent_trades(self, user_id: int, limit: int) -> list[dict[str, Any]]:
        """The user's latest open trades: the query the runbook's idx_trades_user_date index is for."""
        rows = await self._fetch(
            "recent_trades",
            "SELECT id, symbol, side, quantity, price, entry_date FROM trades"
            " WHERE user_id = %s AND deleted_at IS NULL ORDER BY entry_date DESC LIMIT %s",
            (user_id, limit),
        )
        if rows is None:
            return synthetic_trades(user_id, limit)
        return [
            {
                "id": r[0],
                "symbol": r[1],
                "side": r[2],
                "quantity": float(r[3]),
                "price": float(r[4]),
                "entry_date": r[5].isoformat(),
            }
            for r in rows
        ]

    async def dashboard(self, user_id: int) -> dict[str, Any]:
        """Per-symbol aggregates: the expensive analytics query the cache exists for."""
        rows = await self._fetch(
            "analytics_dashboard",
            "SELECT symbol, count(*), sum(quantity * price) FROM trades"
            " WHERE user_id = %s AND deleted_at IS NULL GROUP BY symbol ORDER BY symbol",
            (user_id,),
        )
        if rows is None:
            trades = synthetic_trades(user_id, 50)
            by_symbol: dict[str, list[float]] = {}
            for t in trades:
                agg = by_symbol.setdefault(t["symbol"], [0, 0.0])
                agg[0] += 1
                agg[1] += t["quantity"] * t["price"]
            rows = [(s, int(a[0]), a[1]) for s, a in sorted(by_symbol.items())]
        symbols = [{"symbol": r[0], "trades": int(r[1]), "notional": round(float(r[2] or 0), 2)} for r in rows]
        return {"user_id": user_id, "symbols": symbols, "total_trades": sum(s["trades"] for s in symbols)}

    async def ping(self) -> float:
        """Round-trip time of `SELECT 1` on a fresh connection (bypasses the pool: exhaustion is not an outage)."""
        if self.dsn is None:
            raise DatabaseUnavailable("no database configured")
        started = time.perf_counter()
        conn = await self._connect()
        try:
            await conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"database ping failed: {type(exc).__name__}") from exc
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def close(self) -> None:
        """Close idle connections (checked-out ones close when their request ends)."""
        while self._idle:
            await self._idle.pop().close()


def synthetic_trades(user_id: int, limit: int) -> list[dict[str, Any]]:
    """Deterministic fake trades for a user, used when no database is configured."""
    base = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    trades = []
    for i in range(limit):
        n = user_id * 7919 + i * 104729
        trades.append(
            {
                "id": user_id * 1000 + i,
                "symbol": _SYMBOLS[n % len(_SYMBOLS)],
                "side": "buy" if n % 2 == 0 else "sell",
                "quantity": float(1 + n % 100),
                "price": round(50 + (n % 45000) / 100, 2),
                "entry_date": (base - timedelta(hours=i)).isoformat(),
            }
        )
    return trades
