"""The whole evaluation: bounds, max across metrics, partial/total metric failure, fallback, scaled-to-zero,
schedules and incident floors raising the minimum, workers, and the Event reason text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.scaling.builders import no_stabilization, spec

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicySpec
from tradesense_operator.domain.scaling.decision import ScalingDecision, ScalingInput, decide
from tradesense_operator.domain.scaling.floor import ScaleFloor
from tradesense_operator.domain.scaling.metrics import MetricReading

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)   # Monday 10:00 in New York
DOWN = "load unreachable"


def evaluate(policy: ScalingPolicySpec, current: int, now: datetime = T0, prior: ScalingDecision | None = None,
             floors: tuple[ScaleFloor, ...] = (), **readings: float | None) -> ScalingDecision:
    return decide(ScalingInput(
        spec=policy, current_replicas=current, now=now,
        readings={k: MetricReading(v) if v is not None else MetricReading(None, DOWN) for k, v in readings.items()},
        recommendations=prior.recommendations if prior else (), scale_events=prior.scale_events if prior else (),
        consecutive_failures=prior.consecutive_failures if prior else 0, floors=floors,
    ))


TWO_METRICS: dict[str, Any] = {"metrics": [
    {"name": "rps", "preset": "request-rate", "target": {"type": "AverageValue", "value": 50}},
    {"name": "p95", "preset": "p95-latency", "target": {"type": "Value", "value": 0.5}},
]}


def test_the_largest_metric_recommendation_wins() -> None:
    decision = evaluate(spec(**TWO_METRICS), 3, rps=150.0, p95=0.82)   # rps: 3 (at target), p95: 5
    assert decision.desired_replicas == 5
    assert decision.reason == "p95 latency 0.82 s > 0.5 s target: 3 → 5"
    assert decision.scaling_active.reason == "ValidMetricFound"


def test_recommendations_are_clamped_to_max_replicas() -> None:
    decision = evaluate(spec(maxReplicas=10, behavior=no_stabilization()), 8, load=5000.0)
    assert decision.desired_replicas == 10
    assert decision.scaling_limited.reason == "TooManyReplicas"


def test_recommendations_are_clamped_to_min_replicas() -> None:
    decision = evaluate(spec(minReplicas=3, behavior=no_stabilization()), 8, load=10.0)
    assert decision.desired_replicas == 3
    assert decision.scaling_limited.reason == "TooFewReplicas"


def test_current_count_outside_the_bounds_is_corrected_without_rate_limits() -> None:
    assert evaluate(spec(maxReplicas=10), 40, load=4000.0).desired_replicas == 10
    raised = evaluate(spec(minReplicas=20), 2, load=200.0)   # default up policy would allow only 6
    assert raised.desired_replicas == 20


def test_a_target_scaled_to_zero_disables_autoscaling() -> None:
    decision = evaluate(spec(minReplicas=2), 0, load=900.0)
    assert decision.desired_replicas == 0
    assert decision.scaling_active.reason == "ScalingDisabled"


def test_one_failed_metric_blocks_scale_down_but_not_scale_up() -> None:
    policy = spec(behavior=no_stabilization(), **TWO_METRICS)
    up = evaluate(policy, 3, rps=400.0, p95=None)
    assert up.desired_replicas == 7                          # rps alone asks for 8; default rate: max(3×2, 3+4)
    assert up.scaling_active.reason == "FailedGetMetrics"
    down = evaluate(policy, 3, rps=10.0, p95=None)
    assert down.desired_replicas == 3
    assert "p95: load unreachable" in down.scaling_active.message


def test_all_metrics_failing_without_fallback_holds_the_current_count() -> None:
    decision = evaluate(spec(), 4, load=None)
    assert decision.desired_replicas == 4
    assert decision.consecutive_failures == 1
    assert not decision.fallback_active.status
    assert decision.scaling_active.status is False


FALLBACK = {"fallback": {"failureThreshold": 3, "replicas": 6}}


def test_fallback_holds_its_replicas_after_the_threshold() -> None:
    policy = spec(**FALLBACK)
    prior = None
    for _ in range(2):
        prior = evaluate(policy, 2, prior=prior, load=None)
        assert prior.desired_replicas == 2
        assert not prior.fallback_active.status
    third = evaluate(policy, 2, prior=prior, load=None)
    assert third.desired_replicas == 6
    assert third.fallback_active.status
    assert third.consecutive_failures == 3
    assert third.reason.startswith("fallback after 3 failed evaluations")


def test_fallback_never_lowers_replicas_unless_allowed() -> None:
    held = evaluate(spec(**FALLBACK), 9, prior=_failed(2), load=None)
    assert held.desired_replicas == 9
    lowered = evaluate(spec(fallback={"failureThreshold": 3, "replicas": 6, "allowScaleDown": True},
                            behavior=no_stabilization()), 9, prior=_failed(2), load=None)
    assert lowered.desired_replicas == 6


def test_fallback_does_not_override_a_higher_readable_recommendation() -> None:
    policy = spec(**FALLBACK, **TWO_METRICS)
    decision = evaluate(policy, 6, prior=_failed(5), rps=500.0, p95=None)   # rps asks for 10
    assert decision.fallback_active.status
    assert decision.desired_replicas == 10


def test_recovery_resets_the_failure_count_and_leaves_fallback() -> None:
    decision = evaluate(spec(**FALLBACK), 6, prior=_failed(5), load=600.0)
    assert decision.consecutive_failures == 0
    assert not decision.fallback_active.status


def _failed(count: int) -> ScalingDecision:
    prior: ScalingDecision | None = None
    for _ in range(count):
        prior = evaluate(spec(), 2, prior=prior, load=None)
    assert prior is not None
    return prior


MARKET = {"schedules": [{"name": "us-market", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5",
                         "timeZone": "America/New_York", "minReplicas": 6}]}


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 1, 5, 14, 29, tzinfo=UTC), 2),    # Monday 09:29 EST: closed
        (datetime(2026, 1, 5, 14, 30, tzinfo=UTC), 6),    # 09:30 EST: open
        (datetime(2026, 1, 5, 20, 59, 59, tzinfo=UTC), 6),  # 15:59:59 EST
        (datetime(2026, 1, 5, 21, 0, tzinfo=UTC), 2),     # 16:00 EST: closed
        (datetime(2026, 1, 10, 15, 0, tzinfo=UTC), 2),    # Saturday
        (datetime(2026, 7, 6, 13, 30, tzinfo=UTC), 6),    # July: 09:30 EDT is 13:30 UTC
        (datetime(2026, 7, 6, 20, 30, tzinfo=UTC), 2),    # 16:30 EDT
    ],
)
def test_market_hours_window_raises_the_floor_at_new_york_local_time(utc: datetime, expected: int) -> None:
    decision = evaluate(spec(minReplicas=2, behavior=no_stabilization(), **MARKET), 2, now=utc, load=100.0)
    assert decision.desired_replicas == expected
    if expected == 6:
        assert decision.scaling_limited.reason == "ScheduleFloor"
        assert "schedule us-market raises the minimum to 6" in decision.reason


def test_floor_jump_is_not_rate_limited_and_metrics_can_go_above_it() -> None:
    policy = spec(minReplicas=2, **MARKET | {"schedules": [{**MARKET["schedules"][0], "minReplicas": 20}]})
    assert evaluate(policy, 2, now=datetime(2026, 1, 5, 14, 30, tzinfo=UTC), load=100.0).desired_replicas == 20
    busy = evaluate(policy, 20, now=datetime(2026, 1, 5, 14, 31, tzinfo=UTC), load=2400.0)
    assert busy.desired_replicas == 24


def test_live_incident_floor_holds_replicas_and_may_exceed_max() -> None:
    floor = ScaleFloor(replicas=12, until=T0 + timedelta(minutes=30), incident="tradesense/high-cpu-1")
    policy = spec(maxReplicas=10, behavior=no_stabilization())
    decision = evaluate(policy, 12, floors=(floor,), load=100.0)
    assert decision.desired_replicas == 12
    assert decision.scaling_limited.reason == "IncidentFloor"
    assert "tradesense/high-cpu-1" in decision.scaling_limited.message


def test_expired_incident_floor_is_ignored() -> None:
    floor = ScaleFloor(replicas=8, until=T0, incident="tradesense/high-cpu-1")
    decision = evaluate(spec(behavior=no_stabilization()), 8, floors=(floor,), load=100.0)
    assert decision.desired_replicas == 1


def test_incident_floor_applies_even_while_metrics_fail() -> None:
    floor = ScaleFloor(replicas=8, until=T0 + timedelta(minutes=5), incident="ns/perf")
    assert evaluate(spec(), 3, floors=(floor,), load=None).desired_replicas == 8


@pytest.mark.parametrize(("replicas", "expected"), [(1, 16), (3, 10), (5, 6), (10, 3), (40, 2)])
def test_workers_share_the_budget(replicas: int, expected: int) -> None:
    policy = spec(minReplicas=replicas, maxReplicas=replicas,
                  workers={"totalBudget": 32, "min": 2, "max": 16})
    assert evaluate(policy, replicas, load=replicas * 100.0).workers == expected


def test_scale_events_and_history_are_recorded_for_the_next_evaluation() -> None:
    decision = evaluate(spec(), 3, load=500.0)
    assert decision.changed
    assert [(e.from_replicas, e.to_replicas) for e in decision.scale_events] == [(3, 5)]
    assert decision.recommendations[-1].replicas == 5


def test_workers_are_left_to_a_live_incident() -> None:
    policy = spec(minReplicas=2, workers={"totalBudget": 32, "min": 2, "max": 16})
    floor = ScaleFloor(replicas=8, until=T0 + timedelta(minutes=30), incident="tradesense/high-cpu-1")
    during = evaluate(policy, 8, floors=(floor,), load=800.0)
    assert during.workers is None
    assert "WORKERS left to the incident" in during.reason
    after = evaluate(policy, 8, now=T0 + timedelta(minutes=31), floors=(floor,), load=800.0)
    assert after.workers == 4


@pytest.mark.parametrize(
    ("overrides", "current", "load", "reason"),
    [
        ({}, 2, 2000.0, "load 1000/replica > 100/replica target; wants 20, scale-up rate allows 6: 2 → 6"),
        ({"maxReplicas": 5, "behavior": no_stabilization()}, 4, 900.0,
         "load 225/replica > 100/replica target; wants 9, capped at maxReplicas 5: 4 → 5"),
        ({"minReplicas": 3, "behavior": no_stabilization()}, 8, 100.0,
         "load 12.5/replica < 100/replica target; wants 1, held at the minimum 3: 8 → 3"),
        ({"behavior": no_stabilization(down={"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]})}, 8, 100.0,
         "load 12.5/replica < 100/replica target; wants 1, scale-down rate allows 6: 8 → 6"),
        ({"maxReplicas": 5}, 9, 900.0, "above maxReplicas 5: 9 → 5"),
    ],
)
def test_the_event_reason_says_what_limited_the_change(
    overrides: dict[str, Any], current: int, load: float, reason: str
) -> None:
    assert evaluate(spec(**overrides), current, load=load).reason == reason
