"""TradeSenseIncident (short name `tsi`): one runbook procedure, executed as checkpointed steps.

The spec says what happened and what is allowed (runbook, target, approvals, dry run); the status
records the frozen plan and every step's progress so `kubectl describe tsi` reads like the runbook.

Owns the wire format and its field-level validation; must not hold engine logic (domain/incident,
services/incidents) or do I/O.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from tradesense_operator.api.v1alpha1.common import (
    DNS_LABEL,
    ApiModel,
    Condition,
    DatabaseConnection,
    Name,
    RedisConnection,
    SecretKeyRef,
    list_map,
)

KIND = "TradeSenseIncident"
PLURAL = "tradesenseincidents"
SINGULAR = "tradesenseincident"
SHORT_NAMES = ["tsi"]

StepId = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class Runbook(StrEnum):
    """Named procedures from the TradeSense runbook, plus `custom` for an explicit step list."""

    SITE_DOWN = "site-down"
    AUTH_FAILURE = "auth-failure"
    PERFORMANCE_DEGRADATION = "performance-degradation"
    HIGH_CPU = "high-cpu"
    HIGH_MEMORY = "high-memory"
    SLOW_QUERIES = "slow-queries"
    COMPLETE_FAILURE = "complete-failure"
    DATA_CORRUPTION = "data-corruption"
    RESTORE_DATABASE = "restore-database"
    SECURITY_BREACH = "security-breach"
    HIGH_ERROR_RATE = "high-error-rate"
    DB_POOL_EXHAUSTED = "db-pool-exhausted"
    CACHE_HIT_RATE_LOW = "cache-hit-rate-low"
    DISK_SPACE_LOW = "disk-space-low"
    CERTIFICATE_EXPIRING = "certificate-expiring"
    CUSTOM = "custom"


class Severity(StrEnum):
    """Runbook severity levels; each has a response time (P1 15 min, P2 1 h, P3 4 h, P4 24 h)."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class StepAction(StrEnum):
    """Every action the step engine knows; runbooks are plans of these."""

    HTTP_PROBE = "http-probe"
    CHECK_NODES = "check-nodes"
    CHECK_PODS = "check-pods"
    PG_ISREADY = "pg-isready"
    ROLLOUT_RESTART = "rollout-restart"
    ROLLOUT_UNDO = "rollout-undo"
    ROLLOUT_STATUS = "rollout-status"
    SCALE = "scale"
    SET_ENV = "set-env"
    SET_RESOURCES = "set-resources"
    DELETE_PODS = "delete-pods"
    WAIT_PODS_READY = "wait-pods-ready"
    SWITCH_SERVICE_SELECTOR = "switch-service-selector"
    DR_FAILOVER = "dr-failover"
    SECRET_PRESENT = "secret-present"
    SECRET_ROTATE = "secret-rotate"
    REDIS_SESSION_COUNT = "redis-session-count"
    REDIS_DELETE_KEY = "redis-delete-key"
    REDIS_DELETE_PATTERN = "redis-delete-pattern"
    REDIS_FLUSHALL = "redis-flushall"
    REDIS_BIGKEYS = "redis-bigkeys"
    REDIS_INFO = "redis-info"
    PG_SLOW_QUERIES = "pg-slow-queries"
    PG_SET_LOG_MIN_DURATION = "pg-set-log-min-duration"
    PG_ANALYZE = "pg-analyze"
    PG_MISSING_INDEXES = "pg-missing-indexes"
    PG_CREATE_INDEX = "pg-create-index"
    PG_IDLE_IN_TRANSACTION = "pg-idle-in-transaction"
    PG_DAMAGE_ASSESSMENT = "pg-damage-assessment"
    PG_DISK_USAGE = "pg-disk-usage"
    PG_TERMINATE_CONNECTIONS = "pg-terminate-connections"
    BACKUP_SAFETY = "backup-safety"
    BACKUP_RESTORE = "backup-restore"
    LOG_SCAN = "log-scan"
    CERTIFICATE_CHECK = "certificate-check"
    SMOKE_TEST = "smoke-test"
    NOTIFY = "notify"


class IncidentPhase(StrEnum):
    """Lifecycle of an incident; terminal phases are Succeeded, Failed and Cancelled."""

    PENDING = "Pending"
    PLANNING = "Planning"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    BLOCKED = "Blocked"
    CANCELLED = "Cancelled"


class StepState(StrEnum):
    """Progress of one step; a dry run ends every step in WouldRun."""

    PENDING = "Pending"
    AWAITING_APPROVAL = "AwaitingApproval"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    WOULD_RUN = "WouldRun"
    CANCELLED = "Cancelled"


ParamValue = str | int | float | bool


