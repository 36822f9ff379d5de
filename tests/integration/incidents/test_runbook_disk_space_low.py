"""disk-space-low runbook: database size and largest tables as evidence, and the manual part (clean logs,
grow the volume) paged through the incident's webhook — once, even when the step is resumed."""

from __future__ import annotations

import base64

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.secrets import SecretGuard
from tests.support.services import WebhookRecorder
from tradesense_operator.services.step_adapters.base import Outcome


async def test_measures_the_database_and_pages_for_the_manual_part(
    tradesense: TradesenseEnv, webhook_recorder: WebhookRecorder, secret_guard: SecretGuard
) -> None:
    env = tradesense
    url = secret_guard.plant(f"{webhook_recorder.url}?token=hook-{env.redis_prefix.strip(':')}")
    env.cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pager", "namespace": env.namespace},
                        "data": {"url": base64.b64encode(url.encode()).decode()}})
    spec = env.spec("disk-space-low", severity="P2",
                    notification={"webhookSecretRef": {"name": "pager", "key": "url"}, "format": "slack"})

    results = await env.run_plan(spec)

    usage = results["disk-usage"]
    assert usage.evidence["databaseSize"].endswith("MiB")
    assert any("public.trades" in v for v in usage.evidence.values())
    assert results["notify-volume"].outcome is Outcome.DONE
    request = webhook_recorder.wait_for(lambda r: True)
    assert "Disk space low" in str(request["body"])
    assert url not in results["notify-volume"].message

    again = await env.run_step(spec, env.step(spec, "notify-volume"))
    assert again.outcome is Outcome.ALREADY_DONE
    assert len(webhook_recorder.received()) == 1


async def test_without_notification_the_page_is_skipped_with_the_reason(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("disk-space-low")
    result = await env.run_step(spec, env.step(spec, "notify-volume"))
    assert result.outcome is Outcome.SKIPPED
    assert result.message.startswith("spec.notification is not set")
