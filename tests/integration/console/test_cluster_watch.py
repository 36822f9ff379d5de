"""The console's watch on the emulated API: a snapshot, then changes; an expired watch (410 Gone) starts over
with a fresh snapshot, as client-go's reflector does; a dropped stream resumes without missing an event."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from tests.integration.console.conftest import APPROVAL_SPEC, ConsoleEnv
from tradesense_operator.clients.kube import JsonDict
from tradesense_operator.console.cluster import ConsoleCluster


async def test_watch_relists_after_410_and_resumes_after_a_drop(console_env: ConsoleEnv) -> None:
    env = console_env
    env.create("first", APPROVAL_SPEC)
    cluster = await ConsoleCluster.connect(kubeconfig=str(env.kubeconfig), context=None, namespace=None)
    received: asyncio.Queue[tuple[str, JsonDict]] = asyncio.Queue()
    baseline = len(env.cluster.store.watchers())

    async def consume() -> None:
        async for event in cluster.watch_incidents():
            await received.put(event)

    async def watching() -> None:
        """Until the API server holds our watch (the stream opens after the snapshot is consumed)."""
        deadline = time.monotonic() + 10
        while len(env.cluster.store.watchers()) <= baseline:
            assert time.monotonic() < deadline, "the console never opened its watch"
            await asyncio.sleep(0.02)

    async def next_event() -> tuple[str, JsonDict]:
        return await asyncio.wait_for(received.get(), 10)

    consumer = asyncio.create_task(consume())
    try:
        kind, snapshot = await next_event()
        assert kind == "SNAPSHOT"
        assert [i["metadata"]["name"] for i in snapshot["items"]] == ["first"]
        assert cluster.namespace == env.namespace  # the kubeconfig context's namespace

        await watching()
        env.cluster.expire_watches()
        kind, snapshot = await next_event()
        assert kind == "SNAPSHOT"  # 410 Gone: listed again
        env.create("second", APPROVAL_SPEC)
        kind, obj = await next_event()
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "second")  # and watching again from the new list

        env.cluster.drop_watches()
        env.create("third", APPROVAL_SPEC)
        kind, obj = await next_event()
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "third")  # resumed: nothing missed, no new snapshot
        assert received.empty()
    finally:
        consumer.cancel()
        with suppress(asyncio.CancelledError):
            await consumer
        await cluster.close()
