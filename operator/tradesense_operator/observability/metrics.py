"""The operator's own Prometheus metrics, on a registry owned by the Runtime (never the global one).

One object per process keeps names and labels in one place; label values are bounded enums or object
names, never free text, and never secrets. Counters whose label values are known in advance are created
at 0 on start (the prometheus_client habit): a series that first appears already at 1 shows no step to
`increase()`, so the alert on it would miss the first event after every restart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from tradesense_operator.api.v1alpha1.incident import Severity

# Bounded label values known before the first event. The bridge's outcomes are literals because services/
# imports this module; a test keeps them equal to AlertOutcome and to what bridge/server.py answers.
BRIDGE_ALERT_OUTCOMES = ("created", "updated", "resolved", "resolved-without-incident", "unknown", "namespace-missing")
BRIDGE_REQUEST_OUTCOMES = (
    "accepted", "too-large", "rate-limited", "token-unavailable", "not-configured", "unauthorized", "malformed-json",
    "invalid-payload", "bad-mapping", "api-unavailable", "api-error",
)
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class OperatorMetrics:
    """All metrics the operator exports on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.incidents = Gauge(
            "tradesense_operator_incidents", "Incidents by runbook and phase.", ["runbook", "phase"], registry=r
        )
        self.incident_transitions = Counter(
            "tradesense_operator_incident_transitions", "Incident phase transitions.", ["runbook", "phase"], registry=r
        )
        self.step_duration = Histogram(
            "tradesense_operator_step_duration_seconds", "Duration of step attempts.", ["action", "outcome"],
            buckets=STEP_BUCKETS, registry=r,
        )
        self.remediation_actions = Counter(
            "tradesense_operator_remediation_actions", "Remediation actions executed.", ["action", "outcome"],
            registry=r,
        )
        self.approvals_waiting = Gauge(
            "tradesense_operator_approvals_waiting", "Steps waiting for approval.", ["namespace"], registry=r
        )
        self.storm_guard_blocks = Counter(
            "tradesense_operator_storm_guard_blocks", "Restarts refused by the restart-storm guard.",
            ["namespace", "deployment"], registry=r,
        )
        self.escalations = Counter(
            "tradesense_operator_escalations", "Incidents escalated: respondBy passed unresolved, or the incident failed.",
            ["severity"], registry=r,
        )
        self.bridge_requests = Counter(
            "tradesense_operator_bridge_requests", "Alertmanager webhook requests by outcome.", ["outcome"], registry=r
        )
        self.bridge_alerts = Counter(
            "tradesense_operator_bridge_alerts", "Alerts received by the bridge, by what was done with them.",
            ["outcome"], registry=r,
        )
        self.bridge_invalid_runbook = Counter(
            "tradesense_operator_bridge_invalid_runbook",
            "Firing alerts whose runbook label names no runbook an alert may start (the alert-name route is used).",
            registry=r,
        )
        self.backup_last_success = Gauge(
            "tradesense_operator_backup_last_success_timestamp_seconds", "Finish time of the newest successful backup.",
            ["namespace", "policy"], registry=r,
        )
        self.backup_size = Gauge(
            "tradesense_operator_backup_size_bytes", "Size of the newest successful backup.", ["namespace", "policy"],
            registry=r,
        )
        self.backup_duration = Gauge(
            "tradesense_operator_backup_duration_seconds", "Duration of the newest successful backup.",
            ["namespace", "policy"], registry=r,
        )
        self.backup_runs = Counter(
            "tradesense_operator_backup_runs", "Backup runs by outcome.", ["namespace", "policy", "outcome"], registry=r
        )
        self.wal_archiving = Gauge(
            "tradesense_operator_wal_archiving", "1 while WAL streams into the archive (WALArchiving=True), else 0.",
            ["namespace", "policy", "reason"], registry=r,
        )
        self.wal_lag_seconds = Gauge(
            "tradesense_operator_wal_archive_lag_seconds", "Now minus the newest moment fully archived (the RPO).",
            ["namespace", "policy"], registry=r,
        )
        self.wal_max_lag_seconds = Gauge(
            "tradesense_operator_wal_archive_max_lag_seconds",
            "The policy's RPO limit (spec.pointInTime.lagCriticalSeconds) the lag alert compares against.",
            ["namespace", "policy"], registry=r,
        )
        self.wal_lag_bytes = Gauge(
            "tradesense_operator_wal_archive_lag_bytes", "Server WAL position minus the archived position.",
            ["namespace", "policy"], registry=r,
        )
        self.scaling_desired = Gauge(
            "tradesense_operator_scaling_desired_replicas", "Replicas decided by a ScalingPolicy.",
            ["namespace", "policy"], registry=r,
        )
        self.scaling_evaluations = Counter(
            "tradesense_operator_scaling_evaluations", "ScalingPolicy evaluations by outcome.",
            ["namespace", "policy", "outcome"], registry=r,
        )

        self._precreate()

    def _precreate(self) -> None:
        """Every series with a bounded, known label set, at 0 (see the module docstring)."""
        for severity in Severity:
            self.escalations.labels(severity=severity.value)
        for outcome in BRIDGE_REQUEST_OUTCOMES:
            self.bridge_requests.labels(outcome)
        for outcome in BRIDGE_ALERT_OUTCOMES:
            self.bridge_alerts.labels(outcome)

    def render(self) -> bytes:
        """Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
