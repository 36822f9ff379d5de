"""Checks neither the CRD schema nor the model validators express: each names the field.

(minReplicas <= maxReplicas, fallback within bounds, exactly one of preset/query and workers.min <= max are
enforced by the API model and its CEL rules, so a parsed spec already satisfies them.)
Must not do I/O: a metric's PromQL is resolved here (preset or raw), never run.
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicySpec
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec
from tradesense_operator.domain.scaling.presets import metric_query
from tradesense_operator.domain.scaling.schedule import check_cron, zone
from tradesense_operator.domain.scaling.vertical import parse_bytes


def validate_spec(spec: ScalingPolicySpec) -> None:
    """Raise InvalidScalingSpec for the first unusable field."""
    seen: set[str] = set()
    for i, metric in enumerate(spec.metrics):
        if metric.name in seen:
            raise InvalidScalingSpec(f"spec.metrics[{i}].name", f"duplicate metric name {metric.name!r}")
        seen.add(metric.name)
        metric_query(metric, f"spec.metrics[{i}]")
    for i, window in enumerate(spec.schedules):
        zone(window.time_zone, f"spec.schedules[{i}].timeZone")
        check_cron(window.start, f"spec.schedules[{i}].start")
        check_cron(window.end, f"spec.schedules[{i}].end")
        if window.min_replicas > spec.max_replicas:
            raise InvalidScalingSpec(
                f"spec.schedules[{i}].minReplicas", f"{window.min_replicas} exceeds maxReplicas {spec.max_replicas}"
            )
    if spec.vertical is not None:
        low = parse_bytes(spec.vertical.min_memory, "spec.vertical.minMemory")
        high = parse_bytes(spec.vertical.max_memory, "spec.vertical.maxMemory")
        if low > high:
            raise InvalidScalingSpec("spec.vertical.minMemory", f"{spec.vertical.min_memory} exceeds maxMemory")
