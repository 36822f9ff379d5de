"""The incident's own timeline in status: the story of `kubectl describe` still readable after the Events expired.

A real cluster drops Events after about an hour (kube-apiserver's --event-ttl flag); the emulator does the same on
its controllable clock. The incident runs a step, waits for an approval, runs the approved step and succeeds;
then the clock jumps past the TTL: the Events are gone and status.timeline still tells it, in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import EFFECTS, EngineEnv, step
from tradesense_operator.api.v1alpha1.incident import TIMELINE_LIMIT
from tradesense_sandbox.kubeapi import EmulatedCluster


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory) -> EngineEnv:
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env


async def test_the_timeline_in_status_outlives_the_events(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("story", env.spec(step("before"), step("failover", "dr-failover", destructive=True)))
    await env.wait_phase("story", "AwaitingApproval")
    env.patch_spec("story", {"approvals": ["failover"]})
    await env.wait_phase("story", "Succeeded")
    await env.wait_event("story", "IncidentSucceeded")
    await env.wait_for("the last event in the timeline",
                       lambda: "IncidentSucceeded" in [e["reason"] for e in env.status("story").get("timeline", [])])
    told = [(e["type"], e["reason"], e["message"]) for e in env.status("story")["timeline"]]

    env.cluster.advance_clock(env.cluster.event_ttl + 1)

    assert env.events("story") == []  # expired, as on a real cluster after an hour
    timeline = env.status("story")["timeline"]
    assert [(e["type"], e["reason"], e["message"]) for e in timeline] == told
    reasons = [e["reason"] for e in timeline]
    assert reasons.index("AwaitingApproval") < reasons.index("IncidentSucceeded")
    assert [r for r in reasons if r == "StepSucceeded"] == ["StepSucceeded", "StepSucceeded"]
    assert any("failover" in e["message"] for e in timeline if e["reason"] == "StepSucceeded")
    assert all(e["time"] for e in timeline)
    assert len(timeline) <= TIMELINE_LIMIT


async def test_a_slow_event_does_not_hold_up_the_next_step_and_events_keep_their_order(env: EngineEnv) -> None:
    """A finished step's Event is posted while the next step runs (the namespace Lease is not held for its round
    trip), yet every Event still follows the write that records its transition and they arrive in order."""
    env.start_operator()
    env.cluster.faults.add("POST", "/events$", latency=3.0, times=None)  # every Event answers 3 s late
    env.create_incident("slow", env.spec(step("one"), step("two")))

    def stamped() -> list[str]:
        annotations = env.cluster.get("apps/v1", "Deployment", "web", env.namespace)["metadata"].get("annotations")
        return [s.rsplit("/", 1)[-1] for s in json.loads((annotations or {}).get(EFFECTS, "[]"))]

    await env.wait_for("step two's effect", lambda: stamped() == ["one", "two"])
    assert "StepSucceeded" not in env.reasons("slow")  # step one's Event is still on its way
    await env.wait_phase("slow", "Succeeded")
    await env.wait_event("slow", "IncidentSucceeded")
    assert env.reasons("slow") == ["Planned", "StepSucceeded", "StepSucceeded", "IncidentSucceeded"]
    assert [e["reason"] for e in env.status("slow")["timeline"]] == env.reasons("slow")
