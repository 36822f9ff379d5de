"""The Prometheus client against a real Prometheus: one finite number or a reason, never zero for no data.

Covers: vector and scalar answers, empty results, NaN, ±Inf, several series, a rejected query (Invalid)
and a stopped server (Unavailable).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.scaling.prometheus_support import start_prometheus
from tradesense_operator.clients.errors import Invalid, Unavailable
from tradesense_operator.clients.prometheus import PrometheusClient
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    server = start_prometheus()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(prometheus: PrometheusServer) -> Iterator[PrometheusClient]:
    c = PrometheusClient(prometheus.url, timeout=5)
    yield c
    c.close()


async def test_one_series_gives_its_value(client: PrometheusClient) -> None:
    result = await client.instant("vector(0.82)")
    assert result.value == 0.82
    assert result.problem is None


async def test_a_scalar_answer_is_accepted(client: PrometheusClient) -> None:
    assert (await client.instant("scalar(vector(3))")).value == 3.0


async def test_a_real_zero_is_a_value(client: PrometheusClient) -> None:
    assert (await client.instant("vector(0)")).value == 0.0


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("sum(tradesense_metric_that_does_not_exist)", "empty result"),
        ("vector(0) / 0", "NaN"),
        ("vector(1) / 0", "inf"),
        ('label_replace(vector(1), "pod", "a", "", "") or label_replace(vector(2), "pod", "b", "", "")', "2 series"),
    ],
)
async def test_unusable_answers_are_failures_not_zero(client: PrometheusClient, query: str, problem: str) -> None:
    result = await client.instant(query)
    assert result.value is None
    assert result.problem is not None
    assert problem in result.problem


async def test_a_malformed_query_is_invalid(client: PrometheusClient) -> None:
    with pytest.raises(Invalid, match="rejected the query"):
        await client.instant("sum(rate(")


async def test_a_stopped_server_is_unavailable() -> None:
    server = start_prometheus()
    client = PrometheusClient(server.url, timeout=2)
    try:
        assert (await client.instant("vector(1)")).value == 1.0
        server.stop()
        with pytest.raises(Unavailable, match="unreachable"):
            await client.instant("vector(1)")
    finally:
        client.close()
        server.stop()


async def test_credentials_in_the_url_never_reach_error_messages() -> None:
    server = start_prometheus()
    server.stop()
    client = PrometheusClient(f"http://scaler:s3cret-pass@127.0.0.1:{server.port}", timeout=2)
    try:
        with pytest.raises(Unavailable) as err:
            await client.instant("vector(1)")
    finally:
        client.close()
    assert "s3cret-pass" not in str(err.value)
    assert f"127.0.0.1:{server.port}" in str(err.value)
