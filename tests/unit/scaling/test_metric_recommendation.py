"""Per-metric recommendation: the HPA formula, AverageValue vs Value, tolerance, unreadable readings.

Rows marked "HPA docs" reproduce the worked examples of the Kubernetes Horizontal Pod Autoscaling page.
"""

from __future__ import annotations

import math

import pytest

from tradesense_operator.api.v1alpha1.scaling import MetricTarget, TargetType
from tradesense_operator.domain.scaling.metrics import MetricReading, recommend_for_metric

V, AV = TargetType.VALUE, TargetType.AVERAGE_VALUE


@pytest.mark.parametrize(
    ("current", "value", "target_type", "target", "tolerance", "expected"),
    [
        (3, 0.2, V, 0.1, 0.1, 6),      # HPA docs: 200m observed, 100m desired -> replicas doubled
        (4, 0.05, V, 0.1, 0.1, 2),     # HPA docs: 50m observed, 100m desired -> replicas halved
        (2, 2.0, AV, 0.2, 0.1, 10),    # 2 pods using 1000m each (2000m total), 200m per pod wanted -> 10
        (3, 300, AV, 50, 0.1, 6),      # 300 req/s over 3 pods = 100 per pod vs 50 -> 6
        (3, 0.82, V, 0.5, 0.1, 5),     # the example: p95 0.82 s vs 0.5 s, 3 -> ceil(4.92) = 5
        (10, 105, V, 100, 0.1, 10),    # ratio 1.05 within the 10 % tolerance: unchanged
        (10, 110, V, 100, 0.1, 10),    # ratio 1.10: the tolerance is inclusive, as in the HPA
        (10, 111, V, 100, 0.1, 12),    # ratio 1.11: ceil(11.1)
        (10, 111, V, 100, 0.2, 10),    # per-policy tolerance 20 %
        (10, 95, V, 100, 0.0, 10),     # zero tolerance: 9.5 -> ceil 10
        (10, 89, V, 100, 0.1, 9),      # below tolerance: ceil(8.9)
        (4, 0, AV, 10, 0.1, 0),        # no load at all: the formula asks for zero (min clamp happens later)
        (0, 35, AV, 10, 0.1, 4),       # scaling from zero replicas (minReplicas 0): ceil(total / target)
    ],
)
def test_recommendation_follows_the_hpa_formula(  # noqa: PLR0917
    current: int, value: float, target_type: TargetType, target: float, tolerance: float, expected: int
) -> None:
    result = recommend_for_metric("m", MetricReading(value), MetricTarget(type=target_type, value=target),
                                  current, tolerance)
    assert result.replicas == expected


def test_average_value_reports_the_per_replica_average() -> None:
    result = recommend_for_metric("rps", MetricReading(300.0), MetricTarget(type=AV, value=50), 3, 0.1)
    assert result.value == 100.0
    assert result.ratio == 2.0


def test_unreadable_metric_has_no_recommendation_and_keeps_the_reason() -> None:
    result = recommend_for_metric("p95", MetricReading(None, "empty result"), MetricTarget(type=V, value=0.5), 3, 0.1)
    assert result.replicas is None
    assert result.error == "empty result"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_cannot_be_a_reading(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        MetricReading(bad)


def test_a_reading_is_either_a_value_or_an_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MetricReading(None)
    with pytest.raises(ValueError, match="exactly one"):
        MetricReading(1.0, "and an error")
