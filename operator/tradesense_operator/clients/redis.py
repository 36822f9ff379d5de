"""Redis adapter for the runbook's `redis-cli` commands, with the unsafe ones replaced by safe equivalents.

The runbook uses `KEYS` (inside an EVAL) and `FLUSHALL` to clear a pattern or force a logout; on a large
shared Redis `KEYS` blocks the server for the whole scan and `FLUSHALL` wipes every tenant's data. Here a
pattern is cleared with incremental `SCAN` + `UNLINK` in batches (the server frees memory in the
background), `--bigkeys` becomes a bounded SCAN sample with `MEMORY USAGE`, and `flushall` exists only for
the incident spec that explicitly asks for it.

One `redis.asyncio.Redis` (with its own small connection pool) is reused for the client's lifetime; the
password is passed separately from the address, never appears in `repr`, and is scrubbed from errors.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from tradesense_operator.clients.closing import AsyncClosing
from tradesense_operator.clients.errors import ClientError, Forbidden, Invalid, Timeout, Unavailable

log = logging.getLogger(__name__)

MAX_BATCH = 10_000  # one UNLINK of more keys than this would itself become a long blocking command


@dataclass(frozen=True)
class KeyTtl:
    """TTL of a key: `exists` False for a missing key; `seconds` None when the key never expires."""

    exists: bool
    seconds: int | None


@dataclass(frozen=True)
class BigKey:
    """A key from the sample with its type and approximate memory footprint (MEMORY USAGE)."""

    key: str
    type: str
    memory_bytes: int


class RedisClient(AsyncClosing):
    """Runbook operations on one Redis database."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        *,
        socket_timeout: float = 5.0,
    ) -> None:
        if not host:
            raise Invalid("host: must not be empty")
        if not 0 < port < 65536:
            raise Invalid(f"port: must be between 1 and 65535, got {port}")
        if db < 0:
            raise Invalid(f"db: must be >= 0, got {db}")
        if socket_timeout <= 0:
            raise Invalid(f"socket_timeout: must be positive, got {socket_timeout}")
        self.host, self.port, self.db = host, port, db
        self._password = password
        self._redis = aioredis.Redis(
            host=host,
            port=port,
            db=db,
            password=password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            client_name="tradesense-operator",
            # one quick retry covers a pooled socket the server closed (e.g. after a restart); anything longer
            # is the step engine's decision, with its own backoff and deadline, not the library's
            retry=Retry(ConstantBackoff(0.05), retries=1),
        )

    def __repr__(self) -> str:
        return f"RedisClient({self.host}:{self.port}/{self.db}, password={'***' if self._password else None})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    # -- plumbing -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _translating(self, what: str) -> AsyncIterator[None]:
        """Translate redis-py exceptions, once, into `clients.errors` with the password scrubbed."""
        try:
            yield
        except redis_errors.RedisError as exc:
            raw = str(exc)
            scrubbed = raw.replace(self._password, "***") if self._password else raw
            message = f"{what} on redis {self.host}:{self.port}/{self.db}: {scrubbed or type(exc).__name__}"
            error = _classify(exc, message)
            if scrubbed != raw:
                raise error from None
            raise error from exc

    # -- operations -----------------------------------------------------------------------------------

    async def ping(self) -> bool:
        """PING; True when the server answers, `Unavailable` when it does not."""
        async with self._translating("PING"):
            return bool(await self._redis.ping())

    async def count_keys(self, pattern: str) -> int:
        """How many keys match `pattern`, counted with SCAN (never KEYS); duplicates SCAN may yield are removed."""
        _check_pattern(pattern)
        seen: set[bytes] = set()
        async with self._translating(f"SCAN {pattern}"):
            async for key in self._redis.scan_iter(match=pattern, count=1000):
                seen.add(key)
        return len(seen)

    async def delete_pattern(self, pattern: str, batch: int = 500) -> int:
        """Delete every key matching `pattern` with SCAN + UNLINK in batches; returns how many were removed.

        The safe form of the runbook's `EVAL ... redis.call('keys', ...)` and of FLUSHALL-for-sessions: the
        server never blocks on one huge command, other keys are untouched, and a crash half way leaves a
        state a rerun simply finishes (UNLINK of an already-missing key counts nothing).
        """
        _check_pattern(pattern)
        if not 1 <= batch <= MAX_BATCH:
            raise Invalid(f"batch: must be between 1 and {MAX_BATCH}, got {batch}")
        deleted = 0
        pending: list[bytes] = []
        async with self._translating(f"deleting keys matching {pattern}"):
            async for key in self._redis.scan_iter(match=pattern, count=batch):
                pending.append(key)
                if len(pending) >= batch:
                    deleted += int(await self._redis.unlink(*pending))
                    pending.clear()
            if pending:
                deleted += int(await self._redis.unlink(*pending))
        log.info("deleted %d keys matching %s on redis db %d", deleted, pattern, self.db)
        return deleted

    async def delete_key(self, key: str) -> bool:
        """UNLINK one key (e.g. `session:user123`); True when it existed."""
        if not key:
            raise Invalid("key: must not be empty")
        async with self._translating("UNLINK"):
            return int(await self._redis.unlink(key)) == 1

    async def ttl(self, key: str) -> KeyTtl:
        """TTL of one key, distinguishing 'missing' from 'never expires'."""
        if not key:
            raise Invalid("key: must not be empty")
        async with self._translating("TTL"):
            seconds = int(await self._redis.ttl(key))
        if seconds == -2:
            return KeyTtl(exists=False, seconds=None)
        return KeyTtl(exists=True, seconds=None if seconds == -1 else seconds)

    async def bigkeys_sample(self, sample: int = 1000, top: int = 10) -> list[BigKey]:
        """The safe `redis-cli --bigkeys`: MEMORY USAGE over the first `sample` keys SCAN yields, largest `top`."""
        if not 1 <= sample <= 1_000_000:
            raise Invalid(f"sample: must be between 1 and 1000000, got {sample}")
        if not 1 <= top <= 1000:
            raise Invalid(f"top: must be between 1 and 1000, got {top}")
        keys: list[bytes] = []
        seen: set[bytes] = set()
        found: list[BigKey] = []
        async with self._translating("sampling big keys"):
            async for key in self._redis.scan_iter(count=min(sample, 1000)):
                if key not in seen:
                    seen.add(key)
                    keys.append(key)
                if len(keys) >= sample:
                    break
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                pipe = self._redis.pipeline(transaction=False)
                for key in chunk:
                    pipe.memory_usage(key)
                    pipe.type(key)
                replies = await pipe.execute()
                for i, key in enumerate(chunk):
                    memory, kind = replies[2 * i], replies[2 * i + 1]
                    if memory is None:  # deleted or expired since SCAN saw it
                        continue
                    found.append(BigKey(_text(key), _text(kind), int(memory)))
        found.sort(key=lambda k: (-k.memory_bytes, k.key))
        return found[:top]

    async def info(self, section: str = "default") -> dict[str, Any]:
        """INFO `section`, parsed into a dict by redis-py."""
        async with self._translating(f"INFO {section}"):
            return dict(await self._redis.info(section))

    async def cache_hit_rate(self) -> float | None:
        """keyspace_hits / (hits + misses) since the last stats reset; None before any lookup."""
        stats = await self.info("stats")
        hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
        return None if hits + misses == 0 else hits / (hits + misses)

    async def flushall(self) -> None:
        """FLUSHALL ASYNC: every database on the server. Only for incident specs that explicitly allow it."""
        async with self._translating("FLUSHALL"):
            await self._redis.flushall(asynchronous=True)
        log.warning("FLUSHALL executed on redis %s:%s", self.host, self.port)


def _check_pattern(pattern: str) -> None:
    if not pattern:
        raise Invalid("pattern: must not be empty")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


_CLASSIFY: tuple[tuple[type[redis_errors.RedisError], Callable[[str], ClientError]], ...] = (
    (redis_errors.AuthenticationError, Forbidden),
    (redis_errors.AuthorizationError, Forbidden),
    (redis_errors.NoPermissionError, Forbidden),
    (redis_errors.TimeoutError, Timeout),
    (redis_errors.ConnectionError, Unavailable),  # includes BusyLoadingError (server still loading its dataset)
    (redis_errors.ReadOnlyError, Unavailable),  # a replica during failover: the primary will be back
    (redis_errors.TryAgainError, Unavailable),
    (redis_errors.DataError, Invalid),
)


def _classify(exc: redis_errors.RedisError, message: str) -> ClientError:
    for kind, error in _CLASSIFY:
        if isinstance(exc, kind):
            return error(message)
    return ClientError(message)
