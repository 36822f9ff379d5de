"""Engine flow against the emulated API with the real kopf operator: plan frozen in status, phases and
conditions, Events per transition, approvals, dry run, retries with backoff, step timeouts, cancel,
invalid specs, immutable spec fields, and that a finished incident is never run again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import (
    CALLS,
    EFFECTS,
    READY,
    EngineEnv,
    FlakyAction,
    Gate,
    default_actions,
    step,
)
from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, TradeSenseIncidentSpec
from tradesense_operator.cli import main
from tradesense_operator.domain.alerts import ALERT_LAST_SEEN_ANNOTATION, ALERT_STATUS_ANNOTATION
from tradesense_operator.domain.runbooks import resolve_plan
from tradesense_sandbox.kubeapi.errors import ApiError


def _condition(status: dict, type_: str) -> dict:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


async def test_steps_run_in_order_and_the_incident_succeeds(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("ok", env.spec(step("first"), step("second", "scale"), step("smoke", "smoke-test"),
                                       severity="P2"))
    status = await env.wait_phase("ok", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    assert [s["id"] for s in status["plan"]] == ["first", "second", "smoke"]
    assert [(s["id"], s["state"], s["attempts"]) for s in status["steps"]] == [
        ("first", "Succeeded", 1), ("second", "Succeeded", 1), ("smoke", "Succeeded", 1)]
    uid = env.incident("ok")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/first", f"{uid}/second", f"{uid}/smoke"]
    assert _condition(status, "Ready")["status"] == "True"
    assert _condition(status, "Progressing")["status"] == "False"
    assert status["resolvedAt"]
    assert "currentStep" not in status
    assert status["observedGeneration"] == env.incident("ok")["metadata"]["generation"]
    await env.wait_metric(1, "tradesense_operator_remediation_actions_total", action="scale", outcome="done")
    await env.wait_metric(1, "tradesense_operator_step_duration_seconds_count", action="set-env", outcome="done")
    await env.wait_metric(1, "tradesense_operator_incident_transitions_total", runbook="custom", phase="Succeeded")
    await env.wait_metric(1, "tradesense_operator_incidents", runbook="custom", phase="Succeeded")
    await env.wait_metric(0, "tradesense_operator_incidents", runbook="custom", phase="Running")
    await env.wait_event("ok", "IncidentSucceeded")
    # A step that finishes in one go has one Event, which names its action, target and attempt.
    assert env.reasons("ok") == ["Planned", "StepSucceeded", "StepSucceeded", "StepSucceeded", "IncidentSucceeded"]
    succeeded = [message for _, reason, message in env.events("ok") if reason == "StepSucceeded"]
    assert succeeded[0] == "[1/3] first: stamped first (set-env deployment/web, attempt 1/3)"
    assert succeeded[1].endswith(" (scale deployment/web, attempt 1/3)")


async def test_a_step_still_under_way_says_that_it_started(env: EngineEnv) -> None:
    # The action stops before its effect and never returns: after ANNOUNCE_AFTER_SECONDS its StepStarted is posted.
    gate = Gate("long", "before-effect")
    env.start_operator(default_actions(gate))
    env.create_incident("slow", env.spec(step("long")))
    assert await asyncio.to_thread(gate.reached.wait, 20), "the action never started"
    await env.wait_event("slow", "StepStarted")
    assert env.reasons("slow") == ["Planned", "StepStarted"]
    assert env.events("slow")[-1][2] == "[1/1] long (set-env deployment/web, attempt 1/3): test step long"
    assert env.steps("slow")["long"]["state"] == "Running"  # its Running checkpoint came first
    assert env.annotation_list(EFFECTS) == []


async def test_respond_by_follows_severity(env: EngineEnv) -> None:
    env.start_operator()
    created = env.create_incident("p1", env.spec(step("only"), severity="P1"))
    status = await env.wait_phase("p1", "Succeeded")
    created_at = datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(status["respondBy"].replace("Z", "+00:00")) == created_at + timedelta(minutes=15)


async def test_closing_checks_report_verifying_and_waiting_steps_are_polled(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("verify", env.spec(step("change"), step("rollout", "rollout-status")))
    status = await env.wait_phase("verify", "Verifying")
    await env.wait_for("a poll of the waiting step", lambda: env.step_message("verify", "rollout") == "not ready yet")
    rollout = env.steps("verify")["rollout"]
    assert (rollout["state"], rollout["attempts"], rollout["evidence"]) == ("Running", 1, {"polled": "yes"})
    assert status["currentStep"] == "rollout"

    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)
    status = await env.wait_phase("verify", "Succeeded")
    assert env.steps("verify")["rollout"]["attempts"] == 1
    await env.wait_event("verify", "IncidentSucceeded")
    # The waiting step says it started when its first poll finds it not done yet; later polls post no Events.
    assert env.reasons("verify") == ["Planned", "StepSucceeded", "StepStarted", "StepSucceeded", "IncidentSucceeded"]
    started = next(message for _, reason, message in env.events("verify") if reason == "StepStarted")
    assert started == "[2/2] rollout (rollout-status deployment/web, attempt 1/3): test step rollout"


async def test_destructive_step_waits_for_its_approval(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("gated", env.spec(step("before"), step("failover", "dr-failover", destructive=True),
                                          step("after")))
    status = await env.wait_phase("gated", "AwaitingApproval")
    uid = env.incident("gated")["metadata"]["uid"]
    steps = env.steps("gated")
    assert [steps[i]["state"] for i in ("before", "failover", "after")] == ["Succeeded", "AwaitingApproval", "Pending"]
    assert "'failover' to spec.approvals" in status["message"]
    assert _condition(status, "Progressing")["reason"] == "AwaitingApproval"
    assert env.annotation_list(EFFECTS) == [f"{uid}/before"]
    await env.wait_metric(1, "tradesense_operator_approvals_waiting", namespace=env.namespace)
    await env.wait_event("gated", "AwaitingApproval")

    env.patch_spec("gated", {"approvals": ["some-other-step"]})
    await env.wait_for("the other approval to be seen", lambda: env.incident("gated").get("metadata", {})
                       .get("generation") == env.status("gated").get("observedGeneration"))
    assert env.status("gated")["phase"] == "AwaitingApproval"

    env.patch_spec("gated", {"approvals": ["some-other-step", "failover"]})
    await env.wait_phase("gated", "Succeeded")
    assert env.annotation_list(EFFECTS) == [f"{uid}/before", f"{uid}/failover", f"{uid}/after"]
    assert env.reasons("gated").count("AwaitingApproval") == 1
    await env.wait_metric(0, "tradesense_operator_approvals_waiting", namespace=env.namespace)


async def test_dry_run_records_what_would_change_and_touches_nothing(env: EngineEnv) -> None:
    env.start_operator()
    before = env.deployment()
    env.create_incident("dry", env.spec(step("env"), step("failover", "dr-failover", destructive=True),
                                        step("smoke", "smoke-test"), dryRun=True))
    status = await env.wait_phase("dry", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    assert [(s["id"], s["state"], s["message"]) for s in status["steps"]] == [
        ("env", "WouldRun", "deployment/web would get stamp env"),
        ("failover", "WouldRun", "needs approval; deployment/web would get stamp failover"),
        ("smoke", "WouldRun", "deployment/web would get stamp smoke"),
    ]
    assert _condition(status, "DryRun")["reason"] == "DryRunComplete"
    assert _condition(status, "Ready")["reason"] == "DryRunComplete"
    assert "nothing was changed" in status["message"]
    after = env.deployment()
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    assert after["spec"] == before["spec"]
    assert env.cluster.find("coordination.k8s.io/v1", "Lease", "tradesense-remediation", env.namespace) is None
    await env.wait_event("dry", "DryRunComplete")
    # One Event for the whole dry run (it happens in one go): it names the runbook and what each step would change.
    assert env.reasons("dry") == ["DryRunComplete"]
    complete = next(message for _, reason, message in env.events("dry") if reason == "DryRunComplete")
    assert complete.startswith("runbook custom (P3, respond by ")
    assert ", dry run): dry run: 3 steps would run (1 need approval); nothing was changed" in complete
    assert all(f"[{i}/3] {s['id']}: {s['message']}" in complete for i, s in enumerate(status["steps"], start=1))
    assert [e["reason"] for e in status["timeline"]] == ["DryRunComplete"]


async def test_failed_attempts_are_retried_after_backoff(env: EngineEnv) -> None:
    actions = {**default_actions(), StepAction.SCALE: FlakyAction(StepAction.SCALE, failures=2)}
    env.start_operator(actions)
    env.create_incident("flaky", env.spec(step("flaky", "scale", retries=2)))
    for attempt in (1, 2):
        await env.wait_for(f"attempt {attempt} to fail",
                           lambda a=attempt: f"attempt {a}/3 failed" in env.step_message("flaky", "flaky"))
        assert env.steps("flaky")["flaky"]["nextAttemptAt"]
        assert env.status("flaky")["phase"] == "Running"
        env.clock.advance(timedelta(minutes=1))  # past the backoff (persisted as an absolute time)
    status = await env.wait_phase("flaky", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded"
    assert env.steps("flaky")["flaky"]["attempts"] == 3
    assert env.steps("flaky")["flaky"]["message"] == "worked on attempt 3"
    assert env.reasons("flaky").count("AttemptFailed") == 2


async def test_a_step_out_of_retries_fails_the_incident_and_cancels_the_rest(env: EngineEnv) -> None:
    actions = {**default_actions(), StepAction.SCALE: FlakyAction(StepAction.SCALE, failures=10)}
    env.start_operator(actions)
    env.create_incident("doomed", env.spec(step("first"), step("broken", "scale", retries=1), step("never")))
    await env.wait_for("the first failure", lambda: "attempt 1/2 failed" in env.step_message("doomed", "broken"))
    env.clock.advance(timedelta(minutes=1))
    await env.wait_phase("doomed", "Failed")
    await env.wait_event("doomed", "Escalated")
    status = env.status("doomed")
    steps = env.steps("doomed")
    assert steps["broken"]["state"] == "Failed"
    assert steps["broken"]["message"] == "failed after 2/2 attempts: simulated failure on attempt 2"
    assert (steps["never"]["state"], steps["never"]["message"]) == ("Cancelled", "not run: step broken failed")
    assert "step broken failed" in status["message"]
    assert _condition(status, "Ready")["status"] == "False"
    assert _condition(status, "Escalated")["reason"] == "IncidentFailed"
    uid = env.incident("doomed")["metadata"]["uid"]
    assert f"{uid}/never" not in env.annotation_list(EFFECTS)
    assert env.annotation_list(CALLS).count(f"{uid}/broken") == 2
    assert {"StepFailed", "IncidentFailed"} <= set(env.reasons("doomed"))
    await env.wait_for("the lock to be released", lambda: env.lease_holder() == "")


async def test_a_waiting_step_fails_its_attempt_at_the_step_timeout(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("slow", env.spec(step("rollout", "rollout-status", timeoutSeconds=30, retries=0)))
    await env.wait_for("the first poll", lambda: env.step_message("slow", "rollout") == "not ready yet")
    env.clock.advance(timedelta(seconds=29))
    await env.wait_for("more polls", lambda: env.status("slow")["phase"] == "Running")
    env.clock.advance(timedelta(seconds=2))
    status = await env.wait_phase("slow", "Failed")
    assert "30s" in env.steps("slow")["rollout"]["message"]
    assert "not ready yet" in env.steps("slow")["rollout"]["message"]
    assert status["steps"][0]["attempts"] == 1


async def test_cancel_stops_before_the_next_step_and_releases_the_lock(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("stop", env.spec(step("done"), step("gate", "dr-failover", destructive=True), step("later")))
    await env.wait_phase("stop", "AwaitingApproval")
    await env.wait_for("the approval wait to leave the lock", lambda: env.lease_holder() == "")

    env.patch_spec("stop", {"cancel": True})
    status = await env.wait_phase("stop", "Cancelled")
    assert [s["state"] for s in status["steps"]] == ["Succeeded", "Cancelled", "Cancelled"]
    await env.wait_for("the lock to be released", lambda: env.lease_holder() == "")
    uid = env.incident("stop")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/done"]
    await env.wait_event("stop", "IncidentCancelled")


async def test_a_finished_incident_reapplied_or_resumed_does_nothing(env: EngineEnv) -> None:
    handle = env.start_operator()
    spec = env.spec(step("once"))
    env.create_incident("final", spec)
    await env.wait_phase("final", "Succeeded")
    await env.wait_event("final", "IncidentSucceeded")
    status = env.status("final")
    events = env.events("final")

    env.patch_spec("final", spec)                  # what a GitOps sync of the unchanged manifest does
    env.patch_spec("final", {"approvals": ["once"]})  # even a change of a mutable field
    handle.stop()
    env.start_operator()                           # and an operator restart
    await asyncio.sleep(0.5)                       # proving an absence: give a wrongly started daemon time

    assert env.status("final") == status
    assert env.events("final") == events
    uid = env.incident("final")["metadata"]["uid"]
    assert env.annotation_list(CALLS) == [f"{uid}/once"]


async def test_the_crd_schema_rejects_malformed_specs(env: EngineEnv) -> None:
    with pytest.raises(ApiError) as caught:
        env.create_incident("bad-severity", env.spec(step("x"), severity="P9"))
    assert caught.value.code == 422
    assert "severity" in caught.value.message
    with pytest.raises(ApiError) as caught:
        env.create_incident("no-steps", {"runbook": "custom"})
    assert caught.value.code == 422


async def test_a_spec_the_catalogue_cannot_plan_fails_naming_the_field(env: EngineEnv) -> None:
    env.start_operator(planner=resolve_plan)
    env.create_incident("restore", {"runbook": "data-corruption", "target": {"namespace": env.namespace}})
    status = await env.wait_phase("restore", "Failed")
    valid = _condition(status, "SpecValid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert "spec.parameters.backupPolicy" in valid["message"]
    assert "spec.parameters.backupPolicy" in status["message"]
    await env.wait_event("restore", "InvalidSpec")
    kind, _, message = next(e for e in env.events("restore") if e[1] == "InvalidSpec")
    assert kind == "Warning"
    assert "spec.parameters.backupPolicy" in message


async def test_immutable_fields_are_enforced_by_the_api_server(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("fixed", env.spec(step("gate", "dr-failover", destructive=True)))
    await env.wait_phase("fixed", "AwaitingApproval")
    with pytest.raises(ApiError) as caught:
        env.patch_spec("fixed", {"severity": "P1"})
    assert caught.value.code == 422


async def test_an_immutable_field_changed_behind_the_api_servers_back_blocks_the_incident(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("edited", env.spec(step("gate", "dr-failover", destructive=True)))
    await env.wait_phase("edited", "AwaitingApproval")
    fingerprint = dict(env.status("edited")["specFingerprint"])
    # As if the target had been edited where no CEL rule ran: the stored fingerprint no longer matches.
    env.cluster.patch("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "edited",
                      {"status": {"specFingerprint": {**fingerprint, "target": "0000000000000000"}}},
                      env.namespace, subresource="status")
    status = await env.wait_phase("edited", "Blocked")
    assert status["message"].startswith("spec.target changed after the incident started")
    await env.wait_event("edited", "Blocked")

    env.cluster.patch("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "edited",
                      {"status": {"specFingerprint": fingerprint}}, env.namespace, subresource="status")
    await env.wait_phase("edited", "AwaitingApproval")


async def test_the_operator_freezes_the_plan_the_cli_prints(
    env: EngineEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"runbook": "complete-failure", "severity": "P1", "dryRun": True, "target": {"namespace": env.namespace}}
    manifest = tmp_path / "incident.yaml"
    manifest.write_text(json.dumps({"apiVersion": "ops.tradesense.io/v1alpha1", "kind": "TradeSenseIncident",
                                    "metadata": {"name": "outage"}, "spec": spec}), encoding="utf-8")
    assert main(["plan", "-f", str(manifest), "-o", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)

    env.start_operator(actions={}, planner=resolve_plan)
    env.create_incident("outage", spec)
    status = await env.wait_phase("outage", "Succeeded", "Failed")
    assert status["plan"] == printed


async def test_alert_resolution_recorded_by_the_bridge_becomes_a_condition_even_after_the_end(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("alerted", env.spec(step("gate", "dr-failover", destructive=True),
                                            source={"kind": "alertmanager", "fingerprint": "abc123"}))
    await env.wait_phase("alerted", "AwaitingApproval")

    def annotate(state: str, seen: str) -> None:
        env.cluster.patch("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "alerted",
                          {"metadata": {"annotations": {ALERT_STATUS_ANNOTATION: state,
                                                        ALERT_LAST_SEEN_ANNOTATION: seen}}}, env.namespace)

    def alert_condition() -> dict:
        return next((c for c in env.status("alerted").get("conditions", []) if c["type"] == "AlertResolved"), {})

    annotate("firing", "2026-01-05T14:30:00Z")
    await env.wait_for("AlertFiring", lambda: alert_condition().get("reason") == "AlertFiring")
    assert alert_condition()["status"] == "False"

    env.patch_spec("alerted", {"approvals": ["gate"]})
    await env.wait_phase("alerted", "Succeeded")
    await env.wait_event("alerted", "IncidentSucceeded")
    events = env.events("alerted")
    annotate("resolved", "2026-01-05T14:41:00Z")
    await env.wait_for("AlertResolved", lambda: alert_condition().get("status") == "True")
    assert alert_condition()["message"] == "Alertmanager reported the alert resolved at 2026-01-05T14:41:00Z"
    assert env.status("alerted")["phase"] == "Succeeded"
    assert env.events("alerted") == events


class _BrokenAction:
    """An action with a bug: the engine must fail the attempt, not loop on the exception."""

    name = StepAction.SCALE
    destructive = False

    async def describe(self, ctx: object) -> str:
        raise KeyError("replicas")

    async def run(self, ctx: object) -> None:
        raise KeyError("replicas")


async def test_an_action_bug_fails_the_step_instead_of_wedging_the_incident(env: EngineEnv) -> None:
    env.start_operator({**default_actions(), StepAction.SCALE: _BrokenAction()})  # type: ignore[dict-item]
    env.create_incident("buggy", env.spec(step("broken", "scale", retries=0), step("after")))
    status = await env.wait_phase("buggy", "Failed")
    assert "unexpected KeyError in action scale" in env.step_message("buggy", "broken")
    assert status["steps"][1]["state"] == "Cancelled"


async def test_a_dry_run_survives_a_broken_describe(env: EngineEnv) -> None:
    env.start_operator({**default_actions(), StepAction.SCALE: _BrokenAction()})  # type: ignore[dict-item]
    env.create_incident("dry-buggy", env.spec(step("broken", "scale"), step("fine"), dryRun=True))
    status = await env.wait_phase("dry-buggy", "Succeeded")
    assert [s["message"] for s in status["steps"]] == [
        "cannot tell what would change: unexpected KeyError", "deployment/web would get stamp fine"]


async def test_a_transient_api_failure_of_a_status_write_is_retried(env: EngineEnv) -> None:
    env.start_operator()
    # Two status writes fail with 503: the daemon's TemporaryError makes kopf retry it (after the idle poll
    # delay), it re-reads the incident and carries on from what was persisted.
    rule = env.cluster.inject_fault("PATCH", r"/tradesenseincidents/flaky-api/status$", status=503, times=2)
    env.create_incident("flaky-api", env.spec(step("first"), step("second")))
    status = await env.wait_phase("flaky-api", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded"
    assert rule.hits == 2
    uid = env.incident("flaky-api")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/first", f"{uid}/second"]


async def test_an_approval_wakes_the_engine_instead_of_waiting_for_the_next_poll(env: EngineEnv) -> None:
    env.settings = env.settings.model_copy(update={"step_poll_seconds": 20.0})  # the idle poll is 100 s now
    env.start_operator()
    env.create_incident("woken", env.spec(step("gate", "dr-failover", destructive=True)))
    await env.wait_phase("woken", "AwaitingApproval")
    env.patch_spec("woken", {"approvals": ["gate"]})
    await env.wait_phase("woken", "Succeeded", timeout=10)


async def test_a_cancel_wakes_the_engine_too(env: EngineEnv) -> None:
    env.settings = env.settings.model_copy(update={"step_poll_seconds": 20.0})
    env.start_operator()
    env.create_incident("halted", env.spec(step("gate", "dr-failover", destructive=True)))
    await env.wait_phase("halted", "AwaitingApproval")
    env.patch_spec("halted", {"cancel": True})
    await env.wait_phase("halted", "Cancelled", timeout=10)


async def test_the_frozen_plan_survives_a_catalogue_change_across_a_restart(env: EngineEnv) -> None:
    first = env.start_operator()
    env.create_incident("frozen-plan", env.spec(step("before"), step("gate", "dr-failover", destructive=True),
                                                step("after")))
    await env.wait_phase("frozen-plan", "AwaitingApproval")
    plan = env.status("frozen-plan")["plan"]
    first.stop()

    def changed_catalogue(spec: TradeSenseIncidentSpec) -> list[PlannedStep]:
        raise AssertionError("an incident in flight must never be planned again")

    env.start_operator(planner=changed_catalogue)
    env.patch_spec("frozen-plan", {"approvals": ["gate"]})
    status = await env.wait_phase("frozen-plan", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded"
    assert status["plan"] == plan
