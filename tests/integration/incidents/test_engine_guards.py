"""Engine safety gates against the emulated API with the real kopf operator: the per-namespace Lease
(waiting, hand-over, take-over of an expired one), the restart-storm guard on the Deployment, the
namespace freeze, and escalation with exactly one webhook notification whose URL never leaks.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from tests.integration.incidents.engine_harness import EFFECTS, READY, EngineEnv, FlakyAction, default_actions, step
from tests.support.secrets import SecretGuard
from tests.support.services import WebhookRecorder
from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.domain.incident.freeze import FREEZE_ANNOTATION
from tradesense_operator.domain.incident.lease import Holder, format_micro_time
from tradesense_operator.domain.incident.storm import HISTORY_ANNOTATION

LEASE = ("coordination.k8s.io/v1", "Lease", "tradesense-remediation")


def _ready(env: EngineEnv) -> None:
    """The WaitingAction's rollout completes."""
    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)


def _condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


# -- the per-namespace lock ------------------------------------------------------------------------

async def test_a_second_incident_waits_for_the_lock_and_starts_when_the_first_finishes(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("first", env.spec(step("roll", "rollout-status")))
    await env.wait_for("the first poll", lambda: env.step_message("first", "roll") == "not ready yet")
    env.create_incident("second", env.spec(step("work")))

    status = await env.wait_phase("second", "Pending")
    await env.wait_for("the lock message", lambda: env.status("second")["message"] == "waiting for lock held by tsi/first")
    status = env.status("second")
    assert _condition(status, "Progressing")["reason"] == "WaitingForLock"
    assert env.steps("second")["work"]["state"] == "Pending"
    await env.wait_event("second", "WaitingForLock")

    _ready(env)
    await env.wait_phase("first", "Succeeded")
    await env.wait_phase("second", "Succeeded")
    second_uid = env.incident("second")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS)[-1] == f"{second_uid}/work"
    assert env.reasons("second").count("WaitingForLock") == 1


async def test_a_live_foreign_lease_is_waited_for_and_an_expired_one_taken_over(env: EngineEnv) -> None:
    ghost = Holder(namespace="elsewhere", name="ghost", uid="0000")
    env.cluster.create({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "tradesense-remediation", "namespace": env.namespace},
        "spec": {"holderIdentity": ghost.identity, "leaseDurationSeconds": 30, "leaseTransitions": 2,
                 "renewTime": format_micro_time(env.clock.now())},
    })
    env.start_operator()
    env.create_incident("patient", env.spec(step("work")))
    await env.wait_for("the lock message", lambda: env.status("patient").get("message")
                       == "waiting for lock held by tsi/ghost in namespace elsewhere")

    env.clock.advance(timedelta(seconds=31))  # the ghost stopped renewing: its Lease expires
    await env.wait_phase("patient", "Succeeded")
    lease = env.cluster.get(*LEASE, env.namespace)
    assert lease["spec"]["leaseTransitions"] == 3
    await env.wait_for("the release", lambda: env.lease_holder() == "")


# -- the restart-storm guard -----------------------------------------------------------------------

