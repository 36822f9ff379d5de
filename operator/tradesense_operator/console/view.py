"""What the console shows of an incident: its plan joined with its step progress, read from one object.

Owns the translation of a TradeSenseIncident body (as the API server returns it) into a small, typed view
that the tree, the dashboard and the postmortem all share, so they can never disagree about a duration or
what a step waits for. Pure: no I/O, no clock (callers pass `now`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    PlannedStep,
    StepState,
    StepStatus,
    TradeSenseIncidentSpec,
    TradeSenseIncidentStatus,
)
from tradesense_operator.domain.incident.machine import TERMINAL_PHASES


@dataclass(frozen=True)
class StepView:
    """One step: the frozen plan entry and its progress."""

    planned: PlannedStep
    status: StepStatus
    approved: bool

    @property
    def id(self) -> str:
        """Step id (what approvals name)."""
        return self.planned.id

    @property
    def state(self) -> StepState:
        """Current state."""
        return self.status.state

    def duration(self, now: datetime) -> timedelta | None:
        """From the first attempt to the final state (or to `now` while it runs)."""
        if self.status.started_at is None:
            return None
        return (self.status.finished_at or now) - self.status.started_at

    def waits_for(self, now: datetime, incident: str = "<incident>") -> str:
        """What the step is waiting for, in a few words ('' when it is not waiting)."""
        if self.state is StepState.AWAITING_APPROVAL:
            return f"approval: kubectl tradesense approve {incident} {self.id}"
        if self.state is not StepState.RUNNING:
            return ""
        retry_at = self.status.next_attempt_at
        if retry_at is not None and retry_at > now:
            attempt = f"{self.status.attempts + 1}/{self.planned.retries + 1}"
            return f"retry in {format_duration(retry_at - now)} (attempt {attempt})"
        return self.status.message


@dataclass(frozen=True)
class IncidentView:
    """An incident as the console presents it."""

    name: str
    namespace: str
    created: datetime | None
    spec: TradeSenseIncidentSpec
    status: TradeSenseIncidentStatus
    steps: tuple[StepView, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    managers: tuple[str, ...] = ()

    @property
    def phase(self) -> IncidentPhase:
        """Lifecycle phase."""
        return self.status.phase

    @property
    def terminal(self) -> bool:
        """Succeeded, Failed or Cancelled: nothing more will happen."""
        return self.status.phase in TERMINAL_PHASES

    def step(self, step_id: str) -> StepView | None:
        """The step with this id, or None."""
        return next((s for s in self.steps if s.id == step_id), None)

    def respond_by_text(self, now: datetime) -> str:
        """'12m left', 'overdue by 3m', 'met' (resolved in time) or 'missed'."""
        deadline = self.status.respond_by
        if deadline is None:
            return "-"
        if self.terminal:
            done = self.status.resolved_at
            if done is None:
                return "-"
            return "met" if done <= deadline else f"missed by {format_duration(done - deadline)}"
        if now <= deadline:
            return f"{format_duration(deadline - now)} left"
        return f"overdue by {format_duration(now - deadline)}"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def incident_view(body: Mapping[str, Any]) -> IncidentView:
    """Build the view from an API body; steps come from status.steps, in plan order, joined with the plan."""
    meta = body.get("metadata") or {}
    spec = TradeSenseIncidentSpec.model_validate(body.get("spec") or {})
    status = TradeSenseIncidentStatus.model_validate(body.get("status") or {})
    progress = {s.id: s for s in status.steps}
    steps = tuple(
        StepView(planned=p, status=progress.get(p.id) or StepStatus(id=p.id, action=p.action, target=p.target),
                 approved=p.id in spec.approvals)
        for p in status.plan
    )
    return IncidentView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        created=parse_time(meta.get("creationTimestamp")),
        spec=spec,
        status=status,
        steps=steps,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        managers=tuple(str(m.get("manager", "")) for m in meta.get("managedFields") or [] if m.get("manager")),
    )


def newest_first(views: Sequence[IncidentView]) -> list[IncidentView]:
    """Incidents ordered by creation time, newest first (then by name for equal times)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(sorted(views, key=lambda v: v.name), key=lambda v: v.created or oldest, reverse=True)


def format_duration(delta: timedelta) -> str:
    """kubectl's compact age style: 45s, 3m20s, 2h5m, 3d4h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"
