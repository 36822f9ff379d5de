"""WatchCache against the emulated API server: one LIST then the watch; a compacted history (410 Gone) is
re-listed and later changes are still seen; our own write is served until the watch shows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, KubeClient
from tradesense_operator.clients.watch_cache import WatchCache
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster


@pytest.fixture
async def cache(kube: KubeClient) -> AsyncIterator[WatchCache]:
    built = WatchCache(kube, DEPLOYMENTS)
    yield built
    await built.close()


async def replicas_become(cache: WatchCache, name: str, wanted: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while int((await cache.get(NAMESPACE, name))["spec"]["replicas"]) != wanted:
        assert loop.time() < deadline, f"the cache never showed {wanted} replicas"
        await asyncio.sleep(0.05)


async def test_changes_after_a_compacted_history_are_still_seen_after_one_more_list(
    cluster: EmulatedCluster, cache: WatchCache
) -> None:
    cluster.create(deployment("relisted", 1))
    before = cluster.stats.snapshot()
    assert (await cache.get(NAMESPACE, "relisted"))["spec"]["replicas"] == 1
    with pytest.raises(NotFound):
        await cache.get(NAMESPACE, "absent")
    cluster.patch("apps/v1", "Deployment", "relisted", {"spec": {"replicas": 2}}, NAMESPACE)
    await replicas_become(cache, "relisted", 2)

    assert cluster.expire_watches() >= 1                           # 410 Gone: the cache must list again
    cluster.patch("apps/v1", "Deployment", "relisted", {"spec": {"replicas": 4}}, NAMESPACE)
    await replicas_become(cache, "relisted", 4)
    cluster.create(deployment("arrived", 1))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while "arrived" not in {d["metadata"]["name"] for d in await cache.list(NAMESPACE)}:
        assert loop.time() < deadline, "a Deployment created after the re-list never showed"
        await asyncio.sleep(0.05)

    after = cluster.stats.snapshot()
    assert after.get(("list", "deployments"), 0) - before.get(("list", "deployments"), 0) == 2
    assert after.get(("get", "deployments"), 0) == before.get(("get", "deployments"), 0)


async def test_our_write_is_served_until_the_watch_shows_it(
    cluster: EmulatedCluster, cache: WatchCache, kube: KubeClient
) -> None:
    cluster.create(deployment("ours", 1))
    seen = await cache.get(NAMESPACE, "ours")
    cluster.drop_watches()                                         # the watch lags (reconnects from its version)
    written = await kube.patch(DEPLOYMENTS, "ours", {"spec": {"replicas": 3}}, NAMESPACE)
    cache.remember(written)
    assert (await cache.get(NAMESPACE, "ours"))["spec"]["replicas"] == 3
    cache.remember(seen)                                           # an older body never replaces a newer one
    assert (await cache.get(NAMESPACE, "ours"))["spec"]["replicas"] == 3
    cluster.patch("apps/v1", "Deployment", "ours", {"spec": {"replicas": 5}}, NAMESPACE)  # someone else, later
    await replicas_become(cache, "ours", 5)
