"""Stabilization windows and rate policies, table-tested against the HPA documentation's behavior examples.

Covers: defaults (up: 100 %/4 pods per 15 s, Max; down: 300 s window, 100 %/15 s), the scale-down
Percent/Pods example (80 -> 72 -> 64), selectPolicy Min and Disabled, "4 pods per 60 s", a 900 % scale-up
policy, the scale-down stabilization window (max of recent recommendations), and the up window (min).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.scaling.builders import no_stabilization, spec

from tradesense_operator.api.v1alpha1.scaling import Behavior, Recommendation, ScaleEvent, SelectPolicy
from tradesense_operator.domain.scaling.behavior import resolve, scale_down_limit, scale_up_limit, stabilize
from tradesense_operator.domain.scaling.decision import ScalingDecision, ScalingInput, decide
from tradesense_operator.domain.scaling.metrics import MetricReading

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(policy: Any, current: int, load: float, now: datetime, prior: ScalingDecision | None = None) -> ScalingDecision:
    """One evaluation with the `load` metric (AverageValue 100: a total of N×100 asks for N), history from `prior`."""
    return decide(ScalingInput(
        spec=policy, current_replicas=current, readings={"load": MetricReading(load)}, now=now,
        recommendations=prior.recommendations if prior else (), scale_events=prior.scale_events if prior else (),
    ))


def test_defaults_equal_the_hpa_defaults() -> None:
    resolved = resolve(Behavior())
    assert resolved.up.window_seconds == 0
    assert resolved.down.window_seconds == 300
    assert resolved.up.select == resolved.down.select == SelectPolicy.MAX
    up = {(p.type.value, p.value, p.period_seconds) for p in resolved.up.policies}
    assert up == {("Percent", 100, 15), ("Pods", 4, 15)}
    assert {(p.type.value, p.value, p.period_seconds) for p in resolved.down.policies} == {("Percent", 100, 15)}


def test_partially_set_rules_keep_the_other_defaults() -> None:
    resolved = resolve(Behavior.model_validate({"scaleDown": {"selectPolicy": "Min"}}))
    assert resolved.down.window_seconds == 300
    assert resolved.down.select == SelectPolicy.MIN
    assert [p.value for p in resolved.down.policies] == [100]


@pytest.mark.parametrize(
    ("current", "policies", "select", "expected"),
    [
        # HPA docs: Pods 4/60 s and Percent 10/60 s: at 80 replicas 10 % = 8 pods is the bigger change
        (80, [("Pods", 4, 60), ("Percent", 10, 60)], "Max", 72),
        (72, [("Pods", 4, 60), ("Percent", 10, 60)], "Max", 64),    # next period: 7.2 -> 8 pods removed
        (40, [("Pods", 4, 60), ("Percent", 10, 60)], "Max", 36),
        (30, [("Pods", 4, 60), ("Percent", 10, 60)], "Max", 26),    # below 40 the Pods policy is bigger
        (80, [("Pods", 4, 60), ("Percent", 10, 60)], "Min", 76),    # Min: the smallest change
        (80, [("Pods", 4, 60), ("Percent", 10, 60)], "Disabled", 80),
        (5, [("Percent", 100, 15)], "Max", 0),                      # default down policy: anything goes
    ],
)
def test_scale_down_limit(current: int, policies: list[tuple[str, int, int]], select: str, expected: int) -> None:
    rules = resolve(Behavior.model_validate({"scaleDown": {
        "selectPolicy": select, "policies": [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]}})).down
    assert scale_down_limit(current, [], rules, T0) == expected


@pytest.mark.parametrize(
    ("current", "behavior", "expected"),
    [
        (2, {}, 6),                                                                # defaults: max(2×2, 2+4)
        (10, {}, 20),                                                              # defaults: max(20, 14)
        (1, {"policies": [{"type": "Percent", "value": 900, "periodSeconds": 60}]}, 10),  # HPA docs: 10× per minute
        (3, {"selectPolicy": "Min"}, 6),                                           # Min: min(6, 7)
        (3, {"selectPolicy": "Disabled"}, 3),
        (3, {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}, 4),  # up rounds up: 3.3 -> 4
    ],
)
def test_scale_up_limit(current: int, behavior: dict[str, Any], expected: int) -> None:
    rules = resolve(Behavior.model_validate({"scaleUp": behavior})).up
    assert scale_up_limit(current, [], rules, T0) == expected


def test_events_inside_the_period_count_against_the_limit() -> None:
    rules = resolve(Behavior()).up
    events = [ScaleEvent(timestamp=at(-10), from_replicas=2, to_replicas=6)]
    assert scale_up_limit(6, events, rules, T0) == 6       # the period started at 2: still max(4, 6)
    assert scale_up_limit(6, events, rules, at(6)) == 12   # 16 s later the event left the 15 s period


def test_scale_down_four_pods_per_minute_over_several_evaluations() -> None:
    policy = spec(behavior=no_stabilization(down={"policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]}))
    first = run(policy, 10, 10, at(0))                      # load asks for 1 replica
    assert first.desired_replicas == 6
    assert first.scaling_limited.reason == "ScaleDownLimit"
    second = run(policy, 6, 10, at(30), first)              # same minute: 4 pods already removed
    assert second.desired_replicas == 6
    third = run(policy, 6, 10, at(61), second)
    assert third.desired_replicas == 2
    fourth = run(policy, 2, 10, at(122), third)
    assert fourth.desired_replicas == 1


def test_default_scale_up_doubles_or_adds_four_per_fifteen_seconds() -> None:
    policy = spec()
    first = run(policy, 2, 4000, at(0))                    # load asks for 40
    assert first.desired_replicas == 6
    assert first.scaling_limited.reason == "ScaleUpLimit"
    assert run(policy, 6, 4000, at(10), first).desired_replicas == 6
    second = run(policy, 6, 4000, at(16), first)
    assert second.desired_replicas == 12
    third = run(policy, 12, 4000, at(32), second)
    assert third.desired_replicas == 24
    assert run(policy, 24, 4000, at(48), third).desired_replicas == 40


@pytest.mark.parametrize(
    ("history", "proposal", "current", "expected"),
    [
        ([(-200, 7), (-100, 5)], 4, 7, 7),    # scale down: the max of the last 300 s (7) wins
        ([(-400, 7), (-100, 5)], 4, 7, 5),    # 7 left the window: 5
        ([(-400, 9), (-350, 8)], 4, 7, 4),    # nothing inside: the proposal
        ([(-100, 3)], 8, 5, 8),               # scaling up: no up window by default
    ],
)
def test_scale_down_stabilization_uses_the_highest_recent_recommendation(
    history: list[tuple[int, int]], proposal: int, current: int, expected: int
) -> None:
    recs = [Recommendation(timestamp=at(s), replicas=r) for s, r in history]
    assert stabilize(proposal, current, recs, resolve(Behavior()), T0) == expected


def test_scale_up_stabilization_uses_the_lowest_recent_recommendation() -> None:
    behavior = resolve(Behavior.model_validate({"scaleUp": {"stabilizationWindowSeconds": 60}}))
    recs = [Recommendation(timestamp=at(-50), replicas=4), Recommendation(timestamp=at(-20), replicas=9)]
    assert stabilize(10, 3, recs, behavior, T0) == 4
    assert stabilize(10, 5, recs, behavior, T0) == 5   # never below current while scaling up


def test_load_drop_scales_down_only_after_the_300_second_window() -> None:
    policy = spec(minReplicas=2)
    decision = run(policy, 8, 800, at(0))                  # steady: 8 replicas at target
    assert decision.desired_replicas == 8
    for t in range(15, 300, 15):                            # load halves at t=15
        decision = run(policy, 8, 400, at(t), decision)
        assert decision.desired_replicas == 8, t
        assert decision.able_to_scale.reason == "ScaleDownStabilized"
    decision = run(policy, 8, 400, at(301), decision)       # the t=0 recommendation of 8 has left the window
    assert decision.desired_replicas == 4


def test_a_new_policy_does_not_scale_down_before_the_window() -> None:
    """The HPA seeds the window with the current count; so do we, from an empty status."""
    policy = spec()
    first = run(policy, 8, 100, at(0))
    assert first.desired_replicas == 8
    assert run(policy, 8, 100, at(299), first).desired_replicas == 8
    assert run(policy, 8, 100, at(301), first).desired_replicas == 1


def test_stabilization_is_per_direction_so_a_spike_still_scales_up_at_once() -> None:
    policy = spec()
    first = run(policy, 4, 400, at(0))
    assert run(policy, 4, 800, at(15), first).desired_replicas == 8
