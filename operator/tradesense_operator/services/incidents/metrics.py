"""The engine's Prometheus metrics (observability.metrics.OperatorMetrics), updated from status changes.

Every update is derived from what the engine persists (a committed status, a finished attempt), so the
numbers on /metrics agree with what `kubectl get tsi` shows. Label values are enum values and object
names only, never messages.
"""

from __future__ import annotations

from datetime import datetime

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    PlannedStep,
    StepState,
    StepStatus,
    TradeSenseIncidentStatus,
)
from tradesense_operator.observability.metrics import OperatorMetrics


class IncidentMetrics:
    """Tracks the incidents one engine drives and keeps the gauges consistent across phase changes."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        self._metrics = metrics
        self._phases: dict[str, tuple[str, IncidentPhase]] = {}

    def seen(self, key: str, runbook: str, phase: IncidentPhase) -> None:
        """First sight of an incident in this process (e.g. after a restart): count it in its phase."""
        if key not in self._phases:
            self._phases[key] = (runbook, phase)
            self._metrics.incidents.labels(runbook=runbook, phase=phase.value).inc()

    def forget(self, key: str) -> None:
        """A finished incident: it changes phase no more, so its entry is not needed."""
        self._phases.pop(key, None)

    def committed(
        self, key: str, runbook: str, *, before: TradeSenseIncidentStatus, after: TradeSenseIncidentStatus,
        target_namespace: str,
    ) -> None:
        """A status write: phase transitions and steps entering/leaving AwaitingApproval."""
        if before.phase is not after.phase:
            self._metrics.incident_transitions.labels(runbook=runbook, phase=after.phase.value).inc()
            previous = self._phases.get(key)
            if previous is not None:
                self._metrics.incidents.labels(runbook=previous[0], phase=previous[1].value).dec()
            self._metrics.incidents.labels(runbook=runbook, phase=after.phase.value).inc()
            self._phases[key] = (runbook, after.phase)
        delta = _awaiting(after) - _awaiting(before)
        if delta:
            self._metrics.approvals_waiting.labels(namespace=target_namespace).inc(delta)

    def attempt_finished(self, planned: PlannedStep, step: StepStatus, outcome: str, now: datetime) -> None:
        """One attempt ended (not a WAITING poll): count it and observe its duration."""
        self._metrics.remediation_actions.labels(action=planned.action.value, outcome=outcome).inc()
        if step.attempt_started_at is not None:
            seconds = max((now - step.attempt_started_at).total_seconds(), 0.0)
            self._metrics.step_duration.labels(action=planned.action.value, outcome=outcome).observe(seconds)

    def storm_guard_blocked(self, namespace: str, deployment: str) -> None:
        """A restart refused (counted once per block, not per poll)."""
        self._metrics.storm_guard_blocks.labels(namespace=namespace, deployment=deployment).inc()

    def escalated(self, severity: str) -> None:
        """An incident escalated (once per incident)."""
        self._metrics.escalations.labels(severity=severity).inc()


def _awaiting(status: TradeSenseIncidentStatus) -> int:
    return sum(1 for step in status.steps if step.state is StepState.AWAITING_APPROVAL)
