"""Preset PromQL (runbook metric names, windows, selectors), the vertical memory rule, and spec checks that
name the offending field."""

from __future__ import annotations

import pytest
from tests.unit.scaling.builders import spec

from tradesense_operator.api.v1alpha1.scaling import MetricPreset, MetricSpec, VerticalSpec
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec
from tradesense_operator.domain.scaling.metrics import MetricReading, recommend_for_metric
from tradesense_operator.domain.scaling.presets import metric_query, preset_query
from tradesense_operator.domain.scaling.reason import describe_metric, number
from tradesense_operator.domain.scaling.validation import validate_spec
from tradesense_operator.domain.scaling.vertical import format_bytes, parse_bytes, recommend_memory_limit


def test_request_rate_preset_is_the_runbook_sum_of_rates() -> None:
    assert preset_query(MetricPreset.REQUEST_RATE_PER_REPLICA) == "sum(rate(tradesense_http_requests_total[1m]))"


def test_p95_preset_uses_the_histogram_buckets_and_the_window() -> None:
    query = preset_query(MetricPreset.P95_LATENCY, window="5m", selector='job="backend"')
    assert query.startswith(
        '(histogram_quantile(0.95, sum(rate(tradesense_http_request_duration_seconds_bucket{job="backend"}[5m])) by (le))'
    )
    assert 'tradesense_http_request_duration_seconds_count{job="backend"}[5m]' in query


def test_error_rate_preset_selects_5xx_and_keeps_the_selector() -> None:
    query = preset_query(MetricPreset.ERROR_RATE, selector='namespace="tradesense"')
    assert 'tradesense_http_requests_total{namespace="tradesense",status=~"5.."}[1m]' in query


def test_cpu_and_db_presets() -> None:
    assert 'container_cpu_usage_seconds_total{container!="",container!="POD"}' in preset_query(MetricPreset.CPU)
    assert preset_query(MetricPreset.DB_CONNECTIONS_ACTIVE) == "sum(tradesense_db_connections_active)"


def test_ratio_presets_refuse_average_value() -> None:
    metric = MetricSpec.model_validate(
        {"name": "p95", "preset": "p95-latency", "target": {"type": "AverageValue", "value": 1}})
    with pytest.raises(InvalidScalingSpec) as err:
        metric_query(metric, "spec.metrics[1]")
    assert err.value.field == "spec.metrics[1].target.type"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schedules": [{"name": "w", "start": "0 9 * * *", "end": "0 17 * * *", "timeZone": "Mars/Olympus",
                         "minReplicas": 2}]}, "spec.schedules[0].timeZone"),
        ({"schedules": [{"name": "w", "start": "0 99 * * *", "end": "0 17 * * *", "minReplicas": 2}]},
         "spec.schedules[0].start"),
        ({"schedules": [{"name": "w", "start": "0 9 * * *", "end": "0 17 * * *", "minReplicas": 500}]},
         "spec.schedules[0].minReplicas"),
        ({"metrics": [{"name": "a", "query": "x", "target": {"value": 1}},
                      {"name": "a", "query": "y", "target": {"value": 1}}]}, "spec.metrics[1].name"),
        ({"vertical": {"memoryQuery": "m", "minMemory": "4Gi", "maxMemory": "1Gi"}}, "spec.vertical.minMemory"),
    ],
)
def test_invalid_specs_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidScalingSpec) as err:
        validate_spec(spec(**overrides))
    assert err.value.field == field


def test_a_good_spec_passes_validation() -> None:
    validate_spec(spec(minReplicas=3, maxReplicas=10, fallback={"replicas": 5},
                       schedules=[{"name": "m", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5",
                                   "timeZone": "America/New_York", "minReplicas": 6}]))


@pytest.mark.parametrize(("text", "value"), [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1.5Gi", 3 * 2**29), ("1G", 10**9)])
def test_memory_quantities(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_format_bytes_prefers_whole_gi() -> None:
    assert format_bytes(2**31) == "2Gi"
    assert format_bytes(1536 * 2**20 + 1) == "1537Mi"


VERTICAL = VerticalSpec(memory_query="m", min_memory="512Mi", max_memory="4Gi", headroom_percent=30, min_change_percent=10)


@pytest.mark.parametrize(
    ("usage_mib", "current", "expected"),
    [
        (1000, "1Gi", "1300Mi"),    # 1000 Mi × 1.3, 27 % above the current 1 Gi limit
        (800, "1Gi", None),         # 1040 Mi is within 10 % of 1024 Mi: no rollout for that
        (100, "1Gi", "512Mi"),      # bounded below
        (9000, "2Gi", "4Gi"),       # bounded above
        (1000, None, "1300Mi"),     # no limit yet
    ],
)
def test_vertical_memory_limit_is_bounded_and_hysteretic(usage_mib: int, current: str | None, expected: str | None) -> None:
    result = recommend_memory_limit(VERTICAL, usage_mib * 2**20, current)
    assert (result.limit if result else None) == expected


@pytest.mark.parametrize(
    ("request_percent", "usage_mib", "expected"),
    [(50, 1000, "650Mi"), (100, 1000, "1300Mi"), (33, 100, "169Mi"), (None, 1000, None)],
)
def test_vertical_request_follows_the_new_limit(request_percent: int | None, usage_mib: int, expected: str | None) -> None:
    spec = VERTICAL.model_copy(update={"request_percent": request_percent})
    result = recommend_memory_limit(spec, usage_mib * 2**20, None)
    assert result is not None
    assert result.request == expected


@pytest.mark.parametrize(("value", "text"), [(0.82, "0.82"), (42.0, "42"), (1234.4, "1234"), (0.0001234, "0.000123")])
def test_numbers_read_naturally(value: float, text: str) -> None:
    assert number(value) == text


def test_describe_average_value_metric_per_replica() -> None:
    metric = MetricSpec.model_validate(
        {"name": "rps", "preset": "request-rate", "target": {"type": "AverageValue", "value": 50}})
    result = recommend_for_metric("rps", MetricReading(300.0), metric.target, 3, 0.1)
    assert describe_metric(metric, result) == "request rate 100 req/s/replica > 50 req/s/replica target"
