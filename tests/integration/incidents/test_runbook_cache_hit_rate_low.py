"""cache-hit-rate-low runbook: the cache configuration (hit rate, evictions, maxmemory policy) as evidence,
and the analytics cache warmed by requesting the dashboard through the stand-in app."""

from __future__ import annotations

from tests.integration.incidents.conftest import TradesenseEnv


async def test_reports_cache_configuration_and_warms_the_analytics_cache(tradesense: TradesenseEnv) -> None:
    env = tradesense
    assert list(env.redis.scan_iter(match=env.key("cache:analytics:*"))) == []
    spec = env.spec("cache-hit-rate-low")

    results = await env.run_plan(spec)

    config = results["cache-config"].evidence
    assert {"hitRate", "evictedKeys", "maxmemoryPolicy", "usedMemory"} <= set(config)
    assert "hit rate" in results["cache-config"].message or "no lookups" in results["cache-config"].message
    assert results["warm-cache"].evidence["errors"] == "0"
    assert list(env.redis.scan_iter(match=env.key("cache:analytics:*")))  # the read-through cache filled
