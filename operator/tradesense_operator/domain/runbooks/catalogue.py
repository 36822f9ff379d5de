"""The TradeSense runbook as tables of steps, and `resolve_plan`, which turns an incident spec into a plan.

Each runbook is a tuple of `StepTemplate`s in the runbook's own order. A template names its target by
role (the backend Deployment, the Redis pods, the signing Secret …) and takes parameter values either
literally or from `spec.parameters` (`FromParam`), so the table reads like the runbook and one function
resolves all of them. Every step's description quotes the runbook line it carries out.

Choices made here (documented, tested):
- auth-failure without `parameters.userId` still plans the session-reset step; the action skips it with
  the reason, so the incident remains a useful diagnosis and `kubectl describe` says why nothing was reset.
- data-corruption and restore-database require `parameters.backupPolicy` (a restore without a source
  is meaningless): planning fails with a PlanError naming that field.
- Where the runbook's command is unsafe on a shared Redis (KEYS, FLUSHALL) the plan uses SCAN-based
  pattern deletion; FLUSHALL is planned only when `parameters.flushAll` is true, and needs approval.
- security-breach rotates the JWT signing key only: the other secrets (database, Stripe, SendGrid)
  must change at their issuer first, which the operator cannot do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tradesense_operator.api.v1alpha1.incident import (
    CustomStep,
    ParamValue,
    PlannedStep,
    Runbook,
    StepAction,
    TradeSenseIncidentSpec,
)
from tradesense_operator.domain.runbooks.action_specs import ACTION_SPECS, TargetKind, check_params, target_ref
from tradesense_operator.domain.runbooks.errors import PlanError


@dataclass(frozen=True)
class FromParam:
    """A parameter value read from spec.parameters.<attr> (snake_case), falling back to `default`.

    A None result drops the key from the step's params (the action then applies its documented default
    or skips with the reason).
    """

    attr: str
    default: ParamValue | None = None


Value = ParamValue | FromParam | Callable[[TradeSenseIncidentSpec], ParamValue | None]


@dataclass(frozen=True)
class StepTemplate:
    """One row of a runbook table."""

    id: str
    action: StepAction
    role: str
    description: str
    params: Mapping[str, Value] = field(default_factory=dict)
    timeout_seconds: int = 300
    retries: int = 2
    when: Callable[[TradeSenseIncidentSpec], bool] | None = None
    # Gate a step whose action is safe in general but takes the application down here (the approval point
    # of a procedure): the action's own classification can only be tightened, never relaxed.
    destructive: bool = False


# -- target roles ----------------------------------------------------------------------------------

_WORKLOAD_ROLES = ("backend", "frontend", "postgres", "redis")


def _target(kind: TargetKind, role: str, spec: TradeSenseIncidentSpec) -> str:
    """Resolve a role (a workload, `signing-secret`, `dr`, `policy` or empty) to a target string."""
    t = spec.target
    if kind is TargetKind.PODS:
        return target_ref(kind, f"{t.app_label}={getattr(t, role)}") if role else target_ref(kind)
    if kind in (TargetKind.DEPLOYMENT, TargetKind.POSTGRES, TargetKind.REDIS):
        return target_ref(kind, getattr(t, role))
    if kind is TargetKind.SECRET:
        return target_ref(kind, t.signing_secret.name)
    if kind is TargetKind.CONFIGMAP:
        return target_ref(kind, DR_CONFIGMAP)
    if kind is TargetKind.BACKUP_POLICY:
        if spec.parameters.backup_policy is None:
            raise PlanError("spec.parameters.backupPolicy", f"required by runbook {spec.runbook.value}")
        return target_ref(kind, spec.parameters.backup_policy)
    if kind is TargetKind.SERVICE:
        return target_ref(kind, role)
    return target_ref(kind)


DR_CONFIGMAP = "dr-activate"
"""ConfigMap (in the target namespace) describing the DR activation the runbook's `k8s/dr-activate.yaml` holds."""


def _api_host(spec: TradeSenseIncidentSpec) -> str | None:
    return urlsplit(spec.target.api_url).hostname if spec.target.api_url else None


