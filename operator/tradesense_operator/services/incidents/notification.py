"""The escalation webhook: what a Slack/PagerDuty/generic notification says and how it is sent.

Owns the message content and the delivery; it must not decide WHEN to notify (that is
`escalation.py`, which records every notification in status). The webhook URL (and a PagerDuty
routing key) are read from Secrets at send time and only handed to the Notifier: never stored,
logged or put in status/Events (its errors are redacted by the client).
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.common import SecretKeyRef
from tradesense_operator.api.v1alpha1.incident import IncidentPhase, TradeSenseIncidentSpec, TradeSenseIncidentStatus
from tradesense_operator.clients.http import HttpClient
from tradesense_operator.clients.kube import KubeClient, ObjectRef
from tradesense_operator.clients.notify import EscalationEvent, Notifier, PayloadFormat
from tradesense_operator.clients.secret_values import read_secret_key

_FORMATS: dict[str, PayloadFormat] = {"slack": "slack", "pagerduty": "pagerduty", "generic": "generic"}


async def read_secret_value(kube: KubeClient, namespace: str, ref: SecretKeyRef) -> str:
    """One key of a Secret, decoded and stripped; errors name the Secret and key, never the value."""
    return (await read_secret_key(kube, namespace, ref.name, ref.key)).strip()


def notification_key(ref: ObjectRef, reason: str) -> str:
    """The idempotency key of an incident's escalation: stable across retries, resends and restarts."""
    return f"{ref.uid or f'{ref.namespace}/{ref.name}'}/{reason}"


def escalation_event(
    ref: ObjectRef, spec: TradeSenseIncidentSpec, status: TradeSenseIncidentStatus, summary: str,
    *, phase: IncidentPhase | None = None,
) -> EscalationEvent:
    """What the notification says: the incident, its deadline, phase (`phase` when it is about to change),
    current step and source."""
    if status.escalation is None or status.respond_by is None:
        raise ValueError("only an escalated incident with a deadline is notified")
    details = {
        step.id: f"{step.state.value}: {step.message}"[:300] for step in status.steps if step.message
    }
    source = spec.source.alertname or spec.source.fingerprint or spec.source.kind
    return EscalationEvent(
        incident=ref.name,
        namespace=ref.namespace,
        runbook=spec.runbook.value,
        severity=spec.severity.value,
        summary=summary,
        respond_by=status.respond_by,
        escalated_at=status.escalation.escalated_at,
        phase=(phase or status.phase).value,
        current_step=status.current_step,
        source=source,
        details=details,
    )


async def send_notification(
    kube: KubeClient, ref: ObjectRef, spec: TradeSenseIncidentSpec, event: EscalationEvent, *, key: str,
    timeout: float,
) -> None:
    """Deliver one escalation to the webhook configured in spec.notification with its idempotency `key`
    (raises ClientError)."""
    notification = spec.notification
    if notification is None:
        raise ValueError("spec.notification is not set")
    url = await read_secret_value(kube, ref.namespace, notification.webhook_secret_ref)
    routing_key = None
    if notification.routing_key_secret_ref is not None:
        routing_key = await read_secret_value(kube, ref.namespace, notification.routing_key_secret_ref)
    async with HttpClient(default_timeout=timeout) as http:
        await Notifier(http, timeout=timeout).send(url, _FORMATS[notification.format], event, routing_key=routing_key,
                                                   idempotency_key=key)
