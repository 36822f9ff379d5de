"""RedisClient against real servers.

Covers: SCAN-based count and batched SCAN + UNLINK deletion that removes exactly the matching keys across
more than one batch, single-key delete and TTL states, the bounded big-key sample, INFO and the cache hit
rate, error translation (closed port → Unavailable, wrong password → Forbidden without the password in the
message), and FLUSHALL — on a throwaway redis-server only, never the shared one.

The shared server (127.0.0.1:6379) is used in db 11 with a per-test key prefix that is cleaned up afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from tests.support.secrets import SecretGuard
from tradesense_operator.clients.errors import Forbidden, Invalid, Unavailable
from tradesense_operator.clients.redis import KeyTtl, RedisClient
from tradesense_sandbox.servers import BinaryMissing, ThrowawayRedis, free_port

SHARED_DB = 11


@pytest.fixture
def prefix() -> str:
    return f"h7test:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def raw(prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py connection for arranging keys and checking effects; removes the test's keys afterwards."""
    conn = aioredis.Redis(host="127.0.0.1", port=6379, db=SHARED_DB)
    try:
        yield conn
    finally:
        leftovers = [key async for key in conn.scan_iter(match=f"{prefix}*", count=1000)]
        if leftovers:
            await conn.delete(*leftovers)
        await conn.aclose()


@pytest.fixture
async def client() -> AsyncIterator[RedisClient]:
    async with RedisClient("127.0.0.1", 6379, db=SHARED_DB) as redis_client:
        yield redis_client


@pytest.fixture(scope="module")
def throwaway_redis() -> Iterator[tuple[int, str]]:
    """A private redis-server with a password: FLUSHALL and auth failures must never touch the shared one."""
    try:
        server = ThrowawayRedis()
    except BinaryMissing as missing:
        pytest.skip(str(missing))
    password = f"pw-{uuid.uuid4().hex}"
    with server:
        with server.client() as admin:
            admin.config_set("requirepass", password)
        yield server.port, password


async def test_count_keys_counts_only_matching_keys(client: RedisClient, raw: aioredis.Redis, prefix: str) -> None:
    await raw.mset({f"{prefix}cache:analytics:{i}": "x" for i in range(37)})
    await raw.mset({f"{prefix}session:{i}": "s" for i in range(5)})
    assert await client.count_keys(f"{prefix}cache:analytics:*") == 37
    assert await client.count_keys(f"{prefix}session:*") == 5
    assert await client.count_keys(f"{prefix}nothing:*") == 0


async def test_delete_pattern_removes_exactly_the_matching_keys_across_batches(
    client: RedisClient, raw: aioredis.Redis, prefix: str
) -> None:
    doomed = {f"{prefix}cache:analytics:{i}" for i in range(1234)}
    kept = {f"{prefix}cache:trades:{i}" for i in range(50)} | {f"{prefix}session:{i}" for i in range(20)}
    kept.add(f"{prefix}cache:analytics")  # no trailing colon: must not match "cache:analytics:*"
    await raw.mset(dict.fromkeys(doomed | kept, "v"))

    deleted = await client.delete_pattern(f"{prefix}cache:analytics:*", batch=100)

    assert deleted == len(doomed)
    remaining = {key.decode() async for key in raw.scan_iter(match=f"{prefix}*", count=1000)}
    assert remaining == kept
    assert await client.delete_pattern(f"{prefix}cache:analytics:*", batch=100) == 0  # rerun finds nothing


async def test_delete_pattern_rejects_empty_pattern_and_bad_batch(client: RedisClient) -> None:
    with pytest.raises(Invalid, match=r"^pattern:"):
        await client.delete_pattern("")
    with pytest.raises(Invalid, match=r"^batch:"):
        await client.delete_pattern("x:*", batch=0)


