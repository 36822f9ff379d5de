"""PromQL for the runbook's metrics ("Monitoring & Alerts"), so a policy can say `preset: p95-latency`.

Every preset returns ONE series. Totals (request-rate, cpu, db-connections-active) are sums over all pods:
pair them with an AverageValue target, which divides by the current replicas (per-replica load, as the
HPA's AverageValue). Ratios (p95-latency, error-rate) are not additive and only accept Value targets.

"No data" is never turned into zero load: an absent series yields an empty result, which the client
reports as a failed evaluation. The two ratio presets do answer 0 when the service demonstrably had no
traffic in the window (the request counter exists and its rate is 0) — otherwise a quiet night would
read as a metrics outage and block every scale-down.

`cpu` reads cAdvisor's `container_cpu_usage_seconds_total` (kubelet /metrics/cadvisor must be scraped);
its value is cores, so an AverageValue target of 0.7 is "70 % of a 1000m request", the runbook's
`kubectl autoscale --cpu-percent=70`.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.scaling import MetricPreset, MetricSpec, TargetType
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec

REQUESTS = "tradesense_http_requests_total"
DURATION_BUCKET = "tradesense_http_request_duration_seconds_bucket"
DURATION_COUNT = "tradesense_http_request_duration_seconds_count"
DB_CONNECTIONS = "tradesense_db_connections_active"
CPU = "container_cpu_usage_seconds_total"

SERVER_ERRORS = 'status=~"5.."'
REAL_CONTAINERS = ('container!=""', 'container!="POD"')  # cAdvisor also reports pod-level and pause-container series

RATIO_PRESETS = frozenset({MetricPreset.P95_LATENCY, MetricPreset.ERROR_RATE})


def _sel(*matchers: str | None) -> str:
    parts = [m.strip() for m in matchers if m and m.strip()]
    return "{" + ",".join(parts) + "}" if parts else ""


def preset_query(preset: MetricPreset, *, window: str = "1m", selector: str | None = None) -> str:
    """The PromQL of a preset, with `selector` matchers added to every series selector."""
    w = f"[{window}]"
    if preset == MetricPreset.REQUEST_RATE_PER_REPLICA:
        return f"sum(rate({REQUESTS}{_sel(selector)}{w}))"
    if preset == MetricPreset.ERROR_RATE:
        errors = f"sum(rate({REQUESTS}{_sel(selector, SERVER_ERRORS)}{w}))"
        total = f"sum(rate({REQUESTS}{_sel(selector)}{w}))"
        return f"((({errors}) or on() (0 * {total})) / ({total} > 0)) or on() ({total} == 0)"
    if preset == MetricPreset.P95_LATENCY:
        quantile = f"histogram_quantile(0.95, sum(rate({DURATION_BUCKET}{_sel(selector)}{w})) by (le))"
        idle = f"sum(rate({DURATION_COUNT}{_sel(selector)}{w})) == 0"
        return f"({quantile} >= 0) or on() ({idle})"
    if preset == MetricPreset.CPU:
        return f"sum(rate({CPU}{_sel(selector, *REAL_CONTAINERS)}{w}))"
    if preset == MetricPreset.DB_CONNECTIONS_ACTIVE:
        return f"sum({DB_CONNECTIONS}{_sel(selector)})"
    raise InvalidScalingSpec("spec.metrics[].preset", f"unknown preset {preset!r}")  # pragma: no cover - enum is closed


def metric_query(metric: MetricSpec, field: str = "spec.metrics[]") -> str:
    """The PromQL to run for a metric: its preset's or its raw query."""
    if metric.preset is not None and metric.query is not None:
        raise InvalidScalingSpec(field, "set exactly one of preset and query, not both")
    if metric.preset is not None:
        if metric.preset in RATIO_PRESETS and metric.target.type == TargetType.AVERAGE_VALUE:
            raise InvalidScalingSpec(
                f"{field}.target.type", f"preset {metric.preset.value} is a ratio; use Value, not AverageValue"
            )
        return preset_query(metric.preset, window=metric.window, selector=metric.selector)
    if metric.query is not None:
        return metric.query
    raise InvalidScalingSpec(field, "set one of preset and query")
