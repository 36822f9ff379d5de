"""The runbook's database schema and a deterministic data generator for it.

Tests load small data sets; bench/backup.py loads a few hundred MB. Rows stream to PostgreSQL through
COPY in chunks, so memory stays flat whatever the size, and the same seed always yields the same rows
(backup/restore tests compare `fingerprint()`s before and after).

Test, demo and benchmark data: the operator must never import it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from tradesense_sandbox.app.auth import hash_password

TABLES = ("users", "trades", "sessions")
TEST_USER_EMAIL = "test@example.com"
TEST_USER_PASSWORD = "test"  # noqa: S105 - the runbook's public smoke-test login, not a secret
GENERATED_USER_PASSWORD = "password"  # noqa: S105 - every generated user's test password
# The runbook's "Create index" remedy for slow trade queries; the schema leaves it out on purpose.
RUNBOOK_INDEX_SQL = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_trades_user_date ON trades (user_id, entry_date) WHERE deleted_at IS NULL"
)
BASE_TIME = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
"""Generated trades fall in the year before this instant (fixed, so data does not depend on today)."""
APPROX_BYTES_PER_TRADE = 125
"""On-disk size of a generated trade row including its primary-key index, measured on PostgreSQL 15."""

_SYMBOLS = (
    ("AAPL", 190.0),
    ("MSFT", 410.0),
    ("NVDA", 480.0),
    ("AMZN", 175.0),
    ("GOOGL", 140.0),
    ("META", 470.0),
    ("TSLA", 240.0),
    ("SPY", 500.0),
    ("QQQ", 430.0),
    ("JPM", 185.0),
    ("V", 270.0),
    ("XOM", 110.0),
)
_CHUNK_ROWS = 20_000


def schema_sql() -> str:
    """The DDL (idempotent: CREATE ... IF NOT EXISTS)."""
    return resources.files("tradesense_sandbox").joinpath("schema.sql").read_text()


@dataclass(frozen=True)
class PopulateResult:
    """How many rows `populate` wrote."""

    users: int
    trades: int
    deleted_trades: int


@dataclass(frozen=True)
class TableFingerprint:
    """Row count and an order-independent checksum of a table's contents."""

    rows: int
    checksum: int


def trades_for_size(megabytes: float) -> int:
    """Roughly how many trades make a database of this size (for benchmarks that want "a few hundred MB")."""
    if megabytes <= 0:
        raise ValueError(f"megabytes must be positive, got {megabytes}")
    return int(megabytes * 1024 * 1024 / APPROX_BYTES_PER_TRADE)


def _validate(users: int, trades: int, deleted_fraction: float) -> None:
    if users < 1:
        raise ValueError(f"users must be at least 1 (the test user), got {users}")
    if trades < 0:
        raise ValueError(f"trades must not be negative, got {trades}")
    if not 0.0 <= deleted_fraction <= 1.0:
        raise ValueError(f"deleted_fraction must be between 0 and 1, got {deleted_fraction}")


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def user_rows(users: int, seed: int, base_time: datetime = BASE_TIME) -> Iterator[str]:
    """COPY text chunks for `users` rows: user 1 is the runbook's test user, the others `userNNNNNN@example.com`."""
    # One hash for all generated users: hashing per user would dominate large loads and buys nothing.
    shared_hash = hash_password(GENERATED_USER_PASSWORD, salt=f"seed{seed}")
    test_hash = hash_password(TEST_USER_PASSWORD, salt=f"seed{seed}test")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    lines: list[str] = []
    for user_id in range(1, users + 1):
        email = TEST_USER_EMAIL if user_id == 1 else f"user{user_id:06d}@example.com"
        created = _stamp(base_time - timedelta(days=400, seconds=rng.randrange(86400 * 30)))
        lines.append(f"{user_id}\t{email}\t{test_hash if user_id == 1 else shared_hash}\t{created}\t{created}\n")
        if len(lines) >= _CHUNK_ROWS:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)


