"""HPA behavior: defaults, stabilization windows and rate policies (Pods/Percent per period).

Semantics follow the Kubernetes HPA controller:
- stabilization: scaling up uses the MIN of the recommendations inside the up window (and the current
  one), scaling down the MAX inside the down window; the result never crosses the current count;
- rate: the replica count at the start of each policy's period is reconstructed from the scale events
  inside it; Pods adds/removes `value`, Percent multiplies (up: rounded up, down: truncated);
  selectPolicy Max takes the policy allowing the biggest change, Min the smallest, Disabled none;
- defaults when unset: up window 0 s, Percent 100/15 s and Pods 4/15 s, Max; down window 300 s,
  Percent 100/15 s, Max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradesense_operator.api.v1alpha1.scaling import (
    Behavior,
    PolicyType,
    Recommendation,
    ScaleEvent,
    ScalingPolicyRule,
    ScalingRules,
    SelectPolicy,
)

DEFAULT_UP_WINDOW = 0
DEFAULT_DOWN_WINDOW = 300
DEFAULT_UP_POLICIES = (
    ScalingPolicyRule(type=PolicyType.PERCENT, value=100, period_seconds=15),
    ScalingPolicyRule(type=PolicyType.PODS, value=4, period_seconds=15),
)
DEFAULT_DOWN_POLICIES = (ScalingPolicyRule(type=PolicyType.PERCENT, value=100, period_seconds=15),)


@dataclass(frozen=True)
class Rules:
    """One direction's rules with the HPA defaults filled in."""

    window_seconds: int
    select: SelectPolicy
    policies: tuple[ScalingPolicyRule, ...]


@dataclass(frozen=True)
class ResolvedBehavior:
    """Both directions, defaults applied."""

    up: Rules
    down: Rules

    @property
    def longest_window(self) -> int:
        """How much recommendation history matters."""
        return max(self.up.window_seconds, self.down.window_seconds)

    @property
    def longest_period(self) -> int:
        """How much scale-event history matters."""
        return max((p.period_seconds for p in (*self.up.policies, *self.down.policies)), default=0)


def _rules(given: ScalingRules | None, window: int, policies: tuple[ScalingPolicyRule, ...]) -> Rules:
    if given is None:
        return Rules(window, SelectPolicy.MAX, policies)
    return Rules(
        window_seconds=window if given.stabilization_window_seconds is None else given.stabilization_window_seconds,
        select=given.select_policy,
        policies=policies if not given.policies else tuple(given.policies),
    )


def resolve(behavior: Behavior) -> ResolvedBehavior:
    """Fill unset fields with the HPA's defaults, per field (as the API server defaults an HPA)."""
    return ResolvedBehavior(
        up=_rules(behavior.scale_up, DEFAULT_UP_WINDOW, DEFAULT_UP_POLICIES),
        down=_rules(behavior.scale_down, DEFAULT_DOWN_WINDOW, DEFAULT_DOWN_POLICIES),
    )


def stabilize(
    proposal: int, current: int, history: Sequence[Recommendation], behavior: ResolvedBehavior, now: datetime
) -> int:
    """The stabilized recommendation given earlier (unstabilized) recommendations."""
    up_cutoff = now - timedelta(seconds=behavior.up.window_seconds)
    down_cutoff = now - timedelta(seconds=behavior.down.window_seconds)
    up_limit = proposal
    down_limit = proposal
    for rec in history:
        if rec.timestamp > up_cutoff:
            up_limit = min(up_limit, rec.replicas)
        if rec.timestamp > down_cutoff:
            down_limit = max(down_limit, rec.replicas)
    result = max(current, up_limit)
    return min(result, down_limit)


def _changes_in_period(events: Sequence[ScaleEvent], period: int, now: datetime) -> tuple[int, int]:
    """Replicas added and removed by scale events strictly inside the last `period` seconds."""
    cutoff = now - timedelta(seconds=period)
    added = removed = 0
    for event in events:
        if event.timestamp > cutoff:
            delta = event.to_replicas - event.from_replicas
            if delta > 0:
                added += delta
            else:
                removed -= delta
    return added, removed


def _policy_proposals(current: int, events: Sequence[ScaleEvent], rules: Rules, now: datetime, *, up: bool) -> list[int]:
    """Per policy: the count it allows, starting from the count at the beginning of its period."""
    proposals: list[int] = []
    for policy in rules.policies:
        added, removed = _changes_in_period(events, policy.period_seconds, now)
        start = current - added + removed
        if policy.type == PolicyType.PODS:
            proposals.append(start + policy.value if up else start - policy.value)
        elif up:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))  # rounded up, or +1 % would never add a pod
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    return proposals


def scale_up_limit(current: int, events: Sequence[ScaleEvent], rules: Rules, now: datetime) -> int:
    """The most replicas the up policies allow now (never below current)."""
    if rules.select == SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = _policy_proposals(current, events, rules, now, up=True)
    limit = min(proposals) if rules.select == SelectPolicy.MIN else max(proposals)
    return max(limit, current)


def scale_down_limit(current: int, events: Sequence[ScaleEvent], rules: Rules, now: datetime) -> int:
    """The fewest replicas the down policies allow now (never above current)."""
    if rules.select == SelectPolicy.DISABLED or not rules.policies:
        return current
    proposals = _policy_proposals(current, events, rules, now, up=False)
    limit = max(proposals) if rules.select == SelectPolicy.MIN else min(proposals)
    return min(limit, current)
