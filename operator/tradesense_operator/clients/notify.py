"""Escalation notifications: one event, three wire formats (Slack-compatible, PagerDuty Events v2, generic JSON).

The webhook URL (Slack and generic hooks embed their token in it) and the PagerDuty routing key are secrets:
they are passed per call, never stored on the notifier, never logged, and `HttpClient.post_json` keeps them out
of every error message. Payload builders are pure functions so their shape can be checked without a network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from tradesense_operator.clients.errors import Invalid
from tradesense_operator.clients.http import HttpClient

log = logging.getLogger(__name__)

PayloadFormat = Literal["slack", "pagerduty", "generic"]
PAYLOAD_FORMATS: tuple[str, ...] = get_args(PayloadFormat)
PAGERDUTY_SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info"}
PAGERDUTY_SUMMARY_LIMIT = 1024
SLACK_HEADER_LIMIT = 150
SLACK_TEXT_LIMIT = 3000
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class EscalationEvent:
    """An incident that passed its `respondBy` deadline without succeeding."""

    incident: str
    namespace: str
    runbook: str
    severity: str  # "P1".."P4"
    summary: str
    respond_by: datetime
    escalated_at: datetime
    phase: str
    current_step: str | None = None
    source: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        """Stable per incident, so repeated escalations update one PagerDuty alert instead of paging again."""
        return f"tradesense-operator/{self.namespace}/{self.incident}"

    @property
    def title(self) -> str:
        """One line for headers and summaries."""
        return f"[{self.severity}] {self.namespace}/{self.incident} ({self.runbook}) missed its response deadline"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _facts(event: EscalationEvent) -> dict[str, str]:
    facts = {
        "severity": event.severity,
        "runbook": event.runbook,
        "phase": event.phase,
        "respondBy": event.respond_by.isoformat(),
        "escalatedAt": event.escalated_at.isoformat(),
    }
    if event.current_step:
        facts["currentStep"] = event.current_step
    if event.source:
        facts["source"] = event.source
    return facts


def slack_payload(event: EscalationEvent) -> dict[str, Any]:
    """Incoming-webhook body: `text` is the notification fallback, `blocks` the rendered message."""
    facts = _facts(event)
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(v)}"} for k, v in list(facts.items())[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(event.title, SLACK_HEADER_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_slack_escape(event.summary), SLACK_TEXT_LIMIT)}},
        {"type": "section", "fields": fields},
    ]
    if event.details:
        lines = "\n".join(f"• {_slack_escape(k)}: {_slack_escape(v)}" for k, v in event.details.items())
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(lines, SLACK_TEXT_LIMIT)}]})
    return {"text": _clip(f"{event.title}: {event.summary}", SLACK_TEXT_LIMIT), "blocks": blocks}


def pagerduty_payload(event: EscalationEvent, routing_key: str) -> dict[str, Any]:
    """PagerDuty Events API v2 `trigger` event."""
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": event.dedup_key,
        "client": "tradesense-operator",
        "payload": {
            "summary": _clip(f"{event.title}: {event.summary}", PAGERDUTY_SUMMARY_LIMIT),
            "severity": PAGERDUTY_SEVERITY[event.severity],
            "source": f"{event.namespace}/{event.incident}",
            "timestamp": event.escalated_at.isoformat(),
            "component": event.runbook,
            "group": event.namespace,
            "class": "TradeSenseIncident",
            "custom_details": {**_facts(event), **event.details},
        },
    }


def generic_payload(event: EscalationEvent) -> dict[str, Any]:
    """A self-describing JSON document for any other receiver."""
    return {
        "apiVersion": "ops.tradesense.io/v1alpha1",
        "kind": "TradeSenseIncidentEscalation",
        "incident": event.incident,
        "namespace": event.namespace,
        "summary": event.summary,
        "dedupKey": event.dedup_key,
        **_facts(event),
        "details": dict(event.details),
    }


class Notifier:
    """Sends escalation events to a webhook in the format its receiver expects."""

    def __init__(self, http: HttpClient, *, timeout: float = 10.0) -> None:
        self._http = http
        self._timeout = timeout

    async def send(
        self,
        url: str,
        payload_format: PayloadFormat,
        event: EscalationEvent,
        routing_key: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Deliver `event`; raises `clients.errors` (Unavailable/Timeout are retryable) without revealing secrets.

        `idempotency_key` goes out as the `Idempotency-Key` header, the same on every resend of one
        notification, so a receiver that honours it (and PagerDuty through `dedup_key`) ignores repeats.
        """
        if payload_format not in PAYLOAD_FORMATS:
            raise Invalid(f"payload_format: must be one of {', '.join(PAYLOAD_FORMATS)}, got {payload_format!r}")
        if event.severity not in PAGERDUTY_SEVERITY:
            raise Invalid(f"severity: must be one of P1, P2, P3, P4, got {event.severity!r}")
        payload: dict[str, Any]
        if payload_format == "pagerduty":
            if not routing_key:
                raise Invalid("routing_key: required for the pagerduty payload format")
            payload = pagerduty_payload(event, routing_key)
        elif payload_format == "slack":
            payload = slack_payload(event)
        else:
            payload = generic_payload(event)
        status = await self._http.post_json(
            url,
            payload,
            timeout=self._timeout,
            target=f"{payload_format} notification webhook",
            redact=(routing_key,) if routing_key else (),
            headers={IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None,
        )
        log.info(
            "escalation of %s/%s sent as a %s notification (HTTP %d)",
            event.namespace,
            event.incident,
            payload_format,
            status,
        )