def _api_port(spec: TradeSenseIncidentSpec) -> int | None:
    if not spec.target.api_url:
        return None
    parts = urlsplit(spec.target.api_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _session_key(spec: TradeSenseIncidentSpec) -> str | None:
    """`session:<userId>`, keeping any prefix of the session pattern (e.g. `t1:session:*` → `t1:session:42`)."""
    user = spec.parameters.user_id
    if user is None:
        return None
    pattern = spec.parameters.session_key_pattern
    return pattern.replace("*", user, 1) if "*" in pattern else pattern + user


def _signing_key(spec: TradeSenseIncidentSpec) -> str:
    return spec.target.signing_secret.key


# -- the runbooks ----------------------------------------------------------------------------------

_SMOKE = StepTemplate(
    "smoke-test", StepAction.SMOKE_TEST, "",
    'Verify recovery: for endpoint in health trades analytics auth; do curl -f .../api/v1/$endpoint; done',
    {"endpoints": "health,trades,analytics,auth"}, retries=3,
)


def _workload_name(role: str) -> Callable[[TradeSenseIncidentSpec], ParamValue | None]:
    """The Deployment name configured for a role in spec.target."""
    def name(spec: TradeSenseIncidentSpec) -> ParamValue | None:
        return str(getattr(spec.target, role))
    return name


def _restart_sequence(role: str, number: int) -> tuple[StepTemplate, ...]:
    """Delete pods + wait (data stores) or rollout restart + status (apps): one runbook sub-step."""
    if role in ("postgres", "redis"):
        label = "Database" if role == "postgres" else "Redis"
        return (
            StepTemplate(f"delete-{role}-pods", StepAction.DELETE_PODS, role,
                         f"{number}. {label}: kubectl delete pod -l app={role} -n tradesense"),
            StepTemplate(f"wait-{role}-ready", StepAction.WAIT_PODS_READY, role,
                         f"{number}. {label}: kubectl wait --for=condition=ready pod -l app={role} -n tradesense",
                         {"deployment": _workload_name(role)}, timeout_seconds=600),
        )
    label = role.capitalize()
    return (
        StepTemplate(f"restart-{role}", StepAction.ROLLOUT_RESTART, role,
                     f"{number}. {label}: kubectl rollout restart deployment/{role} -n tradesense"),
        StepTemplate(f"{role}-rollout", StepAction.ROLLOUT_STATUS, role,
                     f"{number}. {label}: kubectl rollout status deployment/{role} -n tradesense",
                     timeout_seconds=600),
    )


SITE_DOWN: tuple[StepTemplate, ...] = (
    StepTemplate("verify-endpoints", StepAction.HTTP_PROBE, "",
                 "1. Verify the issue: curl -I https://tradesense.com (status and time recorded as evidence)",
                 {"path": "/api/v1/monitoring/health", "samples": 3, "expect": "any"}),
    StepTemplate("check-nodes", StepAction.CHECK_NODES, "", "2. Check infrastructure: kubectl get nodes"),
    StepTemplate("check-pods", StepAction.CHECK_PODS, "", "2. Check infrastructure: kubectl get pods -n tradesense"),
    StepTemplate("pg-isready", StepAction.PG_ISREADY, "postgres",
                 "2. Check infrastructure: kubectl exec -it deployment/postgres -- pg_isready"),
    *(
        StepTemplate(f"restart-{role}", StepAction.ROLLOUT_RESTART, role,
                     "3. Emergency restart: kubectl rollout restart deployment -n tradesense")
        for role in _WORKLOAD_ROLES
    ),
    *(
        StepTemplate(f"{role}-rollout", StepAction.ROLLOUT_STATUS, role,
                     f"3. Emergency restart: wait for deployment/{role} to finish rolling out",
                     timeout_seconds=600)
        for role in _WORKLOAD_ROLES
    ),
    StepTemplate("dr-failover", StepAction.DR_FAILOVER, "dr",
                 "4. Failover (if needed): kubectl config use-context tradesense-dr; "
                 "kubectl apply -f k8s/dr-activate.yaml — destructive, runs only when approved"),
)

AUTH_FAILURE: tuple[StepTemplate, ...] = (
    StepTemplate("login-probe", StepAction.HTTP_PROBE, "",
                 "1. Check auth service: curl -X POST https://api.tradesense.com/api/v1/auth/login",
                 {"path": "/api/v1/auth/login", "method": "POST",
                  "body": '{"email":"test@example.com","password":"test"}', "expect": "any"}),
    StepTemplate("signing-secret", StepAction.SECRET_PRESENT, "signing-secret",
                 "1. Check JWT signing key: kubectl get secret tradesense-secrets (presence only, value never read out)",
                 {"key": _signing_key}),
    StepTemplate("session-count", StepAction.REDIS_SESSION_COUNT, "redis",
                 '2. Check Redis sessions: KEYS "session:*" (as SCAN), TTL "session:<user>"',
                 {"pattern": FromParam("session_key_pattern"), "key": _session_key}),
    StepTemplate("reset-session", StepAction.REDIS_DELETE_KEY, "redis",
                 '3. Reset user session: redis_client.delete("session:<userId>") — skipped without parameters.userId',
                 {"key": _session_key}),
)

PERFORMANCE_DEGRADATION: tuple[StepTemplate, ...] = (
    StepTemplate("response-times", StepAction.HTTP_PROBE, "",
                 '1. Identify bottleneck: curl -w "@curl-format.txt" .../api/v1/analytics/dashboard (p50/p95)',
                 {"path": "/api/v1/analytics/dashboard", "samples": 20, "expect": "any"}),
    StepTemplate("slow-queries", StepAction.PG_SLOW_QUERIES, "postgres",
                 "1. Database slow queries: SELECT query, calls, mean_exec_time FROM pg_stat_statements "
                 "ORDER BY mean_exec_time DESC LIMIT 10",
                 {"minMeanMs": 0, "limit": 10}),
    StepTemplate("check-pods", StepAction.CHECK_PODS, "",
                 "2. Check resource usage: kubectl top pods -n tradesense "
                 "(here: pod readiness and restarts; no metrics-server)"),
    StepTemplate("scale-backend", StepAction.SCALE, "backend",
                 "3. Quick fixes: kubectl scale deployment/backend --replicas=10 -n tradesense",
                 {"replicas": FromParam("replicas", 10), "atLeast": True, "holdSeconds": FromParam("scale_hold_seconds")}),
    StepTemplate("clear-cache", StepAction.REDIS_DELETE_PATTERN, "redis",
                 "3. Quick fixes: clear cache (runbook: FLUSHALL; done as SCAN+UNLINK of the analytics pattern)",
                 {"pattern": FromParam("cache_key_pattern")}),
)

HIGH_CPU: tuple[StepTemplate, ...] = (
    StepTemplate("check-pods", StepAction.CHECK_PODS, "backend",
                 "1. Identify the cause: kubectl top pods -n tradesense --sort-by=cpu (here: readiness and restarts)"),
    StepTemplate("scale-backend", StepAction.SCALE, "backend",
                 "2. Mitigation: kubectl scale deployment/backend --replicas=8 -n tradesense",
                 {"replicas": FromParam("replicas", 8), "atLeast": True, "holdSeconds": FromParam("scale_hold_seconds")}),
    StepTemplate("set-workers", StepAction.SET_ENV, "backend",
                 "2. Mitigation: kubectl set env deployment/backend WORKERS=2 -n tradesense",
                 {"name": "WORKERS", "value": lambda s: str(s.parameters.workers or 2)}),
    StepTemplate("backend-rollout", StepAction.ROLLOUT_STATUS, "backend",
                 "2. Mitigation: wait until the pods with the new WORKERS value are ready", timeout_seconds=600),
)

HIGH_MEMORY: tuple[StepTemplate, ...] = (
    StepTemplate("redis-bigkeys", StepAction.REDIS_BIGKEYS, "redis",
                 "1. Check for large objects in Redis: redis-cli --bigkeys", {"sample": 1000, "top": 10}),
    StepTemplate("delete-backend-pods", StepAction.DELETE_PODS, "backend",
                 "2. Restart pods with memory leaks: kubectl delete pod -l app=backend -n tradesense"),
    StepTemplate("wait-backend-ready", StepAction.WAIT_PODS_READY, "backend",
                 "2. Wait for the replacement backend pods to be ready",
                 {"deployment": _workload_name("backend")}, timeout_seconds=600),
    StepTemplate("set-memory-limit", StepAction.SET_RESOURCES, "backend",
                 "2. Adjust memory limits: kubectl set resources deployment/backend --limits=memory=4Gi",
                 {"limitsMemory": FromParam("memory_limit", "4Gi")}),
    StepTemplate("backend-rollout", StepAction.ROLLOUT_STATUS, "backend",
                 "2. Wait until the pods with the new memory limit are ready", timeout_seconds=600),
)

SLOW_QUERIES: tuple[StepTemplate, ...] = (
    StepTemplate("log-slow-statements", StepAction.PG_SET_LOG_MIN_DURATION, "postgres",
                 "1. Enable query logging: ALTER SYSTEM SET log_min_duration_statement = 100; SELECT pg_reload_conf()",
                 {"ms": FromParam("slow_query_threshold_ms")}),
    StepTemplate("top-queries", StepAction.PG_SLOW_QUERIES, "postgres",
                 "1. Check slow queries: SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements "
                 "WHERE mean_exec_time > 100 ORDER BY mean_exec_time DESC LIMIT 20",
                 {"minMeanMs": FromParam("slow_query_threshold_ms"), "limit": 20}),
    StepTemplate("analyze", StepAction.PG_ANALYZE, "postgres", "2. Update statistics: ANALYZE",
                 timeout_seconds=1800),
    StepTemplate("missing-indexes", StepAction.PG_MISSING_INDEXES, "postgres",
                 "2. Check missing indexes: pg_stats WHERE n_distinct > 100 AND correlation < 0.1"),
    StepTemplate("create-index", StepAction.PG_CREATE_INDEX, "postgres",
                 "2. Create index: CREATE INDEX CONCURRENTLY idx_trades_user_date ON trades(user_id, entry_date) "
                 "WHERE deleted_at IS NULL — destructive, runs only when approved",
                 {"name": FromParam("index_name"), "table": "trades", "columns": "user_id,entry_date",
                  "where": "deleted_at IS NULL"}, timeout_seconds=3600, retries=1),
)

COMPLETE_FAILURE: tuple[StepTemplate, ...] = (
    StepTemplate("page-oncall", StepAction.NOTIFY, "",
                 '1. Activate incident response: ./scripts/page-oncall.sh "P1: TradeSense Complete Outage"',
                 {"message": "P1: TradeSense Complete Outage"}),
    *_restart_sequence("postgres", 1),
    *_restart_sequence("redis", 2),
    *_restart_sequence("backend", 3),
    *_restart_sequence("frontend", 4),
    _SMOKE,
)

_PITR_PARAMS = {"targetTime": FromParam("target_time"), "targetLSN": FromParam("target_lsn")}
"""parameters.targetTime / targetLSN turn the restore into a point-in-time restore from the WAL archive."""


def _restore_procedure(gate: str) -> tuple[StepTemplate, ...]:
    """The BackupPolicy restore procedure after the backup is chosen and a safety copy taken.

    `gate` is the first step that takes the application down: it needs approval, as does the restore itself,
    so nothing disruptive happens before a human says so (approve both ids at once to run straight through).
    """
    read_only = StepTemplate(
        "read-only", StepAction.SET_ENV, "backend",
        "Stop writes: kubectl set env deployment/backend READ_ONLY=true -n tradesense"
        + (" — approval point of the restore procedure" if gate == "read-only" else ""),
        {"name": "READ_ONLY", "value": "true"}, destructive=gate == "read-only")
    stop = StepTemplate(
        "stop-traffic", StepAction.SCALE, "backend",
        "Stop application traffic: kubectl scale deployment/backend --replicas=0 -n tradesense "
        "(the current count is remembered)"
        + (" — approval point of the restore procedure" if gate == "stop-traffic" else ""),
        {"replicas": 0, "remember": True}, destructive=gate == "stop-traffic")
    return (
        *((read_only,) if gate == "read-only" else ()),
        stop,
        StepTemplate("restore", StepAction.BACKUP_RESTORE, "policy",
                     "Restore database: terminate connections; DROP DATABASE; CREATE DATABASE; psql < backup; "
                     "ANALYZE (./scripts/restore-database.sh <backup>) — destructive, runs only when approved",
                     {"backupId": FromParam("backup_id"), **_PITR_PARAMS}, timeout_seconds=3600, retries=0),
        StepTemplate("start-traffic", StepAction.SCALE, "backend",
                     "Restart application: kubectl scale deployment/backend back to the remembered replica count "
                     "(runbook: --replicas=3, used when nothing was remembered)",
                     {"replicas": FromParam("replicas", 3), "restoreRemembered": True}),
        StepTemplate("writable", StepAction.SET_ENV, "backend",
                     "Remove read-only: kubectl set env deployment/backend READ_ONLY=false -n tradesense",
                     {"name": "READ_ONLY", "value": "false"}),
        StepTemplate("backend-rollout", StepAction.ROLLOUT_STATUS, "backend",
                     "Wait until the backend serves again", timeout_seconds=600),
        _SMOKE,
    )


DATA_CORRUPTION: tuple[StepTemplate, ...] = (
    StepTemplate("read-only", StepAction.SET_ENV, "backend",
                 "1. Stop writes immediately: kubectl set env deployment/backend READ_ONLY=true -n tradesense",
                 {"name": "READ_ONLY", "value": "true"}),
    StepTemplate("read-only-rollout", StepAction.ROLLOUT_STATUS, "backend",
                 "1. Wait until every backend pod runs read-only", timeout_seconds=600),
    StepTemplate("assess-damage", StepAction.PG_DAMAGE_ASSESSMENT, "postgres",
                 "2. Assess damage: SELECT COUNT(*) FROM trades WHERE created_at > NOW() - INTERVAL '1 hour'; "
                 "the same for users.updated_at",
                 {"windowSeconds": 3600}),
    StepTemplate("find-clean-backup", StepAction.BACKUP_SAFETY, "policy",
                 "3. Find clean backup: ./scripts/find-clean-backup.sh (newest verified backup of the policy, "
                 "sha256 re-checked) and take a safety backup of the current database",
                 {"backupId": FromParam("backup_id"), **_PITR_PARAMS}),
    *_restore_procedure(gate="stop-traffic"),
)

RESTORE_DATABASE: tuple[StepTemplate, ...] = (
    StepTemplate("find-clean-backup", StepAction.BACKUP_SAFETY, "policy",
                 "Pick the backup to restore (parameters.backupId or the newest verified one), check its sha256 "
                 "and take a safety backup of the current database",
                 {"backupId": FromParam("backup_id"), **_PITR_PARAMS}),
    *_restore_procedure(gate="read-only"),
)

SECURITY_BREACH: tuple[StepTemplate, ...] = (
    StepTemplate("rotate-signing-key", StepAction.SECRET_ROTATE, "signing-secret",
                 "1. Rotate all secrets: ./scripts/rotate-secrets.sh --all (the JWT signing key; the new value is "
                 "never shown)",
                 {"key": _signing_key}),
    StepTemplate("force-logout", StepAction.REDIS_DELETE_PATTERN, "redis",
                 "1. Force logout all users (runbook: FLUSHALL; done as SCAN+UNLINK of session keys)",
                 {"pattern": FromParam("session_key_pattern")},
                 when=lambda s: not s.parameters.flush_all),
    StepTemplate("flushall", StepAction.REDIS_FLUSHALL, "redis",
                 "1. Force logout all users: redis-cli FLUSHALL (parameters.flushAll) — destructive, needs approval",
                 when=lambda s: s.parameters.flush_all),
    StepTemplate("security-audit", StepAction.SET_ENV, "backend",
                 "1. Enable enhanced logging: kubectl set env deployment/backend SECURITY_AUDIT=true -n tradesense",
                 {"name": "SECURITY_AUDIT", "value": "true"}),
    StepTemplate("backend-rollout", StepAction.ROLLOUT_STATUS, "backend",
                 "1. Wait until the backend runs with the new signing key and SECURITY_AUDIT", timeout_seconds=600),
    StepTemplate("suspicious-auth", StepAction.LOG_SCAN, "backend",
                 '2. Check for suspicious activity: grep -E "(auth|login|token)" backend logs | grep -v 200',
                 {"include": "(auth|login|token)", "exclude": r"\b200\b", "sinceSeconds": 86400}),
)

HIGH_ERROR_RATE: tuple[StepTemplate, ...] = (
    StepTemplate("error-logs", StepAction.LOG_SCAN, "backend",
                 "High Error Rate → Check logs: kubectl logs deployment/backend -n tradesense | grep ERROR",
                 {"include": "ERROR", "tailLines": 5000}),
    StepTemplate("rollback", StepAction.ROLLOUT_UNDO, "backend",
                 "High Error Rate → rollback recent deployment: kubectl rollout undo deployment/backend -n tradesense",
                 {"toRevision": FromParam("previous_revision")}),
    StepTemplate("backend-rollout", StepAction.ROLLOUT_STATUS, "backend",
                 "kubectl rollout status deployment/backend -n tradesense", timeout_seconds=600),
)

DB_POOL_EXHAUSTED: tuple[StepTemplate, ...] = (
    StepTemplate("scale-backend", StepAction.SCALE, "backend",
                 "Database Connection Pool Exhausted → Scale backend: kubectl scale deployment/backend --replicas=5",
                 {"replicas": FromParam("replicas", 5), "atLeast": True, "holdSeconds": FromParam("scale_hold_seconds")}),
    StepTemplate("connection-leaks", StepAction.PG_IDLE_IN_TRANSACTION, "postgres",
                 "Database Connection Pool Exhausted → check for connection leaks (idle in transaction)",
                 {"minSeconds": 0}),
)

CACHE_HIT_RATE_LOW: tuple[StepTemplate, ...] = (
    StepTemplate("cache-config", StepAction.REDIS_INFO, "redis",
                 "Cache Hit Rate Low → Check cache configuration: INFO stats (hit rate, maxmemory, evictions)"),
    StepTemplate("warm-cache", StepAction.HTTP_PROBE, "",
                 "Cache Hit Rate Low → warm cache: request the analytics dashboard so the read-through cache fills",
                 {"path": "/api/v1/analytics/dashboard", "samples": 5, "expect": "ok"}),
)

DISK_SPACE_LOW: tuple[StepTemplate, ...] = (
    StepTemplate("disk-usage", StepAction.PG_DISK_USAGE, "postgres",
                 "Disk Space Low → measure: database size and largest tables", {"limit": 10}),
    StepTemplate("notify-volume", StepAction.NOTIFY, "",
                 "Disk Space Low → clean logs, increase volume size (manual: the operator does not resize volumes)",
                 {"message": "Disk space low: clean logs and increase the PostgreSQL volume size"}),
)

CERTIFICATE_EXPIRING: tuple[StepTemplate, ...] = (
    StepTemplate("certificate", StepAction.CERTIFICATE_CHECK, "",
                 "Certificate Expiring → check the API certificate's notAfter",
                 {"host": _api_host, "port": _api_port, "warnDays": 14}),
    StepTemplate("notify-renewal", StepAction.NOTIFY, "",
                 "Certificate Expiring → Renew SSL certificate (manual: the operator does not issue certificates)",
                 {"message": "TLS certificate expiring: renew it"}),
)

RUNBOOKS: Mapping[Runbook, tuple[StepTemplate, ...]] = {
    Runbook.SITE_DOWN: SITE_DOWN,
    Runbook.AUTH_FAILURE: AUTH_FAILURE,
    Runbook.PERFORMANCE_DEGRADATION: PERFORMANCE_DEGRADATION,
    Runbook.HIGH_CPU: HIGH_CPU,
    Runbook.HIGH_MEMORY: HIGH_MEMORY,
    Runbook.SLOW_QUERIES: SLOW_QUERIES,
    Runbook.COMPLETE_FAILURE: COMPLETE_FAILURE,
    Runbook.DATA_CORRUPTION: DATA_CORRUPTION,
    Runbook.RESTORE_DATABASE: RESTORE_DATABASE,
    Runbook.SECURITY_BREACH: SECURITY_BREACH,
    Runbook.HIGH_ERROR_RATE: HIGH_ERROR_RATE,
    Runbook.DB_POOL_EXHAUSTED: DB_POOL_EXHAUSTED,
    Runbook.CACHE_HIT_RATE_LOW: CACHE_HIT_RATE_LOW,
    Runbook.DISK_SPACE_LOW: DISK_SPACE_LOW,
    Runbook.CERTIFICATE_EXPIRING: CERTIFICATE_EXPIRING,
}


# -- resolution ------------------------------------------------------------------------------------

def _value(value: Value, spec: TradeSenseIncidentSpec) -> ParamValue | None:
    if isinstance(value, FromParam):
        found = getattr(spec.parameters, value.attr)
        return value.default if found is None else found
    if callable(value):
        return value(spec)
    return value


def _from_template(template: StepTemplate, spec: TradeSenseIncidentSpec) -> PlannedStep:
    params: dict[str, ParamValue] = {}
    for key, raw in template.params.items():
        resolved = _value(raw, spec)
        if resolved is not None:
            params[key] = resolved
    action_spec = ACTION_SPECS[template.action]
    check_params(template.action, params, f"runbook {spec.runbook.value} step {template.id} params")
    return PlannedStep(
        id=template.id,
        action=template.action,
        target=_target(action_spec.target, template.role, spec),
        params=params,
        destructive=action_spec.destructive or template.destructive,
        timeout_seconds=template.timeout_seconds,
        retries=template.retries,
        description=template.description,
    )


def _custom_target(step: CustomStep, index: int, spec: TradeSenseIncidentSpec) -> str:
    """A custom step names a bare object; the action's target kind says what kind of object it is."""
    kind = ACTION_SPECS[step.action].target
    name = step.target
    needs_name = kind in (TargetKind.DEPLOYMENT, TargetKind.SERVICE)
    if name is None:
        if needs_name:
            raise PlanError(f"spec.steps[{index}].target", f"action {step.action.value} needs a {kind.value} name")
        defaults = {
            TargetKind.PODS: "", TargetKind.SECRET: "signing-secret", TargetKind.CONFIGMAP: "dr",
            TargetKind.POSTGRES: "postgres", TargetKind.REDIS: "redis", TargetKind.BACKUP_POLICY: "policy",
        }
        return _target(kind, defaults.get(kind, ""), spec)
    if kind is TargetKind.PODS:
        return target_ref(kind, f"{spec.target.app_label}={name}")
    if kind in (TargetKind.API, TargetKind.NODES, TargetKind.INCIDENT):
        raise PlanError(f"spec.steps[{index}].target", f"action {step.action.value} takes no target")
    return target_ref(kind, name)


def _custom(spec: TradeSenseIncidentSpec) -> list[PlannedStep]:
    # the spec model already guarantees a non-empty list of unique step ids for custom
    plan: list[PlannedStep] = []
    for index, step in enumerate(spec.steps):
        params = dict(step.params)
        if step.action is StepAction.SCALE and "replicas" not in params and spec.parameters.replicas is not None:
            params["replicas"] = spec.parameters.replicas
        check_params(step.action, params, f"spec.steps[{index}].params")
        action_spec = ACTION_SPECS[step.action]
        # approval can be added to a safe action, never removed from a destructive one
        destructive = action_spec.destructive or bool(step.destructive)
        plan.append(PlannedStep(
            id=step.id,
            action=step.action,
            target=_custom_target(step, index, spec),
            params=params,
            destructive=destructive,
            timeout_seconds=step.timeout_seconds,
            retries=step.retries,
            description=f"custom step {index + 1}: {step.action.value}",
        ))
    return plan


def resolve_plan(spec: TradeSenseIncidentSpec) -> list[PlannedStep]:
    """The ordered steps the incident will run; PlanError names the spec field that prevents a plan."""
    if spec.runbook is Runbook.CUSTOM:
        return _custom(spec)
    templates = RUNBOOKS[spec.runbook]
    return [_from_template(t, spec) for t in templates if t.when is None or t.when(spec)]
