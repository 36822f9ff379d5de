"""The namespace lock is held only while an incident acts: not while it awaits approval or backs off.
Incidents waiting for the lock are served by severity (a P1 never waits behind a P4), and an approval
that does not come in time escalates and, if so configured, times the incident out.

Real kopf operator, emulated API, controllable clock (engine harness).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tests.integration.incidents.engine_harness import EFFECTS, READY, EngineEnv, FlakyAction, default_actions, step
from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.domain.incident.lock_queue import WAITERS_ANNOTATION

LEASE = ("coordination.k8s.io/v1", "Lease", "tradesense-remediation")


def uid(env: EngineEnv, name: str) -> str:
    return str(env.incident(name)["metadata"]["uid"])


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def queued(env: EngineEnv) -> list[str]:
    """Names of the incidents in the Lease's waiter queue, in queue order."""
    lease = env.cluster.find(*LEASE, env.namespace) or {}
    raw = ((lease.get("metadata") or {}).get("annotations") or {}).get(WAITERS_ANNOTATION, "{}")
    return [identity.split("/")[1] for identity in json.loads(raw)]


async def test_an_incident_awaiting_approval_leaves_the_namespace_to_others(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("asking", env.spec(step("first"), step("gate", "dr-failover", destructive=True)))
    await env.wait_phase("asking", "AwaitingApproval")
    env.create_incident("other", env.spec(step("work", "scale")))

    await env.wait_phase("other", "Succeeded")  # ran while the first waited for people
    assert env.status("asking")["phase"] == "AwaitingApproval"
    env.patch_spec("asking", {"approvals": ["gate"]})
    await env.wait_phase("asking", "Succeeded")
    assert env.annotation_list(EFFECTS) == [f"{uid(env, 'asking')}/first", f"{uid(env, 'other')}/work",
                                            f"{uid(env, 'asking')}/gate"]


async def test_an_incident_backing_off_leaves_the_namespace_to_others(env: EngineEnv) -> None:
    env.start_operator({**default_actions(), StepAction.SCALE: FlakyAction(StepAction.SCALE, failures=1)})
    env.create_incident("flaky", env.spec(step("wobbly", "scale")))
    await env.wait_event("flaky", "AttemptFailed")  # the next attempt is due only when the clock moves
    await env.wait_for("the lock to be left", lambda: env.lease_holder() == "")
    env.create_incident("other", env.spec(step("work")))
    await env.wait_phase("other", "Succeeded")

    env.clock.advance(timedelta(minutes=1))  # past the backoff
    status = await env.wait_phase("flaky", "Succeeded")
    assert status["steps"][0]["attempts"] == 2


async def test_waiters_are_served_by_severity_before_age(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("holder", env.spec(step("roll", "rollout-status")))
    await env.wait_for("the holder's first poll", lambda: env.step_message("holder", "roll") == "not ready yet")
    for name, severity in (("low", "P4"), ("medium", "P3"), ("urgent", "P1")):  # oldest first
        env.create_incident(name, env.spec(step(f"{name}-step"), severity=severity))
    await env.wait_for("all three in the queue", lambda: sorted(queued(env)) == ["low", "medium", "urgent"])
    assert queued(env) == ["urgent", "medium", "low"]

    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)
    for name in ("holder", "urgent", "medium", "low"):
        await env.wait_phase(name, "Succeeded")
    assert env.annotation_list(EFFECTS) == [f"{uid(env, n)}/{n}-step" for n in ("urgent", "medium", "low")]
    assert queued(env) == []  # each took the Lease and left the line


async def test_an_approval_that_does_not_come_in_time_escalates_and_can_time_the_incident_out(
    env: EngineEnv,
) -> None:
    env.start_operator()
    gate = step("gate", "dr-failover", destructive=True)
    env.create_incident("patient", env.spec(gate, approvalTimeoutSeconds=600))
    env.create_incident("strict", env.spec(gate, approvalTimeoutSeconds=600, failOnApprovalTimeout=True))
    await env.wait_phase("patient", "AwaitingApproval")
    await env.wait_phase("strict", "AwaitingApproval")

    env.clock.advance(timedelta(seconds=601))
    status = await env.wait_phase("strict", "Failed")
    assert condition(status, "Ready")["reason"] == "ApprovalTimedOut"
    assert condition(status, "Escalated")["reason"] == "ApprovalTimedOut"
    assert status["steps"][0]["state"] == "Cancelled"
    assert env.annotation_list(EFFECTS) == []

    await env.wait_for("the escalation", lambda: "escalation" in env.status("patient"))
    assert condition(env.status("patient"), "Escalated")["reason"] == "ApprovalTimedOut"
    assert env.status("patient")["phase"] == "AwaitingApproval"  # escalated, still waiting
    env.patch_spec("patient", {"approvals": ["gate"]})
    await env.wait_phase("patient", "Succeeded")
    assert env.reasons("patient").count("Escalated") == 1


async def test_by_default_an_approval_waits_until_respond_by(env: EngineEnv) -> None:
    env.start_operator()
    gate = step("gate", "dr-failover", destructive=True)
    env.create_incident("p1", env.spec(gate, severity="P1", failOnApprovalTimeout=True))
    env.create_incident("control", env.spec(gate, severity="P1", approvalTimeoutSeconds=300,
                                            failOnApprovalTimeout=True))
    await env.wait_phase("p1", "AwaitingApproval")
    await env.wait_phase("control", "AwaitingApproval")

    env.clock.advance(timedelta(minutes=10))  # past the control's 5 minutes, within P1's 15 (respondBy)
    await env.wait_phase("control", "Failed")
    assert env.status("p1")["phase"] == "AwaitingApproval"
    assert "escalation" not in env.status("p1")

    env.clock.advance(timedelta(minutes=6))  # past respondBy
    status = await env.wait_phase("p1", "Failed")
    assert condition(status, "Ready")["reason"] == "ApprovalTimedOut"
    assert status["escalation"]["reason"] == "DeadlinePassed"  # respondBy escalated it first, once
