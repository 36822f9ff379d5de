"""One ScalingPolicy evaluation as a pure function: (samples, current replicas, spec, history, now) → decision.

Order of the steps, HPA v2 first and our additions marked (+):
1. effective bounds: minReplicas raised by (+) the open schedule window (capped at maxReplicas) and by
   (+) a live incident floor (which may also exceed maxReplicas — see floor.py); while that floor holds,
   WORKERS belongs to the incident too (the runbook's high-cpu mitigation sets WORKERS=2 with its scale-out);
2. a target scaled to zero by someone else while minReplicas > 0 means autoscaling is off (HPA
   "ScalingDisabled") — e.g. the runbook's restore procedure scales the backend to 0 on purpose;
3. a current count outside the bounds is brought inside directly, without rate limits (HPA);
4. per-metric recommendations (metrics.py), the largest wins; if any metric failed and the readable ones
   do not ask for more than the current count, nothing changes (HPA: never scale down on a partial view);
5. (+) fallback after `failureThreshold` consecutive failed evaluations: hold `fallback.replicas`, never
   below the current count unless `allowScaleDown`, and never below what readable metrics recommend;
6. stabilization windows, then rate policies, then the bounds (behavior.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tradesense_operator.api.v1alpha1.scaling import Recommendation, ScaleEvent, ScalingPolicySpec
from tradesense_operator.domain.scaling.behavior import resolve, scale_down_limit, scale_up_limit, stabilize
from tradesense_operator.domain.scaling.floor import ScaleFloor, highest_active
from tradesense_operator.domain.scaling.history import prune_recommendations, prune_scale_events
from tradesense_operator.domain.scaling.metrics import MetricReading, MetricRecommendation, recommend_for_metric
from tradesense_operator.domain.scaling.reason import describe_metric
from tradesense_operator.domain.scaling.schedule import schedule_floor
from tradesense_operator.domain.scaling.workers import workers_per_pod

NOT_EVALUATED = "not evaluated"


@dataclass(frozen=True)
class Verdict:
    """A condition's status, reason and message (the service turns it into a Condition)."""

    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class ScalingInput:
    """Everything one evaluation depends on."""

    spec: ScalingPolicySpec
    current_replicas: int
    readings: Mapping[str, MetricReading]
    now: datetime
    recommendations: Sequence[Recommendation] = ()
    scale_events: Sequence[ScaleEvent] = ()
    consecutive_failures: int = 0
    floors: Sequence[ScaleFloor] = ()


@dataclass(frozen=True)
class ScalingDecision:
    """The outcome: the replica count to set, why, and the new status fragments."""

    current_replicas: int
    desired_replicas: int
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricRecommendation, ...]
    able_to_scale: Verdict
    scaling_active: Verdict
    scaling_limited: Verdict
    fallback_active: Verdict
    consecutive_failures: int
    recommendations: tuple[Recommendation, ...]
    scale_events: tuple[ScaleEvent, ...]
    workers: int | None
    reason: str
    notes: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """Whether replicas must be written."""
        return self.desired_replicas != self.current_replicas


@dataclass
class _Bounds:
    low: int
    high: int
    low_reason: str = "TooFewReplicas"
    low_message: str = "the desired replica count is less than the minimum replica count"


def _bounds(inp: ScalingInput) -> tuple[_Bounds, list[str]]:
    spec, notes = inp.spec, []
    bounds = _Bounds(spec.min_replicas, spec.max_replicas)
    window = schedule_floor(spec.schedules, inp.now)
    if window is not None:
        raised = min(window.min_replicas, spec.max_replicas)
        if raised > bounds.low:
            bounds.low, bounds.low_reason = raised, "ScheduleFloor"
            bounds.low_message = f"schedule {window.name} holds at least {raised} replicas"
            notes.append(f"schedule {window.name} raises the minimum to {raised}")
    floor = highest_active(inp.floors, inp.now)
    if floor is not None and floor.replicas > bounds.low:
        bounds.low, bounds.low_reason = floor.replicas, "IncidentFloor"
        until = floor.until.strftime("%Y-%m-%dT%H:%M:%SZ")
        bounds.low_message = f"incident {floor.incident} holds at least {floor.replicas} replicas until {until}"
        bounds.high = max(bounds.high, floor.replicas)
        notes.append(f"incident {floor.incident} floor {floor.replicas} until {until}")
    return bounds, notes


