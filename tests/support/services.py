"""Shared pytest fixtures for real services: the shared PostgreSQL/Redis and throwaway servers.

- Shared PostgreSQL (127.0.0.1:5432): `shared_pg_dsn`; `pg_database` is a fresh uniquely named database
  with the runbook schema and small deterministic data, dropped afterwards; `pg_empty_database` has
  nothing in it (a restore target).
- Shared Redis (127.0.0.1:6379): `redis_url` points at test db index 9 and `redis_prefix` is a unique key
  prefix; keys under the prefix are deleted afterwards. Nothing else in the shared Redis is touched.
- Throwaway servers (for tests that stop, kill, fill or reconfigure): `throwaway_pg`, `throwaway_redis`
  and their `*_factory` forms taking options, `prometheus_factory`, `alertmanager_factory`. A missing
  binary skips the test with the binary's name. `runbook_database(server)` loads the runbook schema and data.
- `webhook_recorder`: a loopback HTTP receiver that records what Alertmanager (or anything) POSTs to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import pytest
import redis
from aiohttp import web
from psycopg import sql

from tradesense_sandbox.schema import PopulateResult, load_schema, populate
from tradesense_sandbox.servers import (
    AlertmanagerServer,
    BinaryMissing,
    PrometheusServer,
    ServerProcess,
    ThrowawayPostgres,
    ThrowawayRedis,
)

SHARED_PG_DSN = os.environ.get("TSO_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
SHARED_REDIS_HOST = "127.0.0.1"
SHARED_REDIS_PORT = 6379
TEST_REDIS_DB = 9


@dataclass(frozen=True)
class PgDatabase:
    """A test database on the shared PostgreSQL."""

    name: str
    dsn: str
    url: str
    populated: PopulateResult | None

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[Any, ...]]:
        """A new synchronous connection (the caller closes it)."""
        return psycopg.connect(self.dsn, autocommit=autocommit)


def _dsn_for(base: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(base)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


@pytest.fixture(scope="session")
def shared_pg_dsn() -> str:
    """DSN of the shared PostgreSQL's `postgres` database; fails loudly (not skips) when it is down."""
    try:
        with psycopg.connect(SHARED_PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"shared PostgreSQL unreachable ({type(exc).__name__}); run scripts/ensure-services.sh", pytrace=False)
    return SHARED_PG_DSN


