"""The stand-in app backed by real PostgreSQL (runbook schema) and Redis.

Covers: login against the users table; trades served from the database; sessions as `session:<id>` keys in
Redis (deleting one logs the user out, as the runbook's "Reset user session"); the analytics cache under
`cache:analytics:*` (deleting the pattern turns the next lookup into a miss); detailed health following a
killed and restarted Redis; a connection leak showing in the pool gauge; slow queries injected as real
statements that pg_stat_statements reports.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis

from tradesense_sandbox.schema import GENERATED_USER_PASSWORD, load_schema, populate


def call(url: str, *, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    """GET (or POST JSON when `body` is given) and return (status, decoded JSON)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def backed_app(standin_app_factory, pg_database, redis_url, redis_prefix):
    return standin_app_factory(pg_dsn=pg_database.dsn, redis_url=redis_url, redis_prefix=redis_prefix)


@pytest.fixture
def shared_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_login_checks_the_users_table(backed_app, secret_guard):
    password = secret_guard.plant(GENERATED_USER_PASSWORD)
    login = backed_app.base_url + "/api/v1/auth/login"
    status, body = call(login, body={"email": "user000002@example.com", "password": password})
    assert status == 200
    assert call(backed_app.base_url + "/api/v1/auth/me", token=body["access_token"]) == (200, {"user_id": 2})
    status, _ = call(login, body={"email": "user000002@example.com", "password": "nope"})
    assert status == 401
    status, _ = call(login, body={"email": "nobody@example.com", "password": "x"})
    assert status == 401


def test_trades_come_from_the_database(backed_app, pg_database):
    status, body = call(backed_app.base_url + "/api/v1/trades?user_id=3")
    assert status == 200
    with pg_database.connect() as conn:
        expected = conn.execute(
            "SELECT id FROM trades WHERE user_id = 3 AND deleted_at IS NULL ORDER BY entry_date DESC LIMIT 20"
        ).fetchall()
    assert [t["id"] for t in body["trades"]] == [row[0] for row in expected]
    assert expected


def test_sessions_live_in_redis_and_deleting_one_logs_the_user_out(backed_app, shared_redis, redis_prefix):
    _, body = call(backed_app.base_url + "/api/v1/auth/login", body={"email": "test@example.com", "password": "test"})
    token = body["access_token"]
    assert shared_redis.exists(f"{redis_prefix}session:1") == 1
    assert call(backed_app.base_url + "/api/v1/auth/me", token=token)[0] == 200
    shared_redis.delete(f"{redis_prefix}session:1")
    assert call(backed_app.base_url + "/api/v1/auth/me", token=token)[0] == 401


def test_analytics_cache_keys_follow_the_runbook_pattern(backed_app, shared_redis, redis_prefix):
    url = backed_app.base_url + "/api/v1/analytics/dashboard?user_id=4"
    assert call(url)[1]["cached"] is False
    assert call(url)[1]["cached"] is True
    keys = list(shared_redis.scan_iter(match=f"{redis_prefix}cache:analytics:*"))
    assert keys == [f"{redis_prefix}cache:analytics:dashboard:4".encode()]
    shared_redis.delete(*keys)
    assert call(url)[1]["cached"] is False


def test_detailed_health_follows_a_killed_and_restarted_redis(standin_app_factory, pg_database, throwaway_redis):
    app = standin_app_factory(pg_dsn=pg_database.dsn, redis_url=throwaway_redis.url())
    status, body = call(app.base_url + "/api/v1/monitoring/health/detailed")
    assert status == 200
    assert body["components"]["postgres"]["status"] == "up"
    assert body["components"]["redis"]["status"] == "up"
    throwaway_redis.kill()
    status, body = call(app.base_url + "/api/v1/monitoring/health/detailed")
    assert status == 503
    assert body["components"]["redis"]["status"] == "down"
    assert call(app.base_url + "/api/v1/analytics")[0] == 200  # a cache outage degrades, it does not fail
    assert call(app.base_url + "/api/v1/auth/login", body={"email": "test@example.com", "password": "test"})[0] == 503
    throwaway_redis.start()
    assert call(app.base_url + "/api/v1/monitoring/health/detailed")[0] == 200


def test_connection_leak_shows_in_the_pool_gauge_and_starves_database_routes(standin_app_factory, pg_database):
    app = standin_app_factory(pg_dsn=pg_database.dsn, db_pool_size=2, db_acquire_timeout=0.2)
    assert call(app.base_url + "/api/v1/trades")[0] == 200
    app.set_mode(db_leak=2)
    with urllib.request.urlopen(app.base_url + "/metrics", timeout=5) as response:
        assert "tradesense_db_connections_active 2.0" in response.read().decode()
    assert call(app.base_url + "/api/v1/trades")[0] == 503
    assert call(app.base_url + "/api/v1/monitoring/health/detailed")[1]["components"]["postgres"]["status"] == "up"


def test_injected_query_latency_is_a_real_slow_statement_in_pg_stat_statements(standin_app_factory, throwaway_pg_factory):
    pg = throwaway_pg_factory(pg_stat_statements=True)
    with pg.connect(autocommit=False) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        load_schema(conn)
        populate(conn, users=3, trades=30)
        conn.commit()
    app = standin_app_factory(pg_dsn=pg.dsn())
    app.set_mode(db_latency_ms=150)
    assert call(app.base_url + "/api/v1/trades")[0] == 200
    with pg.connect() as conn:
        rows = conn.execute(
            "SELECT query, mean_exec_time FROM pg_stat_statements WHERE query LIKE '%pg_sleep%' ORDER BY mean_exec_time DESC"
        ).fetchall()
    assert rows
    assert rows[0][1] >= 150  # milliseconds, as the runbook's slow-query listing reads them
