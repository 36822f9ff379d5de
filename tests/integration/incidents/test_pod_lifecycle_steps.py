"""The pod waits on a cluster that behaves like a real one: pods stuck Terminating on a NotReady node, evicted
pods kept in phase Failed, containers in ImagePullBackOff, rollouts that stall (the emulator's kubelet knobs).

The complete-failure runbook's `delete-postgres-pods` / `wait-postgres-ready` and `backend-rollout` steps are
run as the engine runs them; what matters is that they finish (or fail) with the pods and reasons named,
instead of waiting for their timeout on a pod that will never change.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed


def _node_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["nodeName"])


async def test_delete_pods_proceeds_once_the_replacement_is_ready_and_names_the_pod_stuck_terminating(
    tradesense: TradesenseEnv,
) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    [old] = env.pods("postgres")
    node = _node_of(old)
    env.cluster.set_node_ready(node, False)  # the site-down case: the node stops reporting
    try:
        # the replacement may only land on the other node; nobody confirms the old pod's deletion
        result = await env.run_step(spec, env.step(spec, "delete-postgres-pods"))
        assert result.outcome is Outcome.DONE
        assert old["metadata"]["name"] in result.evidence["stillTerminating"]
        assert f"node {node} NotReady" in result.message
        left = env.cluster.find("v1", "Pod", old["metadata"]["name"], env.namespace)
        assert left is not None
        assert left["metadata"]["deletionTimestamp"]  # still Terminating, and not force-deleted by the step
        replacement = [p for p in env.pods("postgres") if p["metadata"]["uid"] != old["metadata"]["uid"]]
        assert [_node_of(p) for p in replacement] != [node]

        waited = await env.run_step(spec, env.step(spec, "wait-postgres-ready"))
        assert waited.outcome is Outcome.DONE
        assert "Terminating" in waited.evidence["notCounted"]
    finally:
        env.cluster.set_node_ready(node, True)


async def test_wait_pods_ready_ignores_an_evicted_pod_and_reports_it(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    [victim] = env.pods("redis")
    env.cluster.evict_pod(env.namespace, victim["metadata"]["name"])

    result = await env.run_step(spec, env.step(spec, "wait-redis-ready"))

    assert result.outcome is Outcome.DONE
    assert result.evidence["notCounted"] == f"{victim['metadata']['name']} (Evicted)"
    assert env.cluster.get("v1", "Pod", victim["metadata"]["name"], env.namespace)["status"]["phase"] == "Failed"
    assert result.evidence["ready"] == "1"


async def test_wait_pods_ready_names_the_pod_in_image_pull_back_off(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    env.cluster.set_pod_waiting("ImagePullBackOff", namespace=env.namespace, label_selector="app=redis")
    [old] = env.pods("redis")
    env.cluster.delete("v1", "Pod", old["metadata"]["name"], env.namespace)

    with pytest.raises(AssertionError, match=r"waiting for redis-\S+ \(ImagePullBackOff\)"):
        await env.run_step(spec, env.step(spec, "wait-redis-ready"))


async def test_a_stalled_rollout_fails_naming_the_pods_and_their_reason(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("complete-failure")
    env.cluster.set_pod_waiting("CrashLoopBackOff", namespace=env.namespace, label_selector="app=backend")
    env.cluster.patch("apps/v1", "Deployment", "backend", {"spec": {"progressDeadlineSeconds": 1}}, env.namespace)
    await env.run_step(spec, env.step(spec, "restart-backend"))
    step = env.step(spec, "backend-rollout")

    with pytest.raises(StepFailed) as failure:
        await env.run_step(spec, step)

    message = str(failure.value)
    assert "exceeded its progress deadline" in message
    assert "pods not Ready: backend-" in message
    assert "(CrashLoopBackOff)" in message