@pytest.fixture
def pg_database_factory(shared_pg_dsn: str) -> Iterator[Callable[..., PgDatabase]]:
    """`make(schema=True, users=20, trades=200, seed=0)`: a fresh database, dropped (FORCE) at teardown."""
    created: list[str] = []

    def make(*, schema: bool = True, users: int = 20, trades: int = 200, seed: int = 0) -> PgDatabase:
        name = f"tso_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(shared_pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        dsn = _dsn_for(shared_pg_dsn, name)
        populated = None
        if schema:
            with psycopg.connect(dsn) as conn:
                load_schema(conn)
                if users:
                    populated = populate(conn, users=users, trades=trades, seed=seed)
        params = psycopg.conninfo.conninfo_to_dict(dsn)
        url = f"postgresql://{params.get('user', 'postgres')}@{params.get('host')}:{params.get('port', 5432)}/{name}"
        return PgDatabase(name=name, dsn=dsn, url=url, populated=populated)

    yield make
    with psycopg.connect(shared_pg_dsn, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def pg_database(pg_database_factory: Callable[..., PgDatabase]) -> PgDatabase:
    """A fresh database with the runbook schema and 20 users / 200 trades (seed 0)."""
    return pg_database_factory()


@pytest.fixture
def pg_empty_database(pg_database_factory: Callable[..., PgDatabase]) -> PgDatabase:
    """A fresh database with no tables (e.g. a restore target)."""
    return pg_database_factory(schema=False)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"tso-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    """URL of test db 9 on the shared Redis; every key under `redis_prefix` is deleted afterwards."""
    client = redis.Redis(host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, db=TEST_REDIS_DB, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.fail(f"shared Redis unreachable ({type(exc).__name__}); run scripts/ensure-services.sh", pytrace=False)
    try:
        yield f"redis://{SHARED_REDIS_HOST}:{SHARED_REDIS_PORT}/{TEST_REDIS_DB}"
    finally:
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def _started_servers(server_type: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """`make(*args, **kwargs)`: a started `server_type` (a skip when its binary is missing); all closed at exit."""
    owned: list[ServerProcess] = []

    def make(*args: Any, **kwargs: Any) -> S:
        try:
            server = server_type(*args, **kwargs)
        except BinaryMissing as exc:
            pytest.skip(str(exc))
        owned.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in owned:
            server.close()


def runbook_database(server: ThrowawayPostgres, name: str = "tradesense", **populate_options: Any) -> PopulateResult:
    """Database `name` on a throwaway server, with the runbook schema and `populate`d rows (options as `populate`)."""
    server.create_database(name)
    with server.connect(name) as conn:
        load_schema(conn)
        return populate(conn, **populate_options)


@pytest.fixture
def throwaway_pg_factory() -> Iterator[Callable[..., ThrowawayPostgres]]:
    """`make(pg_stat_statements=False, settings=None)`: a started private PostgreSQL, removed at teardown."""
    with _started_servers(ThrowawayPostgres) as make:
        yield make


@pytest.fixture
def throwaway_pg(throwaway_pg_factory: Callable[..., ThrowawayPostgres]) -> ThrowawayPostgres:
    """A started private PostgreSQL (superuser postgres, trust auth) that the test may kill."""
    return throwaway_pg_factory()


@pytest.fixture
def throwaway_redis_factory() -> Iterator[Callable[..., ThrowawayRedis]]:
    """`make(maxmemory=None, maxmemory_policy="noeviction", appendonly=False)`: a started private Redis."""
    with _started_servers(ThrowawayRedis) as make:
        yield make


@pytest.fixture
def throwaway_redis(throwaway_redis_factory: Callable[..., ThrowawayRedis]) -> ThrowawayRedis:
    """A started private Redis that the test may kill, flush or fill."""
    return throwaway_redis_factory()


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., PrometheusServer]]:
    """`make(targets, scrape_interval="1s", rule_files=(), alertmanagers=())`: a started real Prometheus."""
    with _started_servers(PrometheusServer) as make:
        yield make


@pytest.fixture
def alertmanager_factory() -> Iterator[Callable[..., AlertmanagerServer]]:
    """`make(webhook_url, bearer_token=None, group_wait="1s", ...)`: a started real Alertmanager."""
    with _started_servers(AlertmanagerServer) as make:
        yield make


@dataclass
class WebhookRecorder:
    """Requests received by the loopback webhook, in arrival order (thread-safe reads)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    on_receive: Callable[[dict[str, Any]], None] | None = None  # a test's hook, run before the 200 answer
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        """Snapshot: each item has `headers` and the decoded JSON `body`."""
        with self._lock:
            return list(self.requests)

    def record(self, request: dict[str, Any]) -> None:
        """Append one received request, then run the test's hook."""
        with self._lock:
            self.requests.append(request)
        if self.on_receive is not None:
            self.on_receive(request)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 30.0) -> dict[str, Any]:
        """Block (polling) until a received request satisfies `predicate`; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in self.received():
                if predicate(request):
                    return request
            time.sleep(0.05)
        raise TimeoutError(f"no matching webhook request within {timeout:g}s; got {len(self.received())}")

    async def wait_for_async(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 30.0) -> dict[str, Any]:
        """`wait_for` without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in self.received():
                if predicate(request):
                    return request
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no matching webhook request within {timeout:g}s; got {len(self.received())}")


@pytest.fixture
def webhook_recorder() -> Iterator[WebhookRecorder]:
    """A webhook receiver on its own thread and loopback port (answers 200 to every POST)."""
    recorder = WebhookRecorder()
    ready = threading.Event()
    stop: list[Callable[[], None]] = []

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        recorder.record({"path": request.path, "headers": dict(request.headers), "body": body})
        return web.Response(text="ok")

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhook"
        stop.append(lambda: loop.call_soon_threadsafe(loop.stop))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="webhook-recorder", daemon=True)
    thread.start()
    assert ready.wait(10), "webhook recorder did not start"
    yield recorder
    stop[0]()
    thread.join(timeout=10)