async def test_delete_key_and_ttl_report_each_key_state(client: RedisClient, raw: aioredis.Redis, prefix: str) -> None:
    session, persistent = f"{prefix}session:user123", f"{prefix}config"
    await raw.set(session, "token", ex=600)
    await raw.set(persistent, "1")

    ttl = await client.ttl(session)
    assert ttl.exists
    assert ttl.seconds is not None
    assert 0 < ttl.seconds <= 600
    assert await client.ttl(persistent) == KeyTtl(exists=True, seconds=None)

    assert await client.delete_key(session) is True
    assert await raw.exists(session) == 0
    assert await client.ttl(session) == KeyTtl(exists=False, seconds=None)
    assert await client.delete_key(session) is False


async def test_bigkeys_sample_ranks_keys_by_memory(client: RedisClient, raw: aioredis.Redis, prefix: str) -> None:
    # the sample is the whole (small) test db so the planted keys are certainly seen
    await raw.set(f"{prefix}big", "x" * 200_000)
    await raw.rpush(f"{prefix}medium", *(["y" * 100] * 200))
    await raw.set(f"{prefix}small", "z")
    total = await raw.dbsize()

    top = await client.bigkeys_sample(sample=total + 10, top=total + 10)
    mine = [k for k in top if k.key.startswith(prefix)]
    assert [k.key for k in mine] == [f"{prefix}big", f"{prefix}medium", f"{prefix}small"]
    assert [k.type for k in mine] == ["string", "list", "string"]
    assert mine[0].memory_bytes >= 200_000
    assert len(await client.bigkeys_sample(sample=total + 10, top=1)) == 1


async def test_info_and_cache_hit_rate_reflect_lookups(client: RedisClient, raw: aioredis.Redis, prefix: str) -> None:
    assert int((await client.info("server"))["redis_version"].split(".")[0]) >= 7
    before = await client.info("stats")
    await raw.set(f"{prefix}hit", "1")
    for _ in range(3):
        await raw.get(f"{prefix}hit")
    await raw.get(f"{prefix}miss")
    after = await client.info("stats")
    assert after["keyspace_hits"] - before["keyspace_hits"] >= 3
    assert after["keyspace_misses"] - before["keyspace_misses"] >= 1
    rate = await client.cache_hit_rate()
    assert rate is not None
    assert 0.0 < rate < 1.0


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("host", {"host": ""}), ("port", {"port": 70000}), ("db", {"db": -1}), ("socket_timeout", {"socket_timeout": 0})],
)
def test_constructor_rejects_bad_fields_by_name(field: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(Invalid, match=rf"^{field}:"):
        RedisClient(**kwargs)  # type: ignore[arg-type]


async def test_ping_and_operations_on_a_closed_port_raise_unavailable() -> None:
    async with RedisClient("127.0.0.1", free_port(), socket_timeout=1.0) as down:
        with pytest.raises(Unavailable, match=r"127\.0\.0\.1"):
            await down.ping()
        with pytest.raises(Unavailable):
            await down.delete_pattern("cache:*")


async def test_wrong_password_is_forbidden_and_never_echoed(
    throwaway_redis: tuple[int, str], secret_guard: SecretGuard
) -> None:
    port, _ = throwaway_redis
    wrong = secret_guard.plant(prefix="wrong-redis-password")
    async with RedisClient("127.0.0.1", port, password=wrong) as client:
        assert wrong not in repr(client)
        with pytest.raises(Forbidden) as caught:
            await client.ping()
    assert wrong not in str(caught.value)


async def test_flushall_empties_every_database_of_a_throwaway_server(
    throwaway_redis: tuple[int, str], secret_guard: SecretGuard
) -> None:
    port, password = throwaway_redis
    secret_guard.plant(password)
    raw = aioredis.Redis(host="127.0.0.1", port=port, password=password)
    raw_db3 = aioredis.Redis(host="127.0.0.1", port=port, password=password, db=3)
    try:
        await raw.mset({f"session:{i}": "s" for i in range(10)})
        await raw_db3.set("other", "1")
        async with RedisClient("127.0.0.1", port, password=password) as client:
            assert await client.ping()
            await client.flushall()
        assert await raw.dbsize() == 0
        assert await raw_db3.dbsize() == 0
    finally:
        await raw.aclose()
        await raw_db3.aclose()
