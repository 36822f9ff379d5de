"""Escalation: a Slack/PagerDuty/generic webhook when an incident misses respondBy or fails.

The webhook URL (and a PagerDuty routing key) are read from Secrets at send time and only handed to
the Notifier: never stored, logged or put in status/Events (its errors are redacted by the client).
"""

from __future__ import annotations

import base64
import binascii

from tradesense_operator.api.v1alpha1.common import SecretKeyRef
from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec, TradeSenseIncidentStatus
from tradesense_operator.clients.errors import Invalid, NotFound
from tradesense_operator.clients.http import HttpClient
from tradesense_operator.clients.kube import SECRETS, KubeClient, ObjectRef
from tradesense_operator.clients.notify import EscalationEvent, Notifier, PayloadFormat

_FORMATS: dict[str, PayloadFormat] = {"slack": "slack", "pagerduty": "pagerduty", "generic": "generic"}


async def read_secret_value(kube: KubeClient, namespace: str, ref: SecretKeyRef) -> str:
    """One key of a Secret, decoded; errors name the Secret and key, never the value."""
    secret = await kube.get_or_none(SECRETS, ref.name, namespace)
    if secret is None:
        raise NotFound(f"secret {namespace}/{ref.name} not found")
    raw = (secret.get("data") or {}).get(ref.key)
    if raw is None:
        plain = (secret.get("stringData") or {}).get(ref.key)
        if plain is None:
            raise NotFound(f"secret {namespace}/{ref.name} has no key {ref.key!r}")
        return str(plain)
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid(f"secret {namespace}/{ref.name} key {ref.key!r} is not valid base64 UTF-8 text") from exc


def escalation_event(
    ref: ObjectRef, spec: TradeSenseIncidentSpec, status: TradeSenseIncidentStatus, summary: str
) -> EscalationEvent:
    """What the notification says: the incident, its deadline, phase, current step and source."""
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
        phase=status.phase.value,
        current_step=status.current_step,
        source=source,
        details=details,
    )


async def send_notification(
    kube: KubeClient, ref: ObjectRef, spec: TradeSenseIncidentSpec, event: EscalationEvent, *, timeout: float
) -> None:
    """Deliver one escalation to the webhook configured in spec.notification (raises ClientError)."""
    notification = spec.notification
    if notification is None:
        raise ValueError("spec.notification is not set")
    url = await read_secret_value(kube, ref.namespace, notification.webhook_secret_ref)
    routing_key = None
    if notification.routing_key_secret_ref is not None:
        routing_key = await read_secret_value(kube, ref.namespace, notification.routing_key_secret_ref)
    async with HttpClient(default_timeout=timeout) as http:
        await Notifier(http, timeout=timeout).send(url, _FORMATS[notification.format], event, routing_key=routing_key)
