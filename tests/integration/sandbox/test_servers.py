"""Throwaway real servers, against the installed binaries.

Covers: PostgreSQL start / SIGKILL / restart keeping committed data and its port, clean stop,
pg_stat_statements only when asked; Redis kill losing unpersisted data and maxmemory refusing writes;
Prometheus scraping the stand-in app until rate(tradesense_http_requests_total) and the 5xx rate are
non-zero, live target changes; Alertmanager accepting an alert through its API and POSTing it, with a
bearer token, to a local webhook; and the whole chain Prometheus rule → Alertmanager → webhook.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import psycopg
import pytest
import redis

from tradesense_sandbox.app import generate_load
from tradesense_sandbox.servers import BinaryMissing, ServerStartError, ThrowawayPostgres, ThrowawayRedis
from tradesense_sandbox.servers.probes import http_json


def instant_value(prometheus, promql: str) -> float | None:
    """First sample of an instant query, None when the result is empty."""
    result = http_json(prometheus.query_url(promql))["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def wait_for_value(prometheus, promql: str, predicate, *, timeout: float = 30.0) -> float:
    """Poll an instant query (without blocking the loop) until its value satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(instant_value, prometheus, promql)
        if last is not None and predicate(last):
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{promql} never satisfied the condition within {timeout:g}s (last value {last})")


# -- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_survives_sigkill_and_restarts_on_the_same_port_with_committed_data(throwaway_pg):
    port = throwaway_pg.port
    with throwaway_pg.connect() as conn:
        conn.execute("CREATE TABLE ledger (id int PRIMARY KEY)")
        conn.execute("INSERT INTO ledger VALUES (1), (2)")
    survivor = throwaway_pg.connect()
    throwaway_pg.kill()
    assert not throwaway_pg.running
    assert throwaway_pg.cluster_state() == "in production"  # crashed, not shut down
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(throwaway_pg.dsn(), connect_timeout=2).close()
    throwaway_pg.start()
    assert throwaway_pg.port == port
    with throwaway_pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (2,)
    with pytest.raises(psycopg.OperationalError):  # the old session died with the crashed server
        survivor.execute("SELECT 1")
    survivor.close()


def test_postgres_stop_is_a_clean_shutdown_and_restart_brings_it_back(throwaway_pg):
    throwaway_pg.stop()
    assert not throwaway_pg.running
    assert throwaway_pg.cluster_state() == "shut down"
    throwaway_pg.restart()
    with throwaway_pg.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pg_stat_statements_records_queries_only_when_preloaded(throwaway_pg_factory):
    with_ext = throwaway_pg_factory(pg_stat_statements=True)
    with with_ext.connect() as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("SELECT pg_sleep(0.01)")
        rows = conn.execute("SELECT calls FROM pg_stat_statements WHERE query LIKE 'SELECT pg_sleep%'").fetchall()
    assert rows
    assert rows[0][0] >= 1
    plain = throwaway_pg_factory()
    with plain.connect() as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="shared_preload_libraries"):
            conn.execute("SELECT * FROM pg_stat_statements")


def test_throwaway_postgres_working_directory_is_removed_on_close():
    try:
        server = ThrowawayPostgres()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    with server:
        workdir = server.workdir
        assert (workdir / "data" / "PG_VERSION").exists()
    assert not Path(workdir).exists()


def test_a_missing_binary_is_reported_by_name_before_anything_is_created():
    with pytest.raises(BinaryMissing, match="/nonexistent/redis-server") as err:
        ThrowawayRedis(binary="/nonexistent/redis-server")
    assert err.value.binary == "/nonexistent/redis-server"


@pytest.mark.prometheus
def test_a_server_that_rejects_its_config_fails_start_with_its_own_error_message(tmp_path, prometheus_factory):
    rules = tmp_path / "broken.yaml"
    rules.write_text("groups:\n- name: x\n  rules:\n  - alert: Broken\n    expr: sum(rate(\n")
    with pytest.raises(ServerStartError, match=r"broken\.yaml"):
        prometheus_factory([], rule_files=[rules])


# -- Redis -----------------------------------------------------------------------------------------


def test_redis_kill_loses_unpersisted_keys_and_restart_keeps_the_port(throwaway_redis):
    with throwaway_redis.client() as client:
        client.set("session:user123", "token")
    port = throwaway_redis.port
    throwaway_redis.kill()
    with pytest.raises(redis.ConnectionError), throwaway_redis.client() as client:
        client.ping()
    throwaway_redis.start()
    assert throwaway_redis.port == port
    with throwaway_redis.client() as client:
        assert client.get("session:user123") is None


def fill(client: redis.Redis, prefix: str, count: int) -> None:
    for i in range(count):
        client.set(f"{prefix}{i}", "x" * 10_000)


