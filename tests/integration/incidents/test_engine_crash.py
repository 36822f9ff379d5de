"""Crash safety: the operator is killed (abruptly, no cleanup) at every boundary of a four-step
incident — after a step was checkpointed Running but before its effect, after its effect but before
the result was checkpointed, and after the result but before the next step started — then a new
operator process finishes the incident. Every effect must exist exactly once, no finished step may be
invoked again, and the storm guard must have recorded the restart step once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from tests.integration.incidents.engine_harness import CALLS, EFFECTS, EngineEnv, Gate, default_actions, step
from tradesense_operator.domain.incident.storm import HISTORY_ANNOTATION

STEPS = ("configure", "restart", "scale", "smoke")
KILL_POINTS = [
    (step_id, point)
    for index, step_id in enumerate(STEPS)
    for point in ("before-effect", "after-effect", "after-return")
    if not (point == "after-return" and index == len(STEPS) - 1)
]


@pytest.mark.parametrize(("kill_step", "kill_point"), KILL_POINTS, ids=[f"{s}-{p}" for s, p in KILL_POINTS])
async def test_killed_at_a_step_boundary_the_incident_finishes_with_every_effect_once(
    env: EngineEnv, kill_step: str, kill_point: str
) -> None:
    stall: list[object] = []

    def stall_next_step() -> None:
        # A third of the Lease passes as the step returns: the engine's next call after checkpointing this result
        # is the renewal of the namespace Lease before the next step starts (the freeze check reads a cache).
        env.clock.advance(timedelta(seconds=env.settings.lock_lease_seconds / 3 + 1))
        stall.append(env.cluster.inject_fault(
            "PUT", f"^/apis/coordination.k8s.io/v1/namespaces/{env.namespace}/leases/tradesense-remediation$",
            latency=5))

    gate = Gate(kill_step, kill_point, on_return=stall_next_step)
    crashing = env.start_operator(default_actions(gate))
    env.create_incident("crashy", env.spec(step("configure", "set-env"), step("restart", "rollout-restart"),
                                           step("scale", "scale"), step("smoke", "smoke-test")))
    assert await asyncio.to_thread(gate.reached.wait, 20), f"{kill_step} never reached {kill_point}"
    if kill_point == "after-return":
        await env.wait_for("the result checkpoint", lambda: env.steps("crashy")[kill_step]["state"] == "Succeeded")
        await env.wait_for("the engine to stall before the next step",
                           lambda: bool(stall) and stall[0].hits == 1)  # type: ignore[attr-defined]
    else:
        assert env.steps("crashy")[kill_step]["state"] == "Running"
    crashing.kill()
    assert env.status("crashy")["phase"] in ("Running", "Verifying")

    env.start_operator(default_actions())
    status = await env.wait_phase("crashy", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    uid = env.incident("crashy")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/{s}" for s in STEPS]
    calls = env.annotation_list(CALLS)
    resumed = kill_point in ("before-effect", "after-effect")
    assert {s: calls.count(f"{uid}/{s}") for s in STEPS} == {
        s: 2 if (s == kill_step and resumed) else 1 for s in STEPS}
    assert all(s["attempts"] == 1 for s in status["steps"])
    history = json.loads(env.deployment()["metadata"]["annotations"][HISTORY_ANNOTATION])
    assert [r["by"] for r in history] == [f"{uid}/restart"]
    await env.wait_event("crashy", "IncidentSucceeded")
    reasons = env.reasons("crashy")
    assert reasons.count("StepResumed") == (1 if resumed else 0)
    assert reasons.count("StepSucceeded") == len(STEPS)
