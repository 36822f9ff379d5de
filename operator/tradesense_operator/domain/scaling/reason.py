"""Human wording for Events and conditions: "p95 latency 0.82 s > 0.5 s target: 3 → 5".

Owns only the text; must not decide replicas or emit Events itself.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.scaling import MetricPreset, MetricSpec, TargetType
from tradesense_operator.domain.scaling.metrics import MetricRecommendation

_LABELS: dict[MetricPreset, tuple[str, str, float]] = {
    # preset: (label, unit, display factor)
    MetricPreset.P95_LATENCY: ("p95 latency", " s", 1.0),
    MetricPreset.ERROR_RATE: ("error rate", " %", 100.0),
    MetricPreset.REQUEST_RATE_PER_REPLICA: ("request rate", " req/s", 1.0),
    MetricPreset.CPU: ("cpu", " cores", 1.0),
    MetricPreset.DB_CONNECTIONS_ACTIVE: ("active DB connections", "", 1.0),
}


def number(value: float) -> str:
    """Compact number: 0.82, 42, 1234 (never scientific notation)."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.3g}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if "e" in text else text


def describe_metric(metric: MetricSpec, result: MetricRecommendation) -> str:
    """'p95 latency 0.82 s > 0.5 s target' (per replica for AverageValue)."""
    label, unit, factor = _LABELS[metric.preset] if metric.preset is not None else (metric.name, "", 1.0)
    if result.value is None:
        return f"{label}: unavailable ({result.error})"
    per = "/replica" if result.target_type == TargetType.AVERAGE_VALUE else ""
    value, target = result.value * factor, result.target * factor
    op = ">" if result.value > result.target else "<" if result.value < result.target else "="
    return f"{label} {number(value)}{unit}{per} {op} {number(target)}{unit}{per} target"
