"""High availability: two operator replicas behind the leader-election Lease. Only the leader acts
(the follower's kopf never starts), and when the leader is killed mid-incident — a step WAITING on a
rollout — the follower takes over after the lease duration and finishes the incident with every effect
exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.incidents.engine_harness import (
    EFFECTS,
    READY,
    EngineEnv,
    build_registry,
    custom_planner,
    default_actions,
    step,
)
from tests.reliability.ha_harness import ElectedOperator, launch
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import Endpoint

LEASE = "tradesense-operator-leader"


@pytest.fixture
def env(kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory) -> EngineEnv:
    engine_env = EngineEnv(kube_cluster, test_namespace, kubeconfig_path, operator_factory)
    engine_env.create_deployment()
    return engine_env


@pytest.fixture
def replicas(env: EngineEnv) -> Iterator[dict[str, ElectedOperator]]:
    started: dict[str, ElectedOperator] = {}

    def replica(identity: str) -> ElectedOperator:
        registry = build_registry(env.kubeconfig, clock=env.clock, settings=env.settings,
                                  actions=default_actions(), planner=custom_planner)
        started[identity] = launch(Endpoint.of(env.cluster), env.kubeconfig, identity=identity,
                                   lease_namespace=env.namespace, registry=registry, namespaces=[env.namespace])
        return started[identity]

    for name in ("replica-a", "replica-b"):
        replica(name)
        # Let the first one win deterministically before the second starts competing.
        if name == "replica-a":
            assert started[name].leading.wait(10), "the first replica never became leader"
    yield started
    for handle in started.values():
        handle.shutdown()


def lease_holder(env: EngineEnv) -> str:
    lease = env.cluster.find("coordination.k8s.io/v1", "Lease", LEASE, env.namespace)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


async def test_the_follower_finishes_an_in_flight_incident_after_the_leader_is_killed(
    env: EngineEnv, replicas: dict[str, ElectedOperator]
) -> None:
    leader, follower = replicas["replica-a"], replicas["replica-b"]
    assert await asyncio.to_thread(leader._ready_flag.wait, 20), "the leader's kopf never became ready"
    env.create_incident("failover", env.spec(step("configure", "set-env"), step("rollout", "rollout-status"),
                                             step("smoke", "smoke-test")))
    await env.wait_for("the rollout step waiting", lambda: env.steps("failover").get("rollout", {}).get(
        "state") == "Running" and env.annotation_list(EFFECTS) != [])
    assert lease_holder(env) == "replica-a"
    assert not follower.leading.is_set(), "the follower acted while the leader held the Lease"

    leader.kill()
    env.cluster.patch("apps/v1", "Deployment", "web", {"metadata": {"annotations": {READY: "true"}}}, env.namespace)
    assert await asyncio.to_thread(follower.leading.wait, 15), "the follower never took over"
    status = await env.wait_phase("failover", "Succeeded", "Failed", timeout=30)

    assert status["phase"] == "Succeeded", status
    uid = env.incident("failover")["metadata"]["uid"]
    assert env.annotation_list(EFFECTS) == [f"{uid}/configure", f"{uid}/smoke"]
    assert all(s["attempts"] == 1 for s in status["steps"])
    assert lease_holder(env).startswith("replica-b")
    assert "StepResumed" in env.reasons("failover")


async def test_only_one_replica_leads_while_both_run(env: EngineEnv, replicas: dict[str, ElectedOperator]) -> None:
    await asyncio.sleep(1.0)  # several retry periods: the follower keeps polling and keeps losing
    assert replicas["replica-a"].leading.is_set()
    assert not replicas["replica-b"].leading.is_set()
    assert lease_holder(env) == "replica-a"