class IncidentTarget(ApiModel):
    """Where the runbook acts; defaults are the runbook's own names."""

    namespace: Annotated[str, Field(max_length=63, pattern=DNS_LABEL)] = Field(
        default="tradesense", description="Namespace of the TradeSense workloads."
    )
    backend: Name = Field(default="backend", description="Backend API Deployment.")
    frontend: Name = Field(default="frontend", description="Frontend Deployment.")
    postgres: Name = Field(default="postgres", description="PostgreSQL workload (its pods carry app=<name>).")
    redis: Name = Field(default="redis", description="Redis workload (its pods carry app=<name>).")
    app_label: str = Field(default="app", max_length=63, description="Label key selecting a workload's pods.")
    api_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://",
        description="Base URL of the TradeSense API for probes and smoke tests, e.g. http://backend.tradesense:8000.",
    )
    database: DatabaseConnection | None = Field(default=None, description="PostgreSQL connection for checks.")
    redis_connection: RedisConnection | None = Field(default=None, description="Redis connection for cache steps.")
    signing_secret: SecretKeyRef = Field(
        default_factory=lambda: SecretKeyRef(name="tradesense-secrets", key="jwt-secret-key"),
        description="Secret key holding the JWT signing key (checked and rotated, never read into logs).",
    )


PITR_ONE_SOURCE = "give at most one of backupId, targetTime and targetLSN"