def _history(env: EngineEnv, *minutes_ago: int) -> str:
    now = env.clock.now()
    return json.dumps([{"at": (now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ"), "by": f"old/{m}"}
                       for m in sorted(minutes_ago, reverse=True)])


async def test_the_storm_guard_blocks_a_fourth_restart_within_the_hour(env: EngineEnv) -> None:
    env.cluster.patch("apps/v1", "Deployment", "web",
                      {"metadata": {"annotations": {HISTORY_ANNOTATION: _history(env, 50, 30, 10)}}}, env.namespace)
    env.start_operator()
    env.create_incident("storm", env.spec(step("restart", "rollout-restart")))

    status = await env.wait_phase("storm", "Blocked")
    assert "restart-storm guard: deployment/web was restarted 3 times in the last hour (limit 3)" in status["message"]
    assert _condition(status, "Progressing")["reason"] == "RestartStormGuard"
    assert env.steps("storm")["restart"]["state"] == "Pending"
    assert env.annotation_list(EFFECTS) == []
    await env.wait_event("storm", "Blocked")
    await env.wait_metric(1, "tradesense_operator_storm_guard_blocks_total", namespace=env.namespace, deployment="web")

    env.clock.advance(timedelta(minutes=11))  # the restart 50 minutes ago leaves the window
    await env.wait_phase("storm", "Succeeded")
    uid = env.incident("storm")["metadata"]["uid"]
    history = json.loads(env.deployment()["metadata"]["annotations"][HISTORY_ANNOTATION])
    assert [r["by"] for r in history] == ["old/30", "old/10", f"{uid}/restart"]


async def test_the_storm_guard_limit_comes_from_the_incident_when_given(env: EngineEnv) -> None:
    env.cluster.patch("apps/v1", "Deployment", "web",
                      {"metadata": {"annotations": {HISTORY_ANNOTATION: _history(env, 50, 30, 10)}}}, env.namespace)
    env.start_operator()
    env.create_incident("roomy", env.spec(step("restart", "rollout-restart"),
                                          parameters={"restartLimitPerHour": 4}))
    await env.wait_phase("roomy", "Succeeded")
    assert len(json.loads(env.deployment()["metadata"]["annotations"][HISTORY_ANNOTATION])) == 4


async def test_restarts_by_different_incidents_share_one_history(env: EngineEnv) -> None:
    env.settings = env.settings.model_copy(update={"restart_limit_per_hour": 2})
    env.start_operator()
    for name in ("one", "two"):
        env.create_incident(name, env.spec(step("restart", "rollout-restart")))
        await env.wait_phase(name, "Succeeded")
    env.create_incident("three", env.spec(step("restart", "rollout-restart")))
    status = await env.wait_phase("three", "Blocked")
    assert "limit 2" in status["message"]


# -- the namespace freeze --------------------------------------------------------------------------

def _freeze(env: EngineEnv, value: str | None) -> None:
    env.cluster.patch("v1", "Namespace", env.namespace, {"metadata": {"annotations": {FREEZE_ANNOTATION: value}}})


async def test_a_frozen_namespace_blocks_new_incidents_until_the_freeze_is_lifted(env: EngineEnv) -> None:
    _freeze(env, "true")
    env.start_operator()
    env.create_incident("frozen", env.spec(step("work")))
    status = await env.wait_phase("frozen", "Blocked")
    assert status["message"].startswith(f"namespace {env.namespace} is frozen ({FREEZE_ANNOTATION}=true)")
    assert _condition(status, "Progressing")["reason"] == "Frozen"
    assert env.annotation_list(EFFECTS) == []

    _freeze(env, None)
    await env.wait_phase("frozen", "Succeeded")
    assert len(env.annotation_list(EFFECTS)) == 1


async def test_a_freeze_mid_incident_stops_the_next_step_from_starting(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("midway", env.spec(step("before"), step("gate", "dr-failover", destructive=True), step("after")))
    await env.wait_phase("midway", "AwaitingApproval")
    _freeze(env, "true")
    env.patch_spec("midway", {"approvals": ["gate"]})
    await env.wait_phase("midway", "Blocked")
    assert env.steps("midway")["gate"]["state"] == "AwaitingApproval"
    assert env.lease_holder() == ""  # the approval wait left the namespace; the freeze starts nothing anyway

    _freeze(env, "false")
    await env.wait_phase("midway", "Succeeded")
    assert len(env.annotation_list(EFFECTS)) == 3


# -- escalation ------------------------------------------------------------------------------------

async def test_a_missed_deadline_escalates_once_and_the_webhook_url_never_leaks(
    env: EngineEnv, webhook_recorder: WebhookRecorder, secret_guard: SecretGuard
) -> None:
    token = secret_guard.plant(prefix="hooks-token")
    url = f"{webhook_recorder.url}/{token}"
    env.cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "pager", "namespace": env.namespace},
                        "data": {"url": base64.b64encode(url.encode()).decode()}})
    first = env.start_operator()
    env.create_incident("late", env.spec(step("gate", "dr-failover", destructive=True), severity="P1",
                                         notification={"webhookSecretRef": {"name": "pager", "key": "url"}}))
    await env.wait_phase("late", "AwaitingApproval")
    assert _condition(env.status("late"), "Escalated") is None

    env.clock.advance(timedelta(minutes=16))  # past respondBy (P1: 15 minutes)
    await env.wait_for("the escalation to be recorded",
                       lambda: (env.status("late").get("escalation") or {}).get("notifiedAt") is not None)
    status = env.status("late")
    escalated = _condition(status, "Escalated")
    assert (escalated["status"], escalated["reason"]) == ("True", "DeadlinePassed")
    assert "while AwaitingApproval, at step gate" in escalated["message"]
    received = webhook_recorder.received()
    assert len(received) == 1
    assert received[0]["path"].endswith(token)
    assert "late" in received[0]["body"]["text"]
    await env.wait_event("late", "EscalationNotified")

    first.stop()
    env.start_operator()  # a restarted operator reads the record in status: no second page
    env.clock.advance(timedelta(minutes=5))
    env.patch_spec("late", {"approvals": ["gate"]})
    await env.wait_phase("late", "Succeeded")
    assert len(webhook_recorder.received()) == 1
    assert env.reasons("late").count("Escalated") == 1
    await env.wait_metric(1, "tradesense_operator_escalations_total", severity="P1")
    snapshot = json.dumps([env.incident("late"), env.cluster.events(env.namespace)])
    secret_guard.add_source("incident and Events", lambda: snapshot)


