"""high-error-rate runbook: ERROR lines in the backend pods' logs counted, the Deployment rolled back to the
previous revision's pod template exactly as `kubectl rollout undo` does, and a resumed undo that does not
undo itself."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.services.step_adapters.base import Outcome, StepFailed
from tradesense_operator.services.step_adapters.registry import ACTIONS
from tradesense_operator.services.step_adapters.workloads import REVISION
from tradesense_sandbox.tradesense_namespace import wait_workloads_ready


def image(env: TradesenseEnv) -> str:
    return str(env.deployment("backend")["spec"]["template"]["spec"]["containers"][0]["image"])


async def deploy_bad_release(env: TradesenseEnv) -> None:
    env.cluster.patch(
        "apps/v1", "Deployment", "backend",
        {"spec": {"template": {"spec": {"containers": [{"name": "backend", "image": "tradesense/backend:v2.0.1"}]}}}},
        env.namespace, content_type="application/strategic-merge-patch+json",
    )
    await asyncio.to_thread(wait_workloads_ready, env.cluster, env.namespace)


@with_and_without_rbac
async def test_rolls_back_to_the_previous_revision_after_counting_errors(tradesense: TradesenseEnv) -> None:
    env = tradesense
    await deploy_bad_release(env)
    assert image(env) == "tradesense/backend:v2.0.1"
    assert env.deployment("backend")["metadata"]["annotations"][REVISION] == "2"
    env.app.set_mode(errors=1.0)
    async with aiohttp.ClientSession() as session:
        for _ in range(4):
            async with session.get(f"{env.app.base_url}/api/v1/trades") as response:
                assert response.status == 500
    for pod in env.pods("backend"):
        env.cluster.set_pod_log(env.namespace, pod["metadata"]["name"], env.app.logs.text())
    spec = env.spec("high-error-rate")
    rollback = env.step(spec, "rollback")
    described = await ACTIONS[rollback.action].describe(env.context(spec, rollback))
    assert described.startswith("roll back deployment/backend from revision 2 to revision 1 (replicaset/")
    assert described.endswith("image tradesense/backend:v2.0.0)")

    results = await env.run_plan(spec)

    assert int(results["error-logs"].evidence["matches"]) >= 4 * 3  # ≥ 4 ERROR lines in each of 3 pods
    assert "ERROR" in results["error-logs"].evidence["line1"]
    assert image(env) == "tradesense/backend:v2.0.0"
    assert results["rollback"].evidence["toRevision"] == "1"
    assert env.checkpoints["rollback"]["fromRevision"] == "2"
    assert results["backend-rollout"].outcome is Outcome.DONE
    assert env.deployment("backend")["metadata"]["annotations"][REVISION] == "3"  # revision 1 renumbered

    # resumed after a crash: the checkpointed ReplicaSet is already in place; "the previous revision" now
    # would be v2.0.1 again, which the checkpoint prevents
    again = await env.run_step(spec, env.step(spec, "rollback"))
    assert again.outcome is Outcome.ALREADY_DONE
    assert image(env) == "tradesense/backend:v2.0.0"


async def test_rollback_without_history_fails_clearly(tradesense: TradesenseEnv) -> None:


    env = tradesense
    spec = env.spec("high-error-rate")
    with pytest.raises(StepFailed, match="no previous revision"):
        await env.run_step(spec, env.step(spec, "rollback"))
