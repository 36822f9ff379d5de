"""The emulated API misbehaves while the real operator runs incidents: 409 conflicts on status writes,
429 with Retry-After, 500s on the actions' reads and writes, slow answers, dropped watch connections
and 410 Gone (history compacted, re-list needed). Every incident still finishes, every step's effect
exists exactly once (counted on the Deployment), and no step is recorded twice.

Engine-level harness (H3's stamping actions), so each case isolates the API fault, not a runbook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import EFFECTS, EngineEnv, step
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.faults import FaultRule

STEPS = ("configure", "restart", "scale", "smoke")
ACTIONS = ("set-env", "rollout-restart", "scale", "smoke-test")


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory) -> EngineEnv:
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env


def spec(env: EngineEnv) -> dict[str, object]:
    # retries: an action whose API call failed with a 5xx is a failed attempt, retried per its policy
    return env.spec(*(step(s, a, retries=3) for s, a in zip(STEPS, ACTIONS, strict=True)))


def incidents_path(env: EngineEnv) -> str:
    return f"/apis/ops.tradesense.io/v1alpha1/namespaces/{env.namespace}/tradesenseincidents"


def deployments_path(env: EngineEnv) -> str:
    return f"/apis/apps/v1/namespaces/{env.namespace}/deployments/web"


Inject = Callable[[EngineEnv], list[FaultRule]]
FAULTS: dict[str, Inject] = {
    # a status write loses a race (someone else wrote): re-read and decide again
    "409-on-status-writes": lambda e: [e.cluster.inject_fault("PATCH", incidents_path(e) + "/[^/]+/status", status=409,
                                                              times=1)],
    # throttled: honour Retry-After (kube client) / back off (kopf)
    "429-retry-after": lambda e: [
        e.cluster.inject_fault("PATCH", deployments_path(e), status=429, retry_after=1, times=2),
        e.cluster.inject_fault("PATCH", incidents_path(e) + "/[^/]+/status", status=429, retry_after=1, times=1)],
    # the API server fails the actions' reads and writes (the engine no longer reads the incident between its
    # own writes: it decides from the last write's answer)
    "500s": lambda e: [
        e.cluster.inject_fault("GET", deployments_path(e), status=500, times=1),
        e.cluster.inject_fault("PATCH", deployments_path(e), status=500, times=2)],
    # every call to the namespace and the incident answers late (but within the timeouts)
    "slow-responses": lambda e: [
        e.cluster.inject_fault(None, f"/namespaces/{e.namespace}/", latency=0.2, times=15)],
}


async def _tick(env: EngineEnv) -> None:
    while True:
        await asyncio.sleep(0.1)
        env.clock.advance(1)


SLOW = {"500s", "409-on-status-writes"}  # kopf's 5 s TemporaryError delay per failed read/write


@pytest.mark.parametrize("fault", [pytest.param(f, marks=[pytest.mark.slow] if f in SLOW else []) for f in FAULTS])
async def test_request_faults_neither_lose_nor_duplicate_steps(env: EngineEnv, fault: str) -> None:
    env.start_operator()
    rules = FAULTS[fault](env)
    env.create_incident("faulty", spec(env))
    ticking = asyncio.ensure_future(_tick(env))  # failed attempts back off on the engine's (manual) clock
    try:
        status = await env.wait_phase("faulty", "Succeeded", "Failed", timeout=60)
    finally:
        ticking.cancel()
    assert status["phase"] == "Succeeded", status
    assert all(rule.hits >= 1 for rule in rules), [(r.path.pattern, r.hits) for r in rules]
    uid = env.incident("faulty")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/{s}" for s in STEPS]
    assert [s["state"] for s in status["steps"]] == ["Succeeded"] * len(STEPS)


async def test_dropped_watches_and_410_gone_still_deliver_every_incident(env: EngineEnv) -> None:
    env.start_operator()
    env.create_incident("before-drop", spec(env))
    await env.wait_for("the first incident started", lambda: bool(env.status("before-drop").get("steps")))
    assert env.cluster.drop_watches() >= 1          # connections cut: clients resume from their resourceVersion
    env.create_incident("after-drop", spec(env))    # created while the watch may be reconnecting
    await asyncio.sleep(0.2)
    assert env.cluster.expire_watches() >= 1        # 410 Gone: history compacted, clients must re-list
    env.create_incident("after-410", spec(env))
    for name in ("before-drop", "after-drop", "after-410"):
        status = await env.wait_phase(name, "Succeeded", "Failed", timeout=60)
        assert status["phase"] == "Succeeded", (name, status)
    stamps = env.annotation_list(EFFECTS)
    for name in ("before-drop", "after-drop", "after-410"):
        uid = env.incident(name)["metadata"]["uid"]
        assert [s for s in stamps if s.startswith(uid)] == [f"{uid}/{s}" for s in STEPS], name
    assert len(stamps) == 3 * len(STEPS)