def test_a_chosen_port_taken_before_start_is_replaced_but_a_given_one_is_not():
    chosen, given = ThrowawayRedis(), None
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", chosen.port))
            squatter.listen()
            taken = chosen.port
            chosen.start()
            assert chosen.port != taken
            with chosen.client() as client:
                assert client.ping()
            given = ThrowawayRedis(port=taken)
            with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
                given.start()
            assert given.port == taken
    finally:
        chosen.close()
        if given is not None:
            given.close()


def test_redis_maxmemory_refuses_writes_when_full(throwaway_redis_factory):
    server = throwaway_redis_factory(maxmemory="4mb")
    with server.client() as client:
        fill(client, "cache:analytics:a:", 100)  # ~1 MB fits
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            fill(client, "cache:analytics:b:", 1000)  # ~10 MB does not


# -- Prometheus ------------------------------------------------------------------------------------


@pytest.mark.prometheus
async def test_prometheus_scrapes_the_app_and_sees_request_and_error_rates(standin_app, prometheus_factory):
    prometheus = prometheus_factory([standin_app.target])
    standin_app.set_mode(errors=0.5, cpu_cores=2.0)
    load = asyncio.create_task(generate_load(standin_app.base_url, rate=20, duration=30, paths=["/api/v1/trades"]))
    try:
        await prometheus.wait_for_target_up_async(standin_app.target, timeout=30)
        total = await wait_for_value(prometheus, "sum(rate(tradesense_http_requests_total[5s]))", lambda v: v > 0)
        errors = await wait_for_value(
            prometheus, 'sum(rate(tradesense_http_requests_total{status=~"5.."}[5s]))', lambda v: v > 0
        )
        # 2 cores of baseline + 20 req/s x 5 ms: about 2.1 cores once the 5 s window is full (rate()
        # under-reads while it holds only the first samples, so wait for it to climb past 1 core)
        cores = await wait_for_value(prometheus, "sum(rate(container_cpu_usage_seconds_total[5s]))", lambda v: v > 1.0)
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
    assert errors <= total
    assert cores < 4.0
    up = await asyncio.to_thread(instant_value, prometheus, f'up{{instance="{standin_app.target}"}}')
    assert up == 1


@pytest.mark.prometheus
async def test_prometheus_picks_up_new_targets_after_a_reload(standin_app_factory, prometheus_factory):
    prometheus = prometheus_factory([])
    app = standin_app_factory(version="v7")
    await asyncio.to_thread(prometheus.set_targets, [app.target])
    await prometheus.wait_for_target_up_async(app.target, timeout=30)
    await wait_for_value(prometheus, 'tradesense_build_info{version="v7"}', lambda v: v == 1)


# -- Alertmanager ----------------------------------------------------------------------------------


def test_alertmanager_accepts_an_alert_and_posts_it_to_the_webhook_with_the_bearer_token(
    alertmanager_factory, webhook_recorder, secret_guard
):
    token = secret_guard.plant(prefix="am-token")
    alertmanager = alertmanager_factory(webhook_recorder.url, bearer_token=token)
    alertmanager.post_alerts(
        [
            {
                "labels": {"alertname": "HighErrorRate", "severity": "critical", "runbook": "high-error-rate"},
                "annotations": {"summary": "5xx above 5%"},
            }
        ]
    )
    assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["HighErrorRate"]
    delivered = webhook_recorder.wait_for(lambda r: r["body"]["status"] == "firing", timeout=20)
    assert delivered["headers"]["Authorization"] == f"Bearer {token}"
    assert delivered["body"]["version"] == "4"
    (alert,) = delivered["body"]["alerts"]
    assert alert["labels"]["runbook"] == "high-error-rate"
    assert alert["fingerprint"]
    assert token not in alertmanager.config_path.read_text()  # referenced by file, not inlined


@pytest.mark.prometheus
async def test_a_prometheus_rule_on_app_errors_reaches_the_webhook_through_alertmanager(
    tmp_path, standin_app, prometheus_factory, alertmanager_factory, webhook_recorder
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "groups:\n"
        "- name: tradesense\n"
        "  rules:\n"
        "  - alert: HighErrorRate\n"
        '    expr: sum(rate(tradesense_http_requests_total{status=~"5.."}[5s])) > 0\n'
        "    labels: {severity: critical, runbook: high-error-rate}\n"
    )
    alertmanager = alertmanager_factory(webhook_recorder.url)
    prometheus = prometheus_factory([standin_app.target], rule_files=[rules], alertmanagers=[alertmanager.target])
    await prometheus.wait_for_target_up_async(standin_app.target, timeout=30)
    standin_app.set_mode(errors=1.0)
    load = asyncio.create_task(generate_load(standin_app.base_url, rate=10, duration=20, paths=["/api/v1/trades"]))
    try:
        delivered = await webhook_recorder.wait_for_async(
            lambda r: any(a["labels"].get("alertname") == "HighErrorRate" for a in r["body"]["alerts"]), timeout=40
        )
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
    assert delivered["body"]["alerts"][0]["labels"]["runbook"] == "high-error-rate"
