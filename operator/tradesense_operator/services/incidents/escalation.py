"""Escalation: the Escalated condition, its Warning Event and the webhook notification, once per incident.

An incident escalates when it misses respondBy (checked on every advance; escalation never blocks the
remediation), when it fails, or when an approval does not come in time. The escalation and its
notification key are recorded in status before anything is sent, every (re)send carries that key, and
a failing webhook is retried at most every NOTIFY_RETRY_SECONDS until it succeeds: a notification goes
out at most once per escalation, and a resend after a crash is recognisable as the same one. This
module must not change the incident's phase.
"""

from __future__ import annotations

from datetime import datetime

from tradesense_operator.api.v1alpha1.incident import EscalationStatus, IncidentPhase, TradeSenseIncidentSpec
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.deadlines import is_overdue
from tradesense_operator.domain.incident.transitions import clip
from tradesense_operator.services.incidents.metrics import IncidentMetrics
from tradesense_operator.services.incidents.notification import escalation_event, notification_key, send_notification
from tradesense_operator.services.incidents.run import IncidentRun, StatusWriter
from tradesense_operator.services.runtime import Runtime

NOTIFY_RETRY_SECONDS = 60.0      # a failing webhook is retried at most this often
NOTIFY_TIMEOUT_SECONDS = 10.0


def format_time(moment: datetime | None) -> str:
    """A deadline as people read it in messages (RFC 3339, seconds)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


def plan_headline(spec: TradeSenseIncidentSpec, respond_by: datetime | None) -> str:
    """What an incident runs and by when, as its first Event says it (Planned, or a dry run's DryRunComplete)."""
    return (f"runbook {spec.runbook.value} ({spec.severity.value}, respond by {format_time(respond_by)}"
            f"{', dry run' if spec.dry_run else ''})")


class Escalator:
    """Escalates incidents and delivers their notifications for one engine."""

    def __init__(self, runtime: Runtime, writer: StatusWriter, metrics: IncidentMetrics) -> None:
        self._runtime = runtime
        self._writer = writer
        self._metrics = metrics
        self._notify_tried: dict[str, datetime] = {}

    async def check_deadline(self, run: IncidentRun, spec: TradeSenseIncidentSpec) -> None:
        """Escalate an overdue incident once; retry a notification that has not gone out yet."""
        now = self._writer.now()
        if run.status.escalation is None:
            if is_overdue(now, run.status.respond_by, run.status.phase):
                where = f", at step {run.status.current_step}" if run.status.current_step else ""
                await self.escalate(run, spec, "DeadlinePassed",
                                    f"respondBy {format_time(run.status.respond_by)} passed while "
                                    f"{run.status.phase.value}{where}")
        elif run.status.escalation.notified_at is None and spec.notification is not None:
            await self.notify(run, spec)

    async def escalate(
        self, run: IncidentRun, spec: TradeSenseIncidentSpec, reason: str, message: str,
        *, phase: IncidentPhase | None = None,
    ) -> None:
        """Escalated condition + Warning Event once, then the webhook notification.

        The escalation and its notification key are written to status BEFORE anything is sent (the
        intent), so a crash at any point leads to at most a resend with the same key. `phase` is the
        phase the incident is about to enter (Failed), for the notification's text.
        """
        now = self._writer.now()
        how = (f"notifying the {spec.notification.format} webhook" if spec.notification
               else "no spec.notification configured")
        run.status = run.status.model_copy(update={
            "escalation": EscalationStatus(reason=reason, escalated_at=now,
                                           notification_key=notification_key(run.ref, reason)),
            "conditions": set_condition(run.status.conditions, type_="Escalated", status=True, reason=reason,
                                        message=clip(message, 1024), now=now,
                                        observed_generation=run.obj.generation),
        })
        await self._writer.commit(run)
        self._metrics.escalated(spec.severity.value)
        await run.events.warning("Escalated", f"{message}; {how}")
        if spec.notification is not None:
            await self.notify(run, spec, summary=message if phase else None, phase=phase)

    async def notify(
        self, run: IncidentRun, spec: TradeSenseIncidentSpec, *, summary: str | None = None,
        phase: IncidentPhase | None = None,
    ) -> None:
        """Send the escalation's notification unless it went out already or was tried very recently."""
        escalation = run.status.escalation
        if escalation is None or escalation.notified_at is not None:
            return
        now = self._writer.now()
        key = escalation.notification_key or notification_key(run.ref, escalation.reason)
        last = self._notify_tried.get(key)
        if last is not None and (now - last).total_seconds() < NOTIFY_RETRY_SECONDS:
            return
        self._notify_tried[key] = now
        event = escalation_event(run.ref, spec, run.status, summary or run.status.message, phase=phase)
        try:
            await send_notification(self._runtime.kube, run.ref, spec, event, key=key,
                                    timeout=NOTIFY_TIMEOUT_SECONDS)
        except ClientError as exc:
            error = clip(f"{type(exc).__name__}: {exc}", 1024)
            changed = error != escalation.notification_error
            run.status = run.status.model_copy(update={
                "escalation": escalation.model_copy(update={"notification_error": error})})
            await self._writer.commit(run)
            if changed:
                await run.events.warning("NotificationFailed", error)
            return
        run.status = run.status.model_copy(update={
            "escalation": escalation.model_copy(update={"notified_at": now, "notification_error": ""})})
        await self._writer.commit(run)
        await run.events.normal("EscalationNotified",
                                f"sent the escalation to the {spec.notification.format} webhook"
                                if spec.notification else "sent the escalation")
