"""high-memory runbook: Redis big-key sample (the largest planted value is named), backend pods deleted
and replaced, memory limit raised to 4Gi (requests and cpu untouched), rollout waited for."""

from __future__ import annotations

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome


async def test_samples_big_keys_restarts_pods_and_raises_the_memory_limit(tradesense: TradesenseEnv) -> None:
    env = tradesense
    big = env.key("cache:analytics:huge")
    env.redis.set(big, "x" * 200_000)
    env.redis.set(env.key("cache:analytics:small"), "y")
    original = {p["metadata"]["uid"] for p in env.pods("backend")}
    spec = env.spec("high-memory")

    results = await env.run_plan(spec)

    assert big in results["redis-bigkeys"].message
    assert results["delete-backend-pods"].evidence["count"] == "3"
    assert results["wait-backend-ready"].outcome is Outcome.DONE
    now = {p["metadata"]["uid"] for p in env.pods("backend")}
    assert now.isdisjoint(original)
    resources = env.deployment("backend")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"memory": "4Gi", "cpu": "1"}, "requests": {"memory": "1Gi", "cpu": "500m"}}
    assert results["set-memory-limit"].message == "deployment/backend: limits.memory 2Gi → 4Gi"
    assert results["backend-rollout"].outcome is Outcome.DONE

    again = await env.run_step(spec, env.step(spec, "set-memory-limit"))
    assert again.outcome is Outcome.ALREADY_DONE


async def test_memory_limit_in_other_units_counts_as_already_set(tradesense: TradesenseEnv) -> None:
    env = tradesense
    spec = env.spec("high-memory", parameters={"memoryLimit": "2048Mi"})
    result = await env.run_step(spec, env.step(spec, "set-memory-limit"))
    assert result.outcome is Outcome.ALREADY_DONE  # 2048Mi == the current 2Gi
