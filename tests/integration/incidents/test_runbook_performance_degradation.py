"""performance-degradation runbook: latency evidence from the dashboard endpoint, a clear skip when
pg_stat_statements is absent, the backend scaled to 10, and only the analytics cache pattern cleared."""

from __future__ import annotations

from tests.integration.incidents.conftest import TradesenseEnv
from tradesense_operator.services.step_adapters.base import Outcome


async def test_collects_latency_scales_out_and_clears_only_the_analytics_cache(tradesense: TradesenseEnv) -> None:
    env = tradesense
    env.app.set_mode(latency_ms=40)
    for i in range(30):
        env.redis.set(env.key(f"cache:analytics:user:{i}"), "{}")
    env.redis.set(env.key("session:7"), "t")
    env.redis.set(env.key("cache:profile:7"), "{}")
    spec = env.spec("performance-degradation")

    results = await env.run_plan(spec)

    latency = results["response-times"].evidence
    assert latency["requests"] == "20"
    assert int(latency["p50"].removesuffix(" ms")) >= 40
    slow = results["slow-queries"]
    assert slow.outcome is Outcome.SKIPPED
    assert "pg_stat_statements is not installed" in slow.message
    assert env.deployment("backend")["spec"]["replicas"] == 10
    assert int(results["clear-cache"].evidence["deleted"]) >= 30
    assert list(env.redis.scan_iter(match=env.key("cache:analytics:*"))) == []
    assert env.redis.exists(env.key("session:7"), env.key("cache:profile:7")) == 2
