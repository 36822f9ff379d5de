"""Escalation notifications go out at most once per escalation: the escalation and its notification key
are recorded in status before the send, and a resend after a crash carries the same key (the
Idempotency-Key header; PagerDuty's dedup_key), so the receiver can tell it is the same notification.

Real kopf operator, emulated API, a real loopback HTTP receiver.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from tests.integration.incidents.engine_harness import EngineEnv, step
from tests.support.rbac import with_and_without_rbac
from tests.support.services import WebhookRecorder

NOTIFICATIONS_SECRET = "tradesense-notifications"  # the name deploy/rbac's Role grants (by resourceNames)


def secret(env: EngineEnv, name: str, **values: str) -> None:
    env.cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": name, "namespace": env.namespace},
                        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}})


def escalation(env: EngineEnv, name: str) -> dict[str, Any]:
    return dict(env.status(name).get("escalation") or {})


async def test_a_resend_after_a_lost_record_carries_the_same_key(
    env: EngineEnv, webhook_recorder: WebhookRecorder
) -> None:
    secret(env, "pager", url=webhook_recorder.url, key="routing-key-1")
    status_path = f"/namespaces/{env.namespace}/tradesenseincidents/late/status"

    def lose_the_record(_: dict[str, Any]) -> None:
        # the receiver got it, but the operator's record of the send fails: as if it crashed right after
        if len(webhook_recorder.received()) == 1:
            env.cluster.inject_fault("PATCH", status_path, status=500, times=1)

    webhook_recorder.on_receive = lose_the_record
    env.start_operator()
    env.create_incident("late", env.spec(
        step("gate", "dr-failover", destructive=True), severity="P1",
        notification={"webhookSecretRef": {"name": "pager", "key": "url"}, "format": "pagerduty",
                      "routingKeySecretRef": {"name": "pager", "key": "key"}}))
    await env.wait_phase("late", "AwaitingApproval")

    env.clock.advance(timedelta(minutes=16))  # past respondBy (P1: 15 minutes)
    await webhook_recorder.wait_for_async(lambda _: True)
    uid = env.incident("late")["metadata"]["uid"]
    key = f"{uid}/DeadlinePassed"
    await env.wait_for("the intent in status", lambda: escalation(env, "late").get("notificationKey") == key)
    assert escalation(env, "late").get("notifiedAt") is None  # the record of the send was lost

    env.clock.advance(timedelta(seconds=61))  # the retry interval of an unconfirmed notification
    await env.wait_for("the resend to be recorded", lambda: escalation(env, "late").get("notifiedAt") is not None)
    received = webhook_recorder.received()
    assert len(received) == 2
    assert [r["headers"].get("Idempotency-Key") for r in received] == [key, key]
    assert received[0]["body"]["dedup_key"] == received[1]["body"]["dedup_key"]
    await env.wait_event("late", "EscalationNotified")  # Events follow the status write they describe
    assert env.reasons("late").count("Escalated") == 1
    assert env.reasons("late").count("EscalationNotified") == 1

    env.clock.advance(timedelta(minutes=5))
    env.patch_spec("late", {"approvals": ["gate"]})
    await env.wait_phase("late", "Succeeded")
    assert len(webhook_recorder.received()) == 2  # confirmed: never sent again


@with_and_without_rbac
async def test_a_failing_incident_records_its_escalation_before_the_send(
    env: EngineEnv, webhook_recorder: WebhookRecorder
) -> None:
    secret(env, NOTIFICATIONS_SECRET, url=webhook_recorder.url)
    seen_in_status: list[str] = []
    webhook_recorder.on_receive = lambda _: seen_in_status.append(
        str(escalation(env, "doomed").get("notificationKey", "")))
    env.start_operator()
    env.create_incident("doomed", env.spec(
        step("gate", "dr-failover", destructive=True), approvalTimeoutSeconds=60, failOnApprovalTimeout=True,
        notification={"webhookSecretRef": {"name": NOTIFICATIONS_SECRET, "key": "url"}, "format": "generic"}))
    await env.wait_phase("doomed", "AwaitingApproval")

    env.clock.advance(timedelta(seconds=61))
    status = await env.wait_phase("doomed", "Failed")
    key = f"{env.incident('doomed')['metadata']['uid']}/ApprovalTimedOut"
    assert seen_in_status == [key]  # the receiver saw the intent already stored when the request arrived
    assert status["escalation"]["notificationKey"] == key
    assert status["escalation"]["notifiedAt"] is not None
    received = webhook_recorder.received()
    assert [r["headers"].get("Idempotency-Key") for r in received] == [key]
    assert received[0]["body"]["phase"] == "Failed"
