"""Per-metric replica recommendation, exactly the HPA v2 formula for Object/External metrics.

- Value: the query result is compared as is; ratio = value / target and the recommendation is
  ceil(current × ratio) (`desiredReplicas = ceil[currentReplicas × currentMetricValue / desiredMetricValue]`).
- AverageValue: the query returns a TOTAL across the workload (e.g. `sum(rate(...))`); the per-replica
  average is total / current, ratio = average / target, and the recommendation is ceil(total / target)
  — the same number as ceil(current × ratio), but also defined when scaling from zero.
Within the tolerance (|ratio − 1| ≤ tolerance) the recommendation is the current count, as in the HPA.
Pure arithmetic on values it is given; must not query Prometheus or apply bounds and stabilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.scaling import MetricTarget, TargetType

# Products like 3 × (0.2 / 0.1) are 6.000000000000001 in binary floating point; the HPA computes with
# milli-quantities and would answer 6. Rounding to 9 places before ceil keeps the documented examples exact.
_DIGITS = 9


@dataclass(frozen=True)
class MetricReading:
    """What the metrics client produced for one metric: a finite value, or why there is none."""

    value: float | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.error is None):
            raise ValueError("a MetricReading has exactly one of value and error")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("a MetricReading value must be finite (NaN/Inf are failed evaluations)")


@dataclass(frozen=True)
class MetricRecommendation:
    """One metric's verdict."""

    name: str
    value: float | None
    """The compared value: the query result for Value, the per-replica average for AverageValue."""
    target: float
    target_type: TargetType
    replicas: int | None
    ratio: float | None
    error: str | None = None


def _within(ratio: float, tolerance: float) -> bool:
    """|ratio − 1| ≤ tolerance, inclusive at exactly the tolerance (1 − 1.1 is 0.10000000000000009 in binary)."""
    return round(abs(1.0 - ratio), _DIGITS) <= tolerance


def _ceil(x: float) -> int:
    return math.ceil(round(x, _DIGITS))


def recommend_for_metric(
    name: str, reading: MetricReading, target: MetricTarget, current: int, tolerance: float
) -> MetricRecommendation:
    """Replicas this metric alone asks for (None with the reading's error when it could not be read)."""
    if reading.value is None:
        return MetricRecommendation(name, None, target.value, target.type, None, None, reading.error)
    raw = reading.value
    if target.type == TargetType.AVERAGE_VALUE:
        if current == 0:
            replicas = _ceil(raw / target.value)
            return MetricRecommendation(name, raw, target.value, target.type, replicas, None)
        average = raw / current
        ratio = average / target.value
        if _within(ratio, tolerance):
            return MetricRecommendation(name, average, target.value, target.type, current, ratio)
        return MetricRecommendation(name, average, target.value, target.type, _ceil(raw / target.value), ratio)
    ratio = raw / target.value
    if _within(ratio, tolerance):
        return MetricRecommendation(name, raw, target.value, target.type, current, ratio)
    return MetricRecommendation(name, raw, target.value, target.type, _ceil(current * ratio), ratio)