def trade_rows(
    users: int,
    trades: int,
    seed: int,
    *,
    deleted_fraction: float,
    base_time: datetime = BASE_TIME,
    counts: list[int] | None = None,
) -> Iterator[str]:
    """COPY text chunks for `trades` rows; `counts` (if given) receives [written, soft-deleted]."""
    rng = random.Random(seed * 1_000_003 + 1)  # noqa: S311 - reproducible test data, not security
    start = base_time - timedelta(days=365)
    days = [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(366)]
    deleted = 0
    lines: list[str] = []
    randrange, random_ = rng.randrange, rng.random
    for trade_id in range(1, trades + 1):
        symbol, base_price = _SYMBOLS[randrange(len(_SYMBOLS))]
        seconds = randrange(86400)
        when = f"{days[randrange(365)]} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}+00"
        price = base_price * (0.9 + random_() * 0.2)
        if random_() < deleted_fraction:
            deleted_at = when
            deleted += 1
        else:
            deleted_at = "\\N"
        side = "buy" if randrange(2) else "sell"
        user_id, quantity = randrange(users) + 1, randrange(1, 500)
        lines.append(
            f"{trade_id}\t{user_id}\t{symbol}\t{side}\t{quantity}\t{price:.4f}\t{when}\t{deleted_at}\t{when}\t{when}\n"
        )
        if len(lines) >= _CHUNK_ROWS:
            yield "".join(lines)
            lines.clear()
    if lines:
        yield "".join(lines)
    if counts is not None:
        counts[:] = [trades, deleted]


_COPY_USERS = "COPY users (id, email, password_hash, created_at, updated_at) FROM STDIN"
_COPY_TRADES = (
    "COPY trades (id, user_id, symbol, side, quantity, price, entry_date, deleted_at, created_at, updated_at) FROM STDIN"
)
_RESYNC_IDS = (
    "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM users), false)",
    "SELECT setval(pg_get_serial_sequence('trades', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM trades), false)",
)
_NOT_EMPTY = "populate needs empty users and trades tables (found rows); use a fresh database or truncate first"


def load_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables (idempotent)."""
    with conn.transaction():
        conn.execute(schema_sql().encode())


def populate(
    conn: psycopg.Connection[Any],
    *,
    users: int = 50,
    trades: int = 1_000,
    seed: int = 0,
    deleted_fraction: float = 0.02,
    base_time: datetime = BASE_TIME,
) -> PopulateResult:
    """Fill empty tables with deterministic data in one transaction (schema must be loaded)."""
    _validate(users, trades, deleted_fraction)
    counts = [0, 0]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM trades)")
        row = cur.fetchone()
        if row is not None and row[0]:
            raise ValueError(_NOT_EMPTY)
        with cur.copy(_COPY_USERS) as copy:
            for chunk in user_rows(users, seed, base_time):
                copy.write(chunk)
        with cur.copy(_COPY_TRADES) as copy:
            for chunk in trade_rows(
                users, trades, seed, deleted_fraction=deleted_fraction, base_time=base_time, counts=counts
            ):
                copy.write(chunk)
        for statement in _RESYNC_IDS:
            cur.execute(statement)
        cur.execute("ANALYZE users, trades")
    return PopulateResult(users=users, trades=counts[0], deleted_trades=counts[1])


def _fingerprint_query(table: str) -> sql.Composed:
    # hashtext over the row's text form, summed: streaming and independent of physical row order.
    return sql.SQL("SELECT count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM {} AS t").format(sql.Identifier(table))


def fingerprint(conn: psycopg.Connection[Any], tables: tuple[str, ...] = TABLES) -> dict[str, TableFingerprint]:
    """Per-table row count and content checksum, to prove a restore brought back exactly what was there."""
    result: dict[str, TableFingerprint] = {}
    for table in tables:
        row = conn.execute(_fingerprint_query(table)).fetchone()
        assert row is not None
        result[table] = TableFingerprint(rows=int(row[0]), checksum=int(row[1]))
    return result
