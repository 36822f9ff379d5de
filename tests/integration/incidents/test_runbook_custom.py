"""custom runbook (GitOps single actions): a blue/green switch of backend-service onto Ready green pods
(refused while none are Ready), a scale and a restart of one named Deployment."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome, StepFailed
from tradesense_sandbox.tradesense_namespace import deployment, wait_workloads_ready


def green(env: TradesenseEnv) -> dict[str, object]:
    body = deployment(env.namespace, "backend", 2)
    body["metadata"]["name"] = "backend-green"
    body["spec"]["selector"] = {"matchLabels": {"app": "backend", "version": "green"}}
    body["spec"]["template"]["metadata"]["labels"] = {"app": "backend", "version": "green"}
    return body


async def test_blue_green_switch_moves_the_selector_only_onto_ready_green_pods(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("custom", steps=[
        {"id": "switch-green", "action": "switch-service-selector", "target": "backend-service",
         "params": {"value": "green"}},
    ])
    step = env.step(spec, "switch-green")
    with pytest.raises(StepFailed, match="no Ready pods match app=backend,version=green"):
        await env.run_step(spec, step)
    assert env.cluster.get("v1", "Service", "backend-service", env.namespace)["spec"]["selector"]["version"] == "blue"

    env.cluster.create(green(env))
    await asyncio.to_thread(wait_workloads_ready, env.cluster, env.namespace)
    result = await env.run_step(spec, step)
    assert result.message == "service/backend-service selector version: blue → green (2 Ready pods behind it)"
    service = env.cluster.get("v1", "Service", "backend-service", env.namespace)
    assert service["spec"]["selector"] == {"app": "backend", "version": "green"}
    assert service["metadata"]["annotations"][STAMP_ANNOTATION] == f"{env.incident.uid}/switch-green"
    assert (await env.run_step(spec, step)).outcome is Outcome.ALREADY_DONE


async def test_custom_scale_and_restart_of_one_deployment(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("custom", steps=[
        {"id": "scale", "action": "scale", "target": "frontend", "params": {"replicas": 4}},
        {"id": "restart", "action": "rollout-restart", "target": "frontend"},
        {"id": "wait", "action": "rollout-status", "target": "frontend"},
    ])
    old = {p["metadata"]["uid"] for p in env.pods("frontend")}
    results = await env.run_plan(spec)
    assert results["scale"].message == "frontend replicas 2 → 4"
    assert results["wait"].outcome is Outcome.DONE
    pods = env.pods("frontend")
    assert len(pods) == 4
    assert {p["metadata"]["uid"] for p in pods}.isdisjoint(old)
    assert env.deployment("backend")["spec"]["replicas"] == 3  # nothing else touched
