"""Every preset's PromQL against a real Prometheus scraping the stand-in app: valid syntax, one series, the
values the runbook's metrics should give (cpu from the app's emulated cAdvisor counter) — and the documented
no-data behaviour (cpu without cAdvisor metrics is a failure, an idle service's p95 and error rate a measured 0)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.integration.scaling.prometheus_support import start_prometheus
from tradesense_operator.api.v1alpha1.scaling import MetricPreset
from tradesense_operator.clients.prometheus import InstantValue, PrometheusClient
from tradesense_operator.domain.scaling.presets import preset_query
from tradesense_sandbox.app import BackgroundLoad, StandinApp
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus

APP_ONLY = 'path!="/metrics"'


@pytest.fixture
def client(prometheus: PrometheusServer) -> Iterator[PrometheusClient]:
    c = PrometheusClient(prometheus.url, timeout=3)
    yield c
    c.close()


async def poll(client: PrometheusClient, preset: MetricPreset, accept: object, timeout: float = 30.0) -> InstantValue:
    query = preset_query(preset, window="5s", selector=APP_ONLY)
    deadline = time.monotonic() + timeout
    result = await client.instant(query)
    while time.monotonic() < deadline:
        result = await client.instant(query)
        if callable(accept) and accept(result):
            return result
        await asyncio.sleep(0.5)
    raise AssertionError(f"{preset.value}: last answer {result}")


async def test_error_rate_preset_measures_the_5xx_ratio(app: StandinApp, client: PrometheusClient) -> None:
    app.set_mode(errors=0.5)
    try:
        async with BackgroundLoad(app.base_url, rate=20, max_duration=60):
            result = await poll(client, MetricPreset.ERROR_RATE, lambda r: r.value is not None and r.value > 0.3)
    finally:
        app.reset_mode()
    assert result.value is not None
    assert 0.3 < result.value < 0.7


async def test_request_rate_and_db_connection_presets_answer_one_series(app: StandinApp, client: PrometheusClient) -> None:
    async with BackgroundLoad(app.base_url, rate=15, max_duration=60):
        rps = await poll(client, MetricPreset.REQUEST_RATE_PER_REPLICA, lambda r: r.value is not None and r.value > 10)
    assert rps.series == 1
    connections = await poll(client, MetricPreset.DB_CONNECTIONS_ACTIVE, lambda r: r.value is not None)
    assert connections.value is not None
    assert connections.value >= 0


async def test_idle_service_has_a_measured_zero_p95_and_error_rate(app: StandinApp, client: PrometheusClient) -> None:
    async with BackgroundLoad(app.base_url, rate=10, max_duration=30):
        await poll(client, MetricPreset.P95_LATENCY, lambda r: r.value is not None and r.value > 0)
    # Traffic stopped: once the 5 s window holds no requests the quantile is NaN, and the preset says 0.
    idle = await poll(client, MetricPreset.P95_LATENCY, lambda r: r.value == 0.0)
    assert idle.problem is None
    errors = await poll(client, MetricPreset.ERROR_RATE, lambda r: r.value is not None)
    assert errors.value == 0.0


async def test_cpu_preset_reads_cadvisor_cores(app: StandinApp, client: PrometheusClient) -> None:
    """The stand-in app publishes cAdvisor's counter for its emulated pod; 1.5 busy cores read as ≈ 1.5."""
    app.set_mode(cpu_cores=1.5)
    try:
        result = await poll(client, MetricPreset.CPU, lambda r: r.value is not None and 1.3 < r.value < 1.8)
    finally:
        app.reset_mode()
    assert result.series == 1


async def test_cpu_preset_without_cadvisor_metrics_is_a_failure_not_zero() -> None:
    server = start_prometheus()          # scrapes nothing: no container_cpu_usage_seconds_total at all
    client = PrometheusClient(server.url, timeout=3)
    try:
        result = await client.instant(preset_query(MetricPreset.CPU, window="5s"))
    finally:
        client.close()
        server.stop()
    assert result.value is None
    assert result.problem is not None
    assert "empty result" in result.problem
