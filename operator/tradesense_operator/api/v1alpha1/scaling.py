"""ScalingPolicy (short name `sp`): Prometheus-driven scaling with HPA v2 semantics.

Owns the spec/status schema and its cross-field model checks; must not compute recommendations
(domain.scaling) or do any I/O.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import ConfigDict, Field, model_validator

from tradesense_operator.api.v1alpha1.common import ApiModel, Condition, Name, list_map

KIND = "ScalingPolicy"
PLURAL = "scalingpolicies"
SINGULAR = "scalingpolicy"
SHORT_NAMES = ["sp"]

_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"]*"'
SELECTOR = rf"^{_MATCHER}(\s*,{_MATCHER})*\s*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"


class MetricPreset(StrEnum):
    """Runbook metrics with built-in PromQL (see domain.scaling presets)."""

    REQUEST_RATE_PER_REPLICA = "request-rate"
    ERROR_RATE = "error-rate"
    P95_LATENCY = "p95-latency"
    CPU = "cpu"
    DB_CONNECTIONS_ACTIVE = "db-connections-active"


class TargetType(StrEnum):
    """Value: compare the query result as is; AverageValue: divide by current replicas first."""

    VALUE = "Value"
    AVERAGE_VALUE = "AverageValue"


class PolicyType(StrEnum):
    """HPA scaling policy types."""

    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    """HPA selectPolicy."""

    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


class TargetRef(ApiModel):
    """The scaled workload (a Deployment)."""

    api_version: str = Field(default="apps/v1", pattern=r"^apps/v1$", description="apps/v1.")
    kind: str = Field(default="Deployment", pattern=r"^Deployment$", description="Deployment.")
    name: Name = Field(description="Deployment name in the policy's namespace.")


class MetricTarget(ApiModel):
    """Target of one metric."""

    type: TargetType = Field(default=TargetType.AVERAGE_VALUE, description="Value or AverageValue.")
    value: float = Field(gt=0, description="Target value (per replica for AverageValue).")


METRIC_EXACTLY_ONE = "exactly one of preset or query must be set"
MIN_LE_MAX = "minReplicas must be less than or equal to maxReplicas"
FALLBACK_IN_BOUNDS = "fallback.replicas must lie within [minReplicas, maxReplicas]"
WORKERS_MIN_LE_MAX = "workers.min must be less than or equal to workers.max"


class MetricSpec(ApiModel):
    """One metric: a runbook preset or a raw PromQL query (exactly one)."""

    # The same rule in-cluster (CEL in the CRD) and in the CLI/handlers (the validator below).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.preset) != has(self.query)", "message": METRIC_EXACTLY_ONE},
    ]})

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                      description="Name shown in status and events.")
    preset: MetricPreset | None = Field(default=None, description="Built-in runbook metric.")
    query: str | None = Field(default=None, min_length=1, max_length=4096,
                              description="PromQL returning one scalar or single-element vector.")
    selector: str | None = Field(
        default=None, max_length=1024, pattern=SELECTOR,
        description="Presets only: label matchers added to every series selector, "
        'e.g. namespace="tradesense",job="backend".',
    )
    window: str = Field(default="1m", pattern=r"^[1-9][0-9]*[smh]$",
                        description="Presets only: rate()/histogram window, e.g. 1m, 5m (the runbook's dashboards use 5m).")
    target: MetricTarget = Field(
        description="Target value. Totals (request-rate, cpu, db-connections-active) usually use AverageValue "
        "(per replica); ratios (p95-latency, error-rate) must use Value."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        if (self.preset is None) == (self.query is None):
            raise ValueError(METRIC_EXACTLY_ONE)
        return self


class ScalingPolicyRule(ApiModel):
    """HPA HPAScalingPolicy."""

    type: PolicyType = Field(description="Pods or Percent.")
    value: int = Field(gt=0, description="Pods or percent allowed per period.")
    period_seconds: int = Field(gt=0, le=1800, description="Window the value applies to.")


class ScalingRules(ApiModel):
    """HPA HPAScalingRules for one direction."""

    stabilization_window_seconds: int | None = Field(
        default=None, ge=0, le=3600, description="Look-back window (HPA default: up 0 s, down 300 s)."
    )
    select_policy: SelectPolicy = Field(default=SelectPolicy.MAX, description="Max, Min or Disabled.")
    policies: list[ScalingPolicyRule] | None = Field(default=None, description="Rate policies (HPA defaults if unset).")


class Behavior(ApiModel):
    """HPA behavior."""

    scale_up: ScalingRules | None = Field(default=None, description="Scale-up rules.")
    scale_down: ScalingRules | None = Field(default=None, description="Scale-down rules.")


class FallbackSpec(ApiModel):
    """What to do when metrics cannot be read."""

    failure_threshold: int = Field(default=3, ge=1, le=100, description="Consecutive failed evaluations before fallback.")
    replicas: int = Field(ge=0, description="Replicas to hold during fallback.")
    allow_scale_down: bool = Field(default=False,
                                   description="May fallback lower replicas below the current count?")


class ScheduleWindow(ApiModel):
    """A cron window that raises minReplicas (e.g. US market hours)."""

    name: str = Field(min_length=1, max_length=63, description="Window name.")
    start: str = Field(pattern=CRON, description="Cron when the window opens, e.g. '30 9 * * 1-5'.")
    end: str = Field(pattern=CRON, description="Cron when it closes, e.g. '0 16 * * 1-5'.")
    time_zone: str = Field(default="UTC", max_length=64, description="IANA time zone, e.g. America/New_York.")
    min_replicas: int = Field(ge=0, description="minReplicas while the window is open.")


class WorkersSpec(ApiModel):
    """Set an env var (WORKERS) from replicas: per-pod workers = clamp(totalBudget // replicas, min, max)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.min <= self.max", "message": WORKERS_MIN_LE_MAX, "fieldPath": ".min"},
    ]})

    env_name: str = Field(default="WORKERS", pattern=r"^[A-Z_][A-Z0-9_]*$", description="Env var name.")
    container: str | None = Field(default=None, description="Container (default: the first).")
    total_budget: int = Field(gt=0, description="Worker threads across all replicas (e.g. a DB connection budget).")
    min: int = Field(default=1, ge=1, description="Lower bound per pod.")
    max: int = Field(default=16, ge=1, description="Upper bound per pod.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(WORKERS_MIN_LE_MAX)
        return self


class VerticalSpec(ApiModel):
    """Bounded requests/limits changes for one container."""

    container: str | None = Field(default=None, description="Container (default: the first).")
    memory_query: str = Field(min_length=1, max_length=4096,
                              description="PromQL giving the peak working-set memory of one pod, in bytes.")
    min_memory: str = Field(default="512Mi", pattern=QUANTITY, description="Lowest memory limit.")
    max_memory: str = Field(default="4Gi", pattern=QUANTITY, description="Highest memory limit.")
    headroom_percent: int = Field(default=30, ge=0, le=400, description="Limit = usage × (1 + headroom/100).")
    min_change_percent: int = Field(
        default=10, ge=1, le=100,
        description="Change the limit only when the recommendation differs by more than this (each change rolls the pods).",
    )
    request_percent: int | None = Field(
        default=50, ge=1, le=100,
        description="Set the memory request to this percent of the new limit, written together with it (the "
                    "runbook's --requests=memory=1Gi --limits=memory=2Gi is 50); null leaves requests alone.",
    )


class ScalingPolicySpec(ApiModel):
    """Desired scaling behaviour."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.minReplicas <= self.maxReplicas", "message": MIN_LE_MAX, "fieldPath": ".minReplicas"},
        {"rule": "!has(self.fallback) || (self.fallback.replicas >= self.minReplicas"
                 " && self.fallback.replicas <= self.maxReplicas)",
         "message": FALLBACK_IN_BOUNDS, "fieldPath": ".fallback.replicas"},
    ]})

    target_ref: TargetRef = Field(description="Deployment to scale.")
    min_replicas: int = Field(default=1, ge=0, le=10000, description="Lower bound.")
    max_replicas: int = Field(ge=1, le=10000, description="Upper bound.")
    metrics: list[MetricSpec] = Field(min_length=1, max_length=10, description="Metrics; the largest recommendation wins.")
    polling_interval_seconds: int = Field(default=30, ge=1, le=3600, description="Evaluation period.")
    prometheus_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\s]+$",
        description="Prometheus base URL; the operator's TSO_PROMETHEUS_URL when omitted.",
    )
    tolerance: float = Field(default=0.1, ge=0, lt=1, description="No change while |ratio − 1| ≤ tolerance.")
    behavior: Behavior = Field(default_factory=Behavior, description="HPA behavior.")
    fallback: FallbackSpec | None = Field(default=None, description="Replicas when metrics fail.")
    schedules: list[ScheduleWindow] = Field(default_factory=list, max_length=20, description="Floor-raising windows.")
    workers: WorkersSpec | None = Field(default=None, description="WORKERS env from replicas.")
    vertical: VerticalSpec | None = Field(default=None, description="Bounded vertical scaling.")

    @model_validator(mode="after")
    def _replica_bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(MIN_LE_MAX)
        if self.fallback is not None and not self.min_replicas <= self.fallback.replicas <= self.max_replicas:
            raise ValueError(FALLBACK_IN_BOUNDS)
        return self


class MetricStatus(ApiModel):
    """Last evaluation of one metric."""

    name: str = Field(description="Metric name.")
    value: float | None = Field(
        default=None,
        description="Observed value: the query result for Value, the per-replica average for AverageValue; "
        "absent when the query failed (never reported as zero).",
    )
    target: float = Field(description="Target value (per replica for AverageValue).")
    recommendation: int | None = Field(default=None, description="Replicas this metric alone recommends.")
    error: str | None = Field(
        default=None,
        description="Why no value: empty result, NaN/Inf, several series, Prometheus unreachable, query rejected.",
    )


class Recommendation(ApiModel):
    """A past recommendation, kept for the stabilization window."""

    timestamp: datetime = Field(description="When the recommendation was made.")
    replicas: int = Field(ge=0, description="Replicas recommended then, before stabilization and rate limits.")


class ScaleEvent(ApiModel):
    """A past scale change, kept for rate policies."""

    timestamp: datetime = Field(description="When the replicas were changed.")
    from_replicas: int = Field(ge=0, description="Replicas before the change.")
    to_replicas: int = Field(ge=0, description="Replicas after the change.")


class ScalingPolicyStatus(ApiModel):
    """Observed state, owned by the operator."""

    current_replicas: int | None = Field(default=None, description="Replicas at the last evaluation.")
    desired_replicas: int | None = Field(default=None, description="Replicas decided at the last evaluation.")
    last_scale_time: datetime | None = Field(default=None, description="Last change of replicas.")
    last_evaluation_time: datetime | None = Field(default=None, description="Last evaluation.")
    current_metrics: list[MetricStatus] = Field(default_factory=list, description="Per-metric results.")
    recommendations: list[Recommendation] = Field(default_factory=list, max_length=500,
                                                  description="Bounded history for stabilization.")
    scale_events: list[ScaleEvent] = Field(default_factory=list, max_length=500,
                                           description="Bounded history for rate policies.")
    consecutive_failures: int = Field(default=0, ge=0, description="Failed evaluations in a row.")
    observed_generation: int | None = Field(default=None, description="Spec generation last acted on.")
    conditions: list[Condition] = Field(default_factory=list,
                                        description="AbleToScale, ScalingActive, ScalingLimited, FallbackActive.",
                                        json_schema_extra=list_map("type"))


class ScalingPolicy(ApiModel):
    """Top-level object."""

    api_version: str = Field(default="ops.tradesense.io/v1alpha1", description="API version.")
    kind: str = Field(default=KIND, description="Kind.")
    metadata: dict[str, object] = Field(default_factory=dict, description="Object metadata.")
    spec: ScalingPolicySpec = Field(description="Desired behaviour.")
    status: ScalingPolicyStatus | None = Field(default=None, description="Observed state.")