def _failures_text(failed: Sequence[MetricRecommendation]) -> str:
    return "; ".join(f"{m.name}: {m.error}" for m in failed)


@dataclass
class _Proposal:
    replicas: int | None
    explanation: str
    active: Verdict
    fallback: Verdict


def _propose(inp: ScalingInput, results: Sequence[MetricRecommendation], failures: int) -> _Proposal:
    """Steps 4 and 5: what the metrics (or the fallback) ask for; None = no metric-driven decision."""
    spec, current = inp.spec, inp.current_replicas
    failed = [r for r in results if r.replicas is None]
    readable = [r for r in results if r.replicas is not None]
    best = max(readable, key=lambda r: r.replicas or 0) if readable else None
    best_replicas = best.replicas if best is not None else None
    by_name = {m.name: m for m in spec.metrics}
    proposal = _Proposal(
        replicas=best_replicas,
        explanation=describe_metric(by_name[best.name], best) if best is not None else "",
        active=(Verdict(False, "FailedGetMetrics", _failures_text(failed)) if failed else
                Verdict(True, "ValidMetricFound", f"the replica count is computed from {best.name if best else '-'}")),
        fallback=Verdict(False, "MetricsAvailable", "metrics are being read"),
    )
    if spec.fallback is not None and failures >= spec.fallback.failure_threshold:
        held = spec.fallback.replicas if spec.fallback.allow_scale_down else max(spec.fallback.replicas, current)
        proposal.replicas = max(held, best_replicas) if best_replicas is not None else held
        proposal.explanation = (f"fallback after {failures} failed evaluations ({_failures_text(failed)}), "
                                f"holding {proposal.replicas}")
        proposal.fallback = Verdict(True, "FallbackActive", proposal.explanation)
    elif failed and (best_replicas is None or best_replicas < current):
        proposal.replicas = None
        proposal.explanation = f"metrics unavailable ({_failures_text(failed)}), holding"
    return proposal


@dataclass
class _Normalized:
    desired: int
    able: Verdict
    limited: Verdict


