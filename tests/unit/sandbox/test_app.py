"""The stand-in TradeSense app (no PostgreSQL/Redis: synthetic data, in-memory cache and sessions).

Covers: the runbook's endpoints and smoke-test loop, the runbook's metric names and their movement,
each failure mode (errors, latency, down, refused, auth, cache misses, pool leak) through both the Python
API and the admin endpoint, tokens and key rotation, the log ring, per-instance metric registries, the
load generator, the background-thread lifecycle and the `python -m` entry point.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradesense_sandbox.app import (
    BackgroundLoad,
    FailureMode,
    LogRing,
    StandinApp,
    TokenSigner,
    generate_load,
    hash_password,
    verify_password,
)
from tradesense_sandbox.app.auth import InvalidToken
from tradesense_sandbox.app.cpu import SimulatedCpu

RUNBOOK_METRICS = {
    "tradesense_http_requests": "counter",
    "tradesense_http_request_duration_seconds": "histogram",
    "tradesense_db_connections_active": "gauge",
    "tradesense_cache_hits": "counter",
    "tradesense_cache_requests": "counter",
    "tradesense_db_query_duration_seconds": "histogram",
}


@pytest.fixture
async def app() -> AsyncIterator[StandinApp]:
    async with StandinApp(db_pool_size=3, db_acquire_timeout=0.2) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def get_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        await response.read()
        return response.status


async def scrape(http: aiohttp.ClientSession, app: StandinApp) -> dict[str, float]:
    """Samples of /metrics as {'name{label="v",...}': value} with labels sorted."""
    async with http.get(app.base_url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


async def login(http: aiohttp.ClientSession, app: StandinApp, email: str, password: str) -> tuple[int, dict[str, object]]:
    async with http.post(app.base_url + "/api/v1/auth/login", json={"email": email, "password": password}) as r:
        return r.status, await r.json()


# -- endpoints -----------------------------------------------------------------------------------


async def test_runbook_smoke_loop_and_health_endpoints_answer_200_when_healthy(app, http):
    for endpoint in ("health", "trades", "analytics", "auth"):
        assert await get_status(http, f"{app.base_url}/api/v1/{endpoint}") == 200, endpoint
    for path in ("/api/v1/monitoring/health", "/api/v1/monitoring/health/detailed", "/api/v1/analytics/dashboard"):
        assert await get_status(http, app.base_url + path) == 200, path


async def test_detailed_health_lists_dependencies_as_not_configured_without_addresses(app, http):
    async with http.get(app.base_url + "/api/v1/monitoring/health/detailed") as r:
        body = await r.json()
    assert body["status"] == "healthy"
    assert body["components"]["postgres"] == {"status": "not_configured"}
    assert body["components"]["redis"] == {"status": "not_configured"}


async def test_detailed_health_reports_an_unreachable_postgres_and_redis_as_down(http):
    # Port 1 on loopback refuses connections: a configured but unreachable dependency.
    async with StandinApp(pg_dsn="postgresql://x@127.0.0.1:1/db", redis_url="redis://127.0.0.1:1/0") as app:
        status = await get_status(http, app.base_url + "/api/v1/monitoring/health/detailed")
        async with http.get(app.base_url + "/api/v1/monitoring/health/detailed") as r:
            body = await r.json()
    assert status == 503
    assert body["components"]["postgres"]["status"] == "down"
    assert body["components"]["redis"]["status"] == "down"
    assert "127.0.0.1:1" not in json.dumps(body)  # no connection string leaks into the answer


# -- metrics ---------------------------------------------------------------------------------------


async def test_metrics_expose_the_runbook_names_with_their_types(app, http):
    await get_status(http, app.base_url + "/api/v1/trades")
    await get_status(http, app.base_url + "/api/v1/analytics/dashboard")
    async with http.get(app.base_url + "/metrics") as r:
        text = await r.text()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    for name, kind in RUNBOOK_METRICS.items():
        assert families.get(name) == kind, name
    assert 'tradesense_http_request_duration_seconds_bucket{le="0.5",method="GET",path="/api/v1/trades"}' in text


async def test_request_counter_counts_by_route_and_status_and_ignores_metrics_scrapes(app, http):
    for _ in range(3):
        await get_status(http, app.base_url + "/api/v1/trades")
    await get_status(http, app.base_url + "/api/v1/nope")
    samples = await scrape(http, app)
    samples = await scrape(http, app)  # a second scrape must not count the first
    assert samples['tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="200"}'] == 3
    assert samples['tradesense_http_requests_total{method="GET",path="unmatched",status="404"}'] == 1
    assert not any('path="/metrics"' in key for key in samples)


async def test_each_app_instance_has_its_own_registry(app, http):
    async with StandinApp() as other:
        await get_status(http, other.base_url + "/api/v1/trades")
        theirs = await scrape(http, other)
    ours = await scrape(http, app)
    assert theirs['tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="200"}'] == 1
    assert 'tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="200"}' not in ours


async def test_build_info_reports_the_configured_version(http):
    async with StandinApp(version="v2.0.1") as app:
        samples = await scrape(http, app)
        async with http.get(app.base_url + "/api/v1/monitoring/health") as r:
            assert (await r.json())["version"] == "v2.0.1"
    assert samples['tradesense_build_info{version="v2.0.1"}'] == 1


# -- failure modes --------------------------------------------------------------------------------


async def test_error_fraction_fails_exactly_that_share_of_requests(app, http):
    app.set_mode(errors=0.25)
    statuses = [await get_status(http, app.base_url + "/api/v1/trades") for _ in range(8)]
    assert statuses.count(500) == 2
    assert statuses.count(200) == 6
    samples = await scrape(http, app)
    assert samples['tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="500"}'] == 2
    assert sum("ERROR access" in line and "status=500" in line for line in app.logs.lines()) == 2


@pytest.mark.parametrize(
    ("mode", "bucket"),
    [
        ({"latency_ms": 550}, 'tradesense_http_request_duration_seconds_bucket{le="%s",method="GET",path="/api/v1/trades"}'),
        ({"db_latency_ms": 550}, 'tradesense_db_query_duration_seconds_bucket{le="%s",query="recent_trades"}'),
    ],
    ids=["request-latency", "db-latency"],
)
async def test_latency_modes_move_observations_above_the_slo_bucket(app, http, mode, bucket):
    app.set_mode(**mode)
    await get_status(http, app.base_url + "/api/v1/trades")
    samples = await scrape(http, app)
    assert samples[bucket % "0.5"] == 0
    assert samples[bucket % "+Inf"] == 1


async def test_down_mode_answers_503_on_api_routes_while_metrics_stay_scrapable(app, http):
    app.set_mode(down=True)
    for endpoint in ("health", "trades", "analytics", "auth"):
        assert await get_status(http, f"{app.base_url}/api/v1/{endpoint}") == 503
    samples = await scrape(http, app)
    assert samples['tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="503"}'] == 1
    app.reset_mode()
    assert await get_status(http, app.base_url + "/api/v1/trades") == 200


async def test_closed_listener_refuses_connections_and_reopens_on_the_same_port(app, http):
    port = app.port
    await app.set_listening_async(False)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_status(http, app.base_url + "/api/v1/health")
    await app.set_listening_async(True)
    assert app.port == port
    assert await get_status(http, app.base_url + "/api/v1/health") == 200


async def test_forced_cache_misses_lower_the_hit_rate(app, http):
    url = app.base_url + "/api/v1/analytics/dashboard"
    for _ in range(4):
        await get_status(http, url)
    before = await scrape(http, app)
    assert before["tradesense_cache_requests_total{}"] == 4
    assert before["tradesense_cache_hits_total{}"] == 3  # first lookup fills the cache
    app.set_mode(cache_miss=1.0)
    for _ in range(4):
        await get_status(http, url)
    after = await scrape(http, app)
    assert after["tradesense_cache_requests_total{}"] == 8
    assert after["tradesense_cache_hits_total{}"] == 3


async def test_connection_leak_exhausts_the_pool_and_db_routes_answer_503(app, http):
    app.set_mode(db_leak=3)
    assert (await scrape(http, app))["tradesense_db_connections_active{}"] == 3
    assert await get_status(http, app.base_url + "/api/v1/trades") == 503
    assert any("pool exhausted" in line for line in app.logs.lines())
    assert await get_status(http, app.base_url + "/api/v1/monitoring/health") == 200  # no DB needed
    app.set_mode(db_leak=0)
    assert await get_status(http, app.base_url + "/api/v1/trades") == 200
    assert (await scrape(http, app))["tradesense_db_connections_active{}"] == 0


async def test_admin_endpoint_updates_some_fields_rejects_bad_ones_and_resets(app, http):
    async with http.post(app.base_url + "/admin/mode", json={"errors": 0.5, "latency_ms": 10}) as r:
        assert r.status == 200
    async with http.post(app.base_url + "/admin/mode", json={"auth_broken": True}) as r:
        body = await r.json()
    assert body["errors"] == 0.5  # earlier fields are kept
    assert body["auth_broken"] is True
    assert app.mode == FailureMode(errors=0.5, latency_ms=10, auth_broken=True)
    async with http.post(app.base_url + "/admin/mode", json={"erors": 0.5}) as r:
        assert r.status == 400
        assert "erors" in (await r.json())["error"]
    async with http.post(app.base_url + "/admin/mode", json={"errors": 2}) as r:
        assert r.status == 400
        assert "'errors'" in (await r.json())["error"]
    async with http.post(app.base_url + "/admin/mode", data="not json") as r:
        assert r.status == 400
    async with http.delete(app.base_url + "/admin/mode") as r:
        assert r.status == 200
    assert app.mode.healthy


def test_failure_mode_rejects_out_of_range_values_naming_the_field():
    with pytest.raises(ValueError, match="'errors'"):
        FailureMode(errors=1.5)
    with pytest.raises(ValueError, match="'latency_ms'"):
        FailureMode(latency_ms=-1)
    with pytest.raises(ValueError, match="'cpu_cores'"):
        FailureMode(cpu_cores=100)
    with pytest.raises(TypeError, match="'down'"):
        FailureMode(down="yes")  # type: ignore[arg-type]


def test_simulated_cpu_accrues_the_baseline_only_while_it_is_set_plus_a_cost_per_request():
    now = [100.0]
    cores = [0.0]
    cpu = SimulatedCpu(cores=lambda: cores[0], seconds_per_request=0.01, labels={"pod": "p"}, clock=lambda: now[0])
    now[0] += 10  # idle at 0 cores
    cpu.mode_changing()
    cores[0] = 2.0
    now[0] += 5
    for _ in range(3):
        cpu.request_served()
    assert cpu.seconds() == pytest.approx(2.0 * 5 + 3 * 0.01)
    cpu.mode_changing()
    cores[0] = 0.5
    now[0] += 4
    assert cpu.seconds() == pytest.approx(10.03 + 0.5 * 4)


async def test_cpu_counter_is_exposed_cadvisor_style_and_follows_requests(http):
    async with StandinApp(pod="backend-7f9c-abcde", cpu_seconds_per_request=0.25) as app:
        for _ in range(4):
            await get_status(http, app.base_url + "/api/v1/health")
        samples = await scrape(http, app)
    key = 'container_cpu_usage_seconds_total{container="backend",namespace="tradesense",pod="backend-7f9c-abcde"}'
    assert samples[key] == pytest.approx(1.0)  # cpu_cores is 0: only the 4 requests' cost


# -- auth -----------------------------------------------------------------------------------------


async def test_login_issues_a_token_that_authenticates_and_bad_passwords_get_401_logged(app, http):
    status, body = await login(http, app, "test@example.com", "test")
    assert status == 200
    token = str(body["access_token"])
    async with http.get(app.base_url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        assert (await r.json())["user_id"] == 1
    status, _ = await login(http, app, "test@example.com", "wrong-password")
    assert status == 401
    failed = [line for line in app.logs.lines() if "login failed" in line]
    assert len(failed) == 1
    assert "status=401" in failed[0]
    assert "WARNING auth" in failed[0]
    assert "wrong-password" not in app.logs.text()
    assert token not in app.logs.text()


async def test_login_rejects_a_body_without_credentials_with_400(app, http):
    async with http.post(app.base_url + "/api/v1/auth/login", json={"email": "test@example.com"}) as r:
        assert r.status == 400


async def test_broken_auth_rejects_good_credentials_and_fails_the_auth_smoke_check(app, http):
    _, body = await login(http, app, "test@example.com", "test")
    app.set_mode(auth_broken=True)
    assert (await login(http, app, "test@example.com", "test"))[0] == 401
    assert await get_status(http, app.base_url + "/api/v1/auth") == 503
    async with http.get(app.base_url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}) as r:
        assert r.status == 401
    async with http.get(app.base_url + "/api/v1/monitoring/health/detailed") as r:
        assert r.status == 503
        assert (await r.json())["components"]["auth"]["status"] == "down"


async def test_rotating_the_signing_key_invalidates_earlier_tokens(app, http):
    _, body = await login(http, app, "test@example.com", "test")
    app.rotate_signing_key("a-brand-new-signing-key")
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    async with http.get(app.base_url + "/api/v1/auth/me", headers=headers) as r:
        assert r.status == 401
    _, fresh = await login(http, app, "test@example.com", "test")
    async with http.get(app.base_url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {fresh['access_token']}"}) as r:
        assert r.status == 200


async def test_flushing_sessions_logs_the_user_out(app, http):
    _, body = await login(http, app, "test@example.com", "test")
    app.flush_memory_cache()
    async with http.get(app.base_url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}) as r:
        assert r.status == 401


def test_tokens_expire_and_reject_tampering():
    signer = TokenSigner("k" * 16, ttl_seconds=60)
    token = signer.issue("7", now=1000)
    assert signer.verify(token, now=1059)["sub"] == "7"
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(token, now=1060)
    header, payload, sig = token.split(".")
    with pytest.raises(InvalidToken, match="signature"):
        signer.verify(f"{header}.{payload}x.{sig}", now=1000)
    with pytest.raises(ValueError, match="at least 8 bytes"):
        TokenSigner("short")


def test_password_hashes_verify_only_the_right_password():
    stored = hash_password("s3cret", salt="fixed", iterations=1000)
    assert stored == hash_password("s3cret", salt="fixed", iterations=1000)  # deterministic for generated data
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cret!", stored)
    assert not verify_password("s3cret", "md5$garbage")


# -- log ring -------------------------------------------------------------------------------------


def test_log_ring_is_bounded_and_readable_incrementally():
    ring = LogRing(capacity=3)
    for i in range(5):
        ring.write("INFO", "access", f"line {i}")
    assert [line.split()[-1] for line in ring.lines()] == ["2", "3", "4"]
    assert ring.last_seq == 5
    assert [e.message for e in ring.entries(since_seq=4)] == ["line 4"]
    assert ring.lines(tail=1)[0].endswith("INFO access line 4")
    assert ring.text(tail=0) == ""


async def test_admin_logs_endpoint_serves_the_ring_from_a_sequence_number(app, http):
    await get_status(http, app.base_url + "/api/v1/trades")
    async with http.get(app.base_url + "/admin/logs") as r:
        first = await r.text()
        last = int(r.headers["X-Last-Seq"])
    assert "path=/api/v1/trades status=200" in first
    await get_status(http, app.base_url + "/api/v1/analytics")
    async with http.get(app.base_url + f"/admin/logs?since={last}") as r:
        lines = (await r.text()).splitlines()
    assert len(lines) == 1
    assert "path=/api/v1/analytics" in lines[0]


# -- load generator -------------------------------------------------------------------------------


async def test_load_generator_sends_the_requested_number_and_the_app_counts_them(app, http):
    report = await generate_load(app.base_url, rate=40, duration=0.5, paths=["/api/v1/trades"])
    assert report.sent == 20
    assert report.ok == 20
    samples = await scrape(http, app)
    assert samples['tradesense_http_requests_total{method="GET",path="/api/v1/trades",status="200"}'] == 20


async def test_load_generator_counts_server_errors_and_skips_beyond_the_in_flight_cap(app):
    app.set_mode(errors=0.5)
    report = await generate_load(app.base_url, rate=40, duration=0.25, paths=["/api/v1/trades"])
    assert (report.ok, report.server_errors) == (5, 5)
    app.set_mode(errors=0.0, latency_ms=400)
    capped = await generate_load(app.base_url, rate=40, duration=0.25, paths=["/api/v1/trades"], max_in_flight=2)
    assert capped.sent == 2
    assert capped.skipped == 8


async def test_load_generator_rejects_unbounded_parameters():
    with pytest.raises(ValueError, match="rate"):
        await generate_load("http://127.0.0.1:1", rate=0, duration=1)
    with pytest.raises(ValueError, match="duration"):
        await generate_load("http://127.0.0.1:1", rate=1, duration=10**6)


async def test_background_load_runs_until_stopped_and_follows_rate_changes(app, http):
    async with BackgroundLoad(app.base_url, rate=50, paths=["/api/v1/health"]) as load:
        for _ in range(100):
            if load.report.ok >= 5:
                break
            await asyncio.sleep(0.02)
        load.set_rate(100)
        seen = load.report.ok
        for _ in range(100):
            if load.report.ok >= seen + 10:
                break
            await asyncio.sleep(0.02)
    report = await load.stop()
    assert report.ok >= seen + 10
    key = 'tradesense_http_requests_total{method="GET",path="/api/v1/health",status="200"}'
    total = (await scrape(http, app))[key]
    await asyncio.sleep(0.1)
    assert (await scrape(http, app))[key] == total  # nothing is sent after stop()


# -- lifecycles -----------------------------------------------------------------------------------


def test_background_thread_mode_serves_and_stops():
    with StandinApp() as app:
        with urllib.request.urlopen(app.base_url + "/api/v1/health", timeout=5) as r:
            assert r.status == 200
        app.set_mode(down=True)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(app.base_url + "/api/v1/health", timeout=5)
        assert err.value.code == 503
        err.value.close()
        url = app.base_url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/api/v1/health", timeout=5)


async def test_a_stopped_app_restarts_on_the_same_port_with_its_mode_and_logs(http):
    app = StandinApp()
    await app.start_async()
    port = app.port
    app.set_mode(latency_ms=1)
    await app.stop_async()
    await app.start_async()
    try:
        assert app.port == port
        assert await get_status(http, app.base_url + "/api/v1/health") == 200
        assert app.mode.latency_ms == 1
        assert any("failure mode set" in line for line in app.logs.lines())
    finally:
        await app.stop_async()


def test_module_entry_point_serves_on_the_printed_address():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradesense_sandbox.app", "--port", "0", "--version", "v9"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/api/v1/monitoring/health", timeout=5) as r:
            assert json.loads(r.read())["version"] == "v9"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()  # type: ignore[union-attr]