async def test_the_lease_is_renewed_while_a_step_runs(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("long", env.spec(step("rollout", "rollout-status")))
    await env.wait_for("the first poll", lambda: env.step_message("long", "rollout") == "not ready yet")
    acquired = env.cluster.get(*LEASE, env.namespace)["spec"]

    env.clock.advance(timedelta(seconds=11))  # more than a third of the 30 s lease
    await env.wait_for("a renewal", lambda: env.cluster.get(*LEASE, env.namespace)["spec"]["renewTime"]
                       == format_micro_time(env.clock.now()))
    renewed = env.cluster.get(*LEASE, env.namespace)["spec"]
    assert renewed["acquireTime"] == acquired["acquireTime"]
    assert renewed["holderIdentity"] == acquired["holderIdentity"]


async def test_deleting_a_running_incident_releases_its_lease(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("doomed", env.spec(step("roll", "rollout-status")))
    await env.wait_for("the first poll", lambda: env.step_message("doomed", "roll") == "not ready yet")
    assert env.lease_holder().startswith(f"{env.namespace}/doomed/")
    env.cluster.delete("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "doomed", env.namespace)
    # No finalizer: the incident is gone at once; its daemon, told by the watch, stops the step and gives the
    # Lease back.
    assert env.cluster.find("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "doomed", env.namespace) is None
    await env.wait_for("the Lease to be released", lambda: env.lease_holder() == "")
    polls = env.cluster.stats.total("get", "deployments")
    env.create_incident("next", env.spec(step("work")))  # the namespace is free for the next incident
    await env.wait_phase("next", "Succeeded")
    # The deleted incident's rollout step stopped polling (the next incident's step reads the Deployment twice).
    assert env.cluster.stats.total("get", "deployments") - polls == 2


async def test_a_missing_target_namespace_blocks_with_the_reason(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("lost", {**env.spec(step("work")), "target": {"namespace": "no-such-namespace"}})
    status = await env.wait_phase("lost", "Blocked")
    assert status["message"] == "target namespace no-such-namespace does not exist"
    assert _condition(status, "Progressing")["reason"] == "MissingNamespace"


async def test_a_failing_webhook_is_recorded_without_its_url_and_retried_later(
    env: EngineEnv, webhook_recorder: WebhookRecorder, secret_guard: SecretGuard
) -> None:
    token = secret_guard.plant(prefix="hooks-token")
    dead = f"http://127.0.0.1:9/{token}"  # discard port: connection refused
    env.cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "pager", "namespace": env.namespace},
                        "data": {"url": base64.b64encode(dead.encode()).decode()}})
    env.start_operator()
    env.create_incident("unheard", env.spec(step("gate", "dr-failover", destructive=True), severity="P1",
                                            notification={"webhookSecretRef": {"name": "pager", "key": "url"}}))
    await env.wait_phase("unheard", "AwaitingApproval")
    env.clock.advance(timedelta(minutes=16))
    await env.wait_for("the failed notification", lambda: (env.status("unheard").get("escalation") or {})
                       .get("notificationError", "") != "")
    escalation = env.status("unheard")["escalation"]
    assert "notifiedAt" not in escalation
    await env.wait_event("unheard", "NotificationFailed")

    working = f"{webhook_recorder.url}/{token}"
    env.cluster.patch("v1", "Secret", "pager", {"data": {"url": base64.b64encode(working.encode()).decode()}},
                      env.namespace)
    env.clock.advance(timedelta(seconds=61))  # the next retry is due
    await env.wait_for("the retried notification",
                       lambda: (env.status("unheard").get("escalation") or {}).get("notifiedAt") is not None)
    assert len(webhook_recorder.received()) == 1
    assert env.status("unheard")["escalation"].get("notificationError", "") == ""
    snapshot = json.dumps([env.incident("unheard"), env.cluster.events(env.namespace)])
    secret_guard.add_source("incident and Events", lambda: snapshot)


async def test_a_failed_incident_pages_once_with_its_final_phase(
    env: EngineEnv, webhook_recorder: WebhookRecorder
) -> None:
    env.cluster.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "pager", "namespace": env.namespace},
                        "data": {"url": base64.b64encode(webhook_recorder.url.encode()).decode()}})
    env.start_operator({**default_actions(), StepAction.SCALE: FlakyAction(StepAction.SCALE, failures=10)})
    env.create_incident("broken", env.spec(
        step("broken", "scale", retries=0),
        notification={"webhookSecretRef": {"name": "pager", "key": "url"}, "format": "generic"}))
    await env.wait_phase("broken", "Failed")
    status = env.status("broken")
    assert status["escalation"]["reason"] == "IncidentFailed"
    assert status["escalation"]["notifiedAt"]
    [request] = webhook_recorder.received()
    assert request["body"]["phase"] == "Failed"
    assert "step broken failed" in request["body"]["summary"]