def _normalize(
    proposal: int, inp: ScalingInput, bounds: _Bounds, history: list[Recommendation], notes: list[str]
) -> _Normalized:
    """Step 6: stabilization window, rate policies, bounds. Appends the raw proposal to `history`."""
    behavior = resolve(inp.spec.behavior)
    current, now, events = inp.current_replicas, inp.now, inp.scale_events
    result = _Normalized(current, Verdict(True, "ReadyForNewScale", "recommended size matches current size"),
                         Verdict(False, "DesiredWithinRange", "the desired count is within the acceptable range"))
    if not history and behavior.down.window_seconds > 0:
        history.append(Recommendation(timestamp=now, replicas=current))  # HPA: a new policy does not scale down at once
    stabilized = stabilize(proposal, current, history, behavior, now)
    history.append(Recommendation(timestamp=now, replicas=proposal))
    if stabilized != proposal:
        kind = "ScaleDownStabilized" if stabilized > proposal else "ScaleUpStabilized"
        result.able = Verdict(True, kind, f"recent recommendations keep {stabilized} instead of {proposal}")
        notes.append(f"stabilized at {stabilized} instead of {proposal}")
    result.desired = stabilized
    if stabilized > current:
        up = scale_up_limit(current, events, behavior.up, now)
        ceiling = min(bounds.high, up)
        if stabilized > ceiling:
            result.desired = ceiling
            notes.append(f"wants {stabilized}, " + (f"scale-up rate allows {up}" if up < bounds.high
                                                    else f"capped at maxReplicas {bounds.high}"))
            result.limited = (
                Verdict(True, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
                if up < bounds.high
                else Verdict(True, "TooManyReplicas", f"the desired replica count is more than the maximum {bounds.high}")
            )
    elif stabilized < current:
        down = scale_down_limit(current, events, behavior.down, now)
        floor = max(bounds.low, down)
        if stabilized < floor:
            result.desired = floor
            notes.append(f"wants {stabilized}, " + (f"scale-down rate allows {down}" if down > bounds.low
                                                    else f"held at the minimum {bounds.low}"))
            result.limited = (
                Verdict(True, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
                if down > bounds.low
                else Verdict(True, bounds.low_reason, bounds.low_message)
            )
    if result.desired < bounds.low:
        result.desired = bounds.low
        result.limited = Verdict(True, bounds.low_reason, bounds.low_message)
    return result


def decide(inp: ScalingInput) -> ScalingDecision:
    """Evaluate the policy once."""
    spec, now, current = inp.spec, inp.now, inp.current_replicas
    behavior = resolve(spec.behavior)
    bounds, notes = _bounds(inp)
    results = tuple(
        recommend_for_metric(
            m.name, inp.readings.get(m.name) or MetricReading(None, NOT_EVALUATED), m.target, current, spec.tolerance
        )
        for m in spec.metrics
    )
    failures = inp.consecutive_failures + 1 if any(r.replicas is None for r in results) else 0
    proposal = _propose(inp, results, failures)
    history = list(inp.recommendations)
    events = list(inp.scale_events)
    able = Verdict(True, "ReadyForNewScale", "recommended size matches current size")
    limited = Verdict(False, "DesiredWithinRange", "the desired count is within the acceptable range")
    active, explanation, desired = proposal.active, proposal.explanation, current
    disabled = current == 0 and spec.min_replicas != 0
    if disabled:
        active = Verdict(False, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
        explanation = "target scaled to zero: autoscaling disabled"
    elif current > bounds.high:
        desired = bounds.high
        limited = Verdict(True, "TooManyReplicas", f"current replicas above the maximum {bounds.high}")
        explanation = f"above maxReplicas {bounds.high}"
    else:
        if proposal.replicas is not None:
            normalized = _normalize(proposal.replicas, inp, bounds, history, notes)
            desired, able, limited = normalized.desired, normalized.able, normalized.limited
        if current < bounds.low:
            # (3) below the floor: straight to it (or higher, if the metrics already asked for more).
            desired = max(desired, bounds.low)
            limited = Verdict(True, bounds.low_reason, bounds.low_message)
    if desired != current:
        direction = "up" if desired > current else "down"
        able = Verdict(True, "SucceededRescale", f"scaling {direction} from {current} to {desired}")
        events.append(ScaleEvent(timestamp=now, from_replicas=current, to_replicas=desired))

    # A live incident owns the pods' WORKERS too (high-cpu sets WORKERS=2 next to its scale-out): leave it alone.
    workers: int | None = None
    if spec.workers is not None:
        if highest_active(inp.floors, now) is not None:
            notes.append(f"{spec.workers.env_name} left to the incident while its floor holds")
        else:
            workers = workers_per_pod(spec.workers, desired)

    parts = [p for p in (explanation, *notes) if p]
    return ScalingDecision(
        current_replicas=current,
        desired_replicas=desired,
        min_replicas=bounds.low,
        max_replicas=bounds.high,
        metrics=results,
        able_to_scale=able,
        scaling_active=active,
        scaling_limited=limited,
        fallback_active=proposal.fallback,
        consecutive_failures=failures,
        recommendations=tuple(prune_recommendations(history, behavior.longest_window, now)),
        scale_events=tuple(prune_scale_events(events, behavior.longest_period, now)),
        workers=workers,
        reason=f"{'; '.join(parts) or 'no change'}: {current} → {desired}",
        notes=tuple(notes),
    )
