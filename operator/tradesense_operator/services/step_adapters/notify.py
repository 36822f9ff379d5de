"""`./scripts/page-oncall.sh "<message>"`: send the incident to the escalation webhook of spec.notification.

Without spec.notification the step is skipped and says so (paging is then the human's job). The send
is recorded in the checkpoint; a resumed step does not page twice, and PagerDuty's dedup key (one per
incident) absorbs the one duplicate a crash between send and checkpoint could cause.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.clients.kube import INCIDENTS
from tradesense_operator.clients.notify import EscalationEvent, Notifier, PayloadFormat
from tradesense_operator.services.step_adapters.base import Outcome, StepContext, StepResult
from tradesense_operator.services.step_adapters.connections import http_client, secret_value
from tradesense_operator.services.step_adapters.step_inputs import require_str

NO_NOTIFICATION = "spec.notification is not set: page on-call by hand"


def _parse_time(value: object, default: datetime) -> datetime:
    if not isinstance(value, str):
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return default


class Notify:
    """Page on-call through the configured webhook (Slack-compatible, PagerDuty Events v2 or generic)."""

    name = StepAction.NOTIFY
    destructive = False

    async def describe(self, ctx: StepContext) -> str:
        message = require_str(ctx.step, "message")
        if ctx.spec.notification is None:
            return f"{NO_NOTIFICATION} (the step would be skipped): {message}"
        return f"send {message!r} to the {ctx.spec.notification.format} webhook of spec.notification"

    async def run(self, ctx: StepContext) -> StepResult:
        message = require_str(ctx.step, "message")
        notification = ctx.spec.notification
        if notification is None:
            return StepResult(Outcome.SKIPPED, f"{NO_NOTIFICATION}: {message}")
        if "notifiedAt" in ctx.checkpoint:
            return StepResult(Outcome.ALREADY_DONE, f"on-call already notified at {ctx.checkpoint['notifiedAt']}")
        url = await secret_value(ctx, notification.webhook_secret_ref, "spec.notification.webhookSecretRef")
        routing_key = None
        if notification.routing_key_secret_ref is not None:
            routing_key = await secret_value(
                ctx, notification.routing_key_secret_ref, "spec.notification.routingKeySecretRef"
            )
        now = ctx.runtime.clock.now()
        body = await ctx.runtime.kube.get_or_none(INCIDENTS, ctx.incident.name, ctx.incident.namespace) or {}
        status = body.get("status") or {}
        event = EscalationEvent(
            incident=ctx.incident.name,
            namespace=ctx.incident.namespace,
            runbook=ctx.spec.runbook.value,
            severity=ctx.spec.severity.value,
            summary=message,
            respond_by=_parse_time(status.get("respondBy"), now),
            escalated_at=now,
            phase=str(status.get("phase") or "Running"),
            current_step=ctx.step.id,
            source=ctx.spec.source.alertname or ctx.spec.source.kind,
        )
        fmt = cast(PayloadFormat, notification.format)  # the CRD pattern allows exactly these three
        async with http_client() as http:
            await Notifier(http).send(url, fmt, event, routing_key=routing_key)
        sent = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        await ctx.save_checkpoint({"notifiedAt": sent})
        return StepResult(Outcome.DONE, f"paged on-call ({notification.format}): {message}", {"notifiedAt": sent})
