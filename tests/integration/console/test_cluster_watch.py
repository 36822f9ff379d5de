"""The console's watch on the emulated API: a snapshot, then changes; a dropped stream resumes without a new
snapshot; an expired one (410 Gone) starts over with a fresh snapshot, as client-go's reflector does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.integration.console.conftest import APPROVAL_SPEC, ConsoleEnv
from tradesense_operator.clients.kube import JsonDict
from tradesense_operator.console.cluster import ConsoleCluster


async def next_event(events: AsyncIterator[tuple[str, JsonDict]]) -> tuple[str, JsonDict]:
    return await asyncio.wait_for(anext(events), 10)


async def test_watch_resumes_after_a_drop_and_relists_after_410(console_env: ConsoleEnv) -> None:
    env = console_env
    env.create("first", APPROVAL_SPEC)
    cluster = await ConsoleCluster.connect(kubeconfig=str(env.kubeconfig), context=None, namespace=None)
    events = cluster.watch_incidents()
    try:
        kind, snapshot = await next_event(events)
        assert kind == "SNAPSHOT"
        assert [i["metadata"]["name"] for i in snapshot["items"]] == ["first"]
        assert cluster.namespace == env.namespace  # the kubeconfig context's namespace

        env.create("second", APPROVAL_SPEC)
        kind, obj = await next_event(events)
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "second")

        env.cluster.drop_watches()
        env.create("third", APPROVAL_SPEC)
        kind, obj = await next_event(events)
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "third")  # resumed, nothing missed, no new snapshot

        env.cluster.expire_watches()
        kind, snapshot = await next_event(events)
        assert kind == "SNAPSHOT"  # 410 Gone: listed again
        assert sorted(i["metadata"]["name"] for i in snapshot["items"]) == ["first", "second", "third"]
        env.create("fourth", APPROVAL_SPEC)
        kind, obj = await next_event(events)
        assert (kind, obj["metadata"]["name"]) == ("ADDED", "fourth")  # and watching again from the new list
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        await cluster.close()
