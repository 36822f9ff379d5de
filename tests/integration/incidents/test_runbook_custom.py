"""custom runbook (GitOps single actions): a blue/green switch of backend-service onto Ready green pods
(refused while none are Ready), a scale and a restart of one named Deployment."""

from __future__ import annotations

import asyncio
import base64

import pytest

from tests.integration.incidents.conftest import TradesenseEnv
from tests.support.rbac import with_and_without_rbac
from tests.support.secrets import SecretGuard
from tradesense_operator.services.step_adapters.base import STAMP_ANNOTATION, Outcome, StepFailed
from tradesense_sandbox.servers import ThrowawayRedis
from tradesense_sandbox.tradesense_namespace import deployment, wait_workloads_ready

REDIS_SECRET = "tradesense-redis-credentials"  # the name deploy/rbac's Role grants (by resourceNames)


def green(env: TradesenseEnv) -> dict[str, object]:
    body = deployment(env.namespace, "backend", 2)
    body["metadata"]["name"] = "backend-green"
    body["spec"]["selector"] = {"matchLabels": {"app": "backend", "version": "green"}}
    body["spec"]["template"]["metadata"]["labels"] = {"app": "backend", "version": "green"}
    return body


@with_and_without_rbac
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


@with_and_without_rbac
async def test_a_redis_step_authenticates_with_the_password_from_its_secret(
    tradesense: TradesenseEnv, throwaway_redis: ThrowawayRedis, secret_guard: SecretGuard
) -> None:
    env = tradesense
    password = secret_guard.plant(prefix="redis-password")
    with throwaway_redis.client() as admin:
        admin.set("session:1", "a")
        admin.set("session:2", "b")
        admin.config_set("requirepass", password)
    env.cluster.create({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": REDIS_SECRET, "namespace": env.namespace},
                        "data": {"password": base64.b64encode(password.encode()).decode()}})
    spec = env.spec("custom", target={"redisConnection": {
        "host": throwaway_redis.host, "port": throwaway_redis.port,
        "passwordSecretRef": {"name": REDIS_SECRET, "key": "password"}}},
        steps=[{"id": "sessions", "action": "redis-session-count", "params": {"pattern": "session:*"}}])
    result = await env.run_step(spec, env.step(spec, "sessions"))
    assert result.outcome is Outcome.DONE
    assert result.evidence["sessions"] == "2"
    assert password not in result.message + str(result.evidence)