class IncidentParameters(ApiModel):
    """Per-runbook inputs; each runbook documents which it reads and their defaults."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "(has(self.backupId) ? 1 : 0) + (has(self.targetTime) ? 1 : 0) + (has(self.targetLSN) ? 1 : 0) <= 1",
         "message": PITR_ONE_SOURCE},
    ]})

    user_id: str | None = Field(default=None, max_length=256, pattern=r"^[A-Za-z0-9_.@:-]+$",
                                description="User whose session to reset (auth-failure).")
    cache_key_pattern: str = Field(default="cache:analytics:*", min_length=1, max_length=256,
                                   description="Redis key pattern to clear (performance, cache steps).")
    session_key_pattern: str = Field(default="session:*", min_length=1, max_length=256,
                                     description="Redis key pattern of user sessions.")
    replicas: int | None = Field(default=None, ge=0, le=1000, description="Replica count to scale the backend to.")
    workers: int | None = Field(default=None, ge=1, le=256, description="WORKERS value to set on the backend.")
    memory_limit: str | None = Field(default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$",
                                     description="New backend memory limit, e.g. 4Gi (high-memory).")
    slow_query_threshold_ms: int = Field(default=100, ge=1, le=3_600_000,
                                         description="log_min_duration_statement and slow-query cut-off.")
    index_name: str = Field(default="idx_trades_user_date", pattern=r"^[a-z_][a-z0-9_]*$",
                            max_length=63, description="Index the slow-queries runbook creates on approval.")
    backup_policy: Name | None = Field(default=None, description="BackupPolicy whose backups a restore uses.")
    backup_id: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$",
                                  description="Backup to restore; default: the policy's newest verified one.")
    flush_all: bool = Field(default=False,
                            description="Allow FLUSHALL on Redis (security-breach); default deletes session:* only.")
    previous_revision: int | None = Field(default=None, ge=1, description="Revision for rollout undo.")
    service_name: Name | None = Field(default=None, description="Service to switch (blue/green).")
    color: str | None = Field(default=None, max_length=5, pattern=r"^(blue|green)$",
                              description="Selector version to switch to.")
    scale_hold_seconds: int = Field(default=1800, ge=0, le=86400,
                                    description="How long an incident's scale-out holds as a floor for ScalingPolicies.")
    restart_limit_per_hour: int | None = Field(
        default=None, ge=1, le=100,
        description="Storm guard: restarts of one Deployment allowed per hour; default: the operator's setting (3).",
    )
    target_time: str | None = Field(
        default=None, max_length=64,
        pattern=r"^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2}))$",
        description="Point-in-time restore target (RFC 3339 with zone, or latest) from the policy's WAL archive.",
    )
    target_lsn: str | None = Field(default=None, alias="targetLSN", max_length=17,
                                   pattern=r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$",
                                   description="Point-in-time restore target as a WAL position, e.g. 0/3000060.")

    @model_validator(mode="after")
    def _one_restore_source(self) -> Self:
        if sum(v is not None for v in (self.backup_id, self.target_time, self.target_lsn)) > 1:
            raise ValueError(PITR_ONE_SOURCE)
        return self


class CustomStep(ApiModel):
    """One explicit step for `runbook: custom` (restart, scale, roll back, switch blue/green …)."""

    id: StepId = Field(description="Unique step id; approvals refer to it.")
    action: StepAction = Field(description="What the step does.")
    target: Name | None = Field(default=None, description="Workload (or Service/Secret) the action acts on.")
    params: dict[str, ParamValue] = Field(default_factory=dict, max_length=32, description="Action parameters.")
    destructive: bool | None = Field(default=None,
                                     description="Require approval; default: the action's own classification.")
    timeout_seconds: int = Field(default=300, ge=1, le=86400, description="Give up on one attempt after this.")
    retries: int = Field(default=2, ge=0, le=20, description="Retries after a failed attempt, with backoff.")


class IncidentSource(ApiModel):
    """Who or what created the incident."""

    kind: str = Field(default="manual", max_length=16, pattern=r"^(manual|gitops|alertmanager|api)$",
                      description="manual, gitops, alertmanager or api.")
    fingerprint: str | None = Field(default=None, max_length=128, description="Alertmanager alert fingerprint.")
    alertname: str | None = Field(default=None, max_length=256, description="Alert name that triggered it.")
    url: str | None = Field(default=None, max_length=2048, description="Link to the alert or ticket.")


class NotificationSpec(ApiModel):
    """Where escalations go: a webhook URL read from a Secret (Slack-compatible or PagerDuty Events v2)."""

    webhook_secret_ref: SecretKeyRef = Field(description="Secret key holding the webhook URL.")
    format: str = Field(default="slack", max_length=16, pattern=r"^(slack|pagerduty|generic)$",
                        description="Payload format.")
    routing_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="PagerDuty routing key (format pagerduty)."
    )


STEPS_IFF_CUSTOM = "steps must be set (non-empty) for runbook custom and only for runbook custom"


class TradeSenseIncidentSpec(ApiModel):
    """Desired incident response. Immutable after creation except `approvals` and `cancel`."""

    # The same rule in-cluster (CEL in the CRD) and in the CLI/handlers (the validator below); the
    # immutability rules are generated from kinds.INCIDENT.mutable_spec_fields.
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "(self.runbook == 'custom') == (has(self.steps) && size(self.steps) > 0)",
         "message": STEPS_IFF_CUSTOM, "fieldPath": ".steps"},
    ]})

    runbook: Runbook = Field(description="Which runbook procedure to execute.")
    severity: Severity = Field(default=Severity.P3, description="P1–P4; sets respondBy.")
    target: IncidentTarget = Field(default_factory=IncidentTarget, description="Where to act.")
    parameters: IncidentParameters = Field(default_factory=IncidentParameters, description="Runbook inputs.")
    steps: list[CustomStep] = Field(default_factory=list, max_length=50,
                                    description="Explicit steps; only (and required) for runbook custom.",
                                    json_schema_extra=list_map("id"))
    dry_run: bool = Field(default=False, description="Resolve and record the plan with its effects; change nothing.")
    approvals: list[StepId] = Field(default_factory=list, max_length=100,
                                    description="Step ids approved for execution (destructive steps wait for these).")
    cancel: bool = Field(default=False, description="Stop before the next step; steps not started are cancelled.")
    cancel_on_alert_resolved: bool = Field(
        default=False, description="When the source alert resolves, cancel steps not yet started."
    )
    source: IncidentSource = Field(default_factory=IncidentSource, description="Origin of the incident.")
    notification: NotificationSpec | None = Field(default=None, description="Escalation webhook.")
    approval_timeout_seconds: int | None = Field(
        default=None, ge=1, le=604800,
        description="How long a destructive step waits for its approval before the incident escalates "
                    "(ApprovalTimedOut); default: until respondBy.",
    )
    fail_on_approval_timeout: bool = Field(
        default=False,
        description="When the approval does not come in time, also end the incident Failed (ApprovalTimedOut) "
                    "instead of escalating and waiting on.",
    )

    @model_validator(mode="after")
    def _steps_only_for_custom(self) -> Self:
        if (self.runbook is Runbook.CUSTOM) != bool(self.steps):
            raise ValueError(STEPS_IFF_CUSTOM)
        ids = [step.id for step in self.steps]
        if len(ids) != len(set(ids)):
            raise ValueError(f"steps: duplicate step ids {sorted({i for i in ids if ids.count(i) > 1})}")
        return self


class PlannedStep(ApiModel):
    """A step of the resolved plan, frozen in status when the incident starts."""

    id: StepId = Field(description="Step id.")
    action: StepAction = Field(description="Action.")
    target: str = Field(default="", description="What it acts on, e.g. deployment/backend.")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="Resolved action parameters.")
    destructive: bool = Field(default=False, description="Needs approval before it runs.")
    timeout_seconds: int = Field(default=300, ge=1, description="Per-attempt timeout.")
    retries: int = Field(default=2, ge=0, description="Retries after a failed attempt.")
    description: str = Field(default="", description="The runbook line this step carries out.")


class StepStatus(ApiModel):
    """Progress of one step."""

    id: StepId = Field(description="Step id.")
    action: StepAction = Field(description="Action.")
    target: str = Field(default="", description="What it acts on.")
    state: StepState = Field(default=StepState.PENDING, description="Current state.")
    attempts: int = Field(default=0, ge=0, description="Attempts started so far.")
    started_at: datetime | None = Field(default=None, description="First attempt start.")
    finished_at: datetime | None = Field(default=None, description="When it reached a final state.")
    message: str = Field(default="", max_length=4096, description="What happened, or what a dry run would change.")
    evidence: dict[str, str] = Field(default_factory=dict, description="Short evidence summary (never secrets).")
    attempt_started_at: datetime | None = Field(
        default=None, description="Start of the current attempt; the step's timeout counts from here."
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="When the next attempt starts after a failed one (exponential backoff)."
    )
    awaiting_since: datetime | None = Field(
        default=None, description="When the step began waiting for its approval (the approval timeout counts from here)."
    )
    checkpoint: dict[str, str] = Field(
        default_factory=dict,
        description="Resume data the action saved mid-step, so a restarted operator does not repeat it (never secrets).",
    )


class EscalationStatus(ApiModel):
    """Record of the escalation, so that a restarted operator never pages twice."""

    reason: str = Field(description="DeadlinePassed or IncidentFailed.")
    escalated_at: datetime = Field(description="When the incident was escalated.")
    notified_at: datetime | None = Field(default=None, description="When the webhook accepted the notification.")
    notification_error: str = Field(default="", max_length=1024,
                                    description="Why the last notification attempt failed (no URLs or secrets).")
    notification_key: str = Field(
        default="", max_length=256,
        description="Idempotency key of the notification, recorded before the first send; every resend "
                    "carries it (Idempotency-Key header, PagerDuty dedup_key), so a resend after a crash is harmless.",
    )


TIMELINE_LIMIT = 100
TIMELINE_MESSAGE_LIMIT = 1024


class TimelineEntry(ApiModel):
    """One Event the operator posted about the incident, kept in status so the story outlives Event expiry."""

    time: datetime = Field(description="When it was recorded.")
    type: str = Field(description="Normal or Warning, as the Event.", pattern=r"^(Normal|Warning)$")
    reason: str = Field(description="The Event's reason (StepStarted, StepSucceeded, Blocked, Escalated …).",
                        max_length=128)
    message: str = Field(default="", max_length=TIMELINE_MESSAGE_LIMIT, description="The Event's message (shortened).")


class TradeSenseIncidentStatus(ApiModel):
    """Observed state, owned by the operator."""

    phase: IncidentPhase = Field(default=IncidentPhase.PENDING, description="Lifecycle phase.")
    plan: list[PlannedStep] = Field(default_factory=list, description="The resolved, frozen plan.",
                                    json_schema_extra=list_map("id"))
    steps: list[StepStatus] = Field(default_factory=list, description="Per-step progress, in plan order.",
                                    json_schema_extra=list_map("id"))
    current_step: str | None = Field(default=None, description="Id of the step in progress.")
    respond_by: datetime | None = Field(default=None, description="Creation time + the severity's response time.")
    started_at: datetime | None = Field(default=None, description="When execution began.")
    resolved_at: datetime | None = Field(default=None, description="When the incident reached Succeeded.")
    message: str = Field(default="", max_length=4096, description="Summary of the current phase.")
    observed_generation: int | None = Field(default=None, description="Spec generation last acted on.")
    spec_fingerprint: dict[str, str] = Field(
        default_factory=dict,
        description="Digests of the immutable spec fields when the plan was frozen; a mismatch stops the incident.",
    )
    escalation: EscalationStatus | None = Field(default=None, description="Set once the incident was escalated.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Progressing, Escalated, …",
                                        json_schema_extra=list_map("type"))
    timeline: list[TimelineEntry] = Field(
        default_factory=list, max_length=TIMELINE_LIMIT,
        description="The newest Events about this incident (step transitions, approvals, outcomes), appended by "
                    "the operator as it posts them; kept after the Events themselves expire.",
    )


class TradeSenseIncident(ApiModel):
    """Top-level object, for validating whole bodies (CLI, samples, bridge)."""

    api_version: str = Field(default="ops.tradesense.io/v1alpha1", description="API version.")
    kind: str = Field(default=KIND, description="Kind.")
    metadata: dict[str, object] = Field(default_factory=dict, description="Object metadata.")
    spec: TradeSenseIncidentSpec = Field(description="Desired incident response.")
    status: TradeSenseIncidentStatus | None = Field(default=None, description="Observed state.")
