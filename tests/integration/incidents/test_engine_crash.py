"""Crash safety: the operator is killed (abruptly, no cleanup) at every boundary of a four-step
incident — after a step was checkpointed Running but before its effect, after its effect but before
the action returned, and after it returned while the next step's gate is checked (its result is staged:
it is written with the next step's Running checkpoint, so it is not stored yet) — then a new operator
process finishes the incident. Every effect must exist exactly once, a step whose result is stored is
never invoked again (one whose result was not is invoked once more, and its idempotency makes that no
second effect), and the storm guard must have recorded the restart step once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

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
        await env.wait_for("the engine to stall before the next step",
                           lambda: bool(stall) and stall[0].hits == 1)  # type: ignore[attr-defined]
    assert env.steps("crashy")[kill_step]["state"] == "Running"  # the result rides with the next write
    crashing.kill()
    assert env.status("crashy")["phase"] in ("Running", "Verifying")

    env.start_operator(default_actions())
    status = await env.wait_phase("crashy", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    uid = env.incident("crashy")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/{s}" for s in STEPS]
    calls = env.annotation_list(CALLS)
    resumed = True  # at every kill point the stored status shows the step Running: it is resumed
    assert {s: calls.count(f"{uid}/{s}") for s in STEPS} == {
        s: 2 if (s == kill_step and resumed) else 1 for s in STEPS}
    assert all(s["attempts"] == 1 for s in status["steps"])
    history = json.loads(env.deployment()["metadata"]["annotations"][HISTORY_ANNOTATION])
    assert [r["by"] for r in history] == [f"{uid}/restart"]
    await env.wait_event("crashy", "IncidentSucceeded")
    reasons = env.reasons("crashy")
    assert reasons.count("StepResumed") == (1 if resumed else 0)
    assert reasons.count("StepSucceeded") == len(STEPS)



async def test_the_result_of_an_action_whose_rerun_would_act_again_is_stored_before_the_next_step_starts(
    env: EngineEnv,
) -> None:
    """A pattern delete run twice would delete keys written since the first: its result does not ride with the
    next step's Running checkpoint (as a scale's does) but is stored on its own, so no crash after it can
    invoke it again. Every stored version of the incident is recorded to show the order."""
    stored: list[dict[str, str]] = []

    def record(rtype: Any, _event: str, obj: dict[str, Any], _old: Any) -> None:
        if rtype.kind == "TradeSenseIncident" and obj["metadata"]["name"] == "purging":
            stored.append({s["id"]: s.get("state", "") for s in (obj.get("status") or {}).get("steps") or []})

    env.cluster.store.add_listener(record)
    env.start_operator(default_actions())
    env.create_incident("purging", env.spec(step("scale-first", "scale"), step("purge", "redis-delete-pattern"),
                                            step("scale", "scale")))
    status = await env.wait_phase("purging", "Succeeded", "Failed")

    assert status["phase"] == "Succeeded"
    first = {key: next(v for v in stored if v.get(key) == "Succeeded") for key in ("scale-first", "purge")}
    assert first["purge"]["scale"] == "Pending", stored  # stored on its own, before the next step starts
    # the scale's result, by contrast, was first stored together with the next step's Running checkpoint
    assert first["scale-first"]["purge"] == "Running", stored
