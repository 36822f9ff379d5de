"""What the namespace lock costs the API server, counted by the emulator (issue 14), and what it must not skip.

Two NamespaceLocks of one process (sharing its `Releases`) take turns on a 30 s Lease under a controllable
clock: the waiter re-checks every third of the duration but, while the holder is an incident of this
process, writes and reads nothing (only that holder can change the holder before the Lease expires, and
its release hands the Lease over and wakes the waiter); the hand-over is one write and the waiter takes
the Lease without a request. A waiter of another process (its own `Releases`) keeps refreshing its queue
entry: it cannot know the holder is alive. Locks of one process take turns on a namespace's Lease, so
they never race each other into a Conflict.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tradesense_operator.clients.kube import LEASES, KubeClient
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.domain.incident.lease import LEASE_NAME, Holder
from tradesense_operator.domain.incident.lock_queue import parse_waiters
from tradesense_operator.services.incidents.lock import NamespaceLock, Releases
from tradesense_sandbox.kubeapi import EmulatedCluster

DURATION = 30
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.fixture
async def kube(kubeconfig_path: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    yield client
    await client.close()


def lock(kube: KubeClient, clock: ManualClock, namespace: str, name: str, releases: Releases) -> NamespaceLock:
    return NamespaceLock(kube, clock, namespace=namespace, me=Holder(namespace, name, f"uid-{name}"),
                         duration_seconds=DURATION, since=START, releases=releases)


def lease_requests(cluster: EmulatedCluster) -> dict[str, int]:
    return {verb: cluster.stats.total(verb, "leases") for verb in ("get", "create", "update")}


def delta(cluster: EmulatedCluster, before: dict[str, int]) -> dict[str, int]:
    return {verb: n - before[verb] for verb, n in lease_requests(cluster).items()}


async def lease(kube: KubeClient, namespace: str) -> dict[str, Any]:
    return await kube.get(LEASES, LEASE_NAME, namespace)


async def test_a_waiter_behind_a_holder_of_this_process_costs_nothing_and_takes_the_lease_without_a_read(
    kube: KubeClient, kube_cluster: EmulatedCluster, test_namespace: str,
) -> None:
    clock, releases = ManualClock(START), Releases()
    holder = lock(kube, clock, test_namespace, "holder", releases)
    waiter = lock(kube, clock, test_namespace, "waiter", releases)
    assert (await holder.acquire()).acquired
    assert not (await waiter.acquire()).acquired  # joins the queue: one write, from the holder's own write
    before = lease_requests(kube_cluster)

    for _ in range(4):  # well past the Lease duration: the waiter's entry is not refreshed meanwhile
        clock.advance(timedelta(seconds=DURATION / 3 + 1))
        assert (await holder.acquire()).acquired  # renews
        assert not (await waiter.acquire()).acquired
    assert delta(kube_cluster, before) == {"get": 0, "create": 0, "update": 4}  # the holder's renewals only

    woken = waiter.listen()
    assert woken is not None
    await holder.release()
    assert woken.is_set()
    assert (await waiter.acquire()).acquired
    assert delta(kube_cluster, before) == {"get": 0, "create": 0, "update": 5}  # + the hand-over
    body = await lease(kube, test_namespace)
    assert body["spec"]["holderIdentity"] == f"{test_namespace}/waiter/uid-waiter"
    assert parse_waiters(body["metadata"].get("annotations")) == []


async def test_a_waiter_of_another_process_keeps_its_entry_fresh_and_is_handed_the_lease(
    kube: KubeClient, kube_cluster: EmulatedCluster, test_namespace: str,
) -> None:
    clock = ManualClock(START)
    holder = lock(kube, clock, test_namespace, "holder", Releases())
    elsewhere = lock(kube, clock, test_namespace, "elsewhere", Releases())  # another replica
    assert (await holder.acquire()).acquired
    assert not (await elsewhere.acquire()).acquired
    for _ in range(4):
        clock.advance(timedelta(seconds=DURATION / 3 + 1))
        assert (await holder.acquire()).acquired
        assert not (await elsewhere.acquire()).acquired
        entries = parse_waiters((await lease(kube, test_namespace))["metadata"].get("annotations"))
        assert [(w.identity.split("/")[1], w.seen) for w in entries] == [("elsewhere", clock.now())]

    await holder.release()  # hands over to the live entry of the other process
    assert (await lease(kube, test_namespace))["spec"]["holderIdentity"] == (
        f"{test_namespace}/elsewhere/uid-elsewhere")
    before = lease_requests(kube_cluster)
    assert (await elsewhere.acquire()).acquired  # its guess would only let it wait: it reads, the Lease is its own
    assert (await elsewhere.acquire()).acquired  # and holds it without a request until a renewal is due
    assert delta(kube_cluster, before) == {"get": 1, "create": 0, "update": 0}


async def test_locks_of_one_process_take_turns_instead_of_racing_into_conflicts(
    kube: KubeClient, kube_cluster: EmulatedCluster, test_namespace: str,
) -> None:
    clock, releases = ManualClock(START), Releases()
    holder = lock(kube, clock, test_namespace, "holder", releases)
    assert (await holder.acquire()).acquired
    before = lease_requests(kube_cluster)
    waiters = [lock(kube, clock, test_namespace, f"waiter-{n}", releases) for n in range(3)]
    results = await asyncio.gather(*(w.acquire() for w in waiters))  # all three join the queue at once
    assert [r.acquired for r in results] == [False] * 3
    assert delta(kube_cluster, before) == {"get": 0, "create": 0, "update": 3}  # one write each, no Conflict
    entries = parse_waiters((await lease(kube, test_namespace))["metadata"].get("annotations"))
    assert sorted(w.identity.split("/")[1] for w in entries) == ["waiter-0", "waiter-1", "waiter-2"]


async def test_a_hand_over_before_the_waiter_listens_still_wakes_it(
    kube: KubeClient, kube_cluster: EmulatedCluster, test_namespace: str,
) -> None:
    """The holder may release between the waiter joining the queue and the waiter listening (its incident is
    still writing that it waits): the waiter must find itself woken, not sleep until its re-check."""
    clock, releases = ManualClock(START), Releases()
    holder = lock(kube, clock, test_namespace, "holder", releases)
    waiter = lock(kube, clock, test_namespace, "waiter", releases)
    other = lock(kube, clock, test_namespace, "other", releases)
    assert (await holder.acquire()).acquired
    assert not (await waiter.acquire()).acquired
    await holder.release()  # handed to the waiter: nobody listens yet

    woken, passed_over = waiter.listen(), other.listen()
    assert woken is not None
    assert passed_over is not None
    assert woken.is_set()
    assert not passed_over.is_set()  # not handed to it: it sleeps on
    assert (await waiter.acquire()).acquired
