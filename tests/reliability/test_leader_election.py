"""Leader election on the emulated API: one holder at a time, take-over only after the lease
duration observed on the follower's own clock, resourceVersion-guarded writes (a conflicting
candidate stays a follower), renew-deadline give-up, release on clean shutdown, and `lead()`
calling `on_lost` instead of letting work continue without the Lease.

ManualClock + a sleep that advances it: no test here waits on wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.rbac import with_and_without_rbac
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.domain.clock import ManualClock, SystemClock
from tradesense_operator.services.leadership import ElectionTiming, LeaderElector, lead
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.errors import ApiError

TIMING = ElectionTiming(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2)
LEASE = "tradesense-operator-leader"


@pytest.fixture
async def kube(kubeconfig_path: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    yield client
    await client.close()


@pytest.fixture
def rbac_operator_namespace(test_namespace: str) -> str:
    return test_namespace  # the Lease lives in the test namespace, so the operator's own Role goes there


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def elector(kube: KubeClient, clock: ManualClock, namespace: str, identity: str) -> LeaderElector:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return LeaderElector(kube, clock, namespace=namespace, identity=identity, timing=TIMING, sleep=sleep,
                         jitter=lambda: 0.0)


def holder(cluster: EmulatedCluster, namespace: str) -> str:
    lease = cluster.get("coordination.k8s.io/v1", "Lease", LEASE, namespace)
    return str(lease["spec"].get("holderIdentity") or "")


@with_and_without_rbac
async def test_the_follower_takes_over_only_after_the_lease_duration_on_its_own_clock(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a, b = elector(kube, clock, test_namespace, "a"), elector(kube, clock, test_namespace, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b first sees the record now
    clock.advance(14)
    assert not await b.try_acquire_or_renew()  # unchanged for 14 s < 15 s: still a's
    assert await a.try_acquire_or_renew()      # a renews: the record changes
    assert not await b.try_acquire_or_renew()  # b's next poll sees the change: the wait starts again
    clock.advance(14)
    assert not await b.try_acquire_or_renew()  # 14 s since b saw the renewal: still a's
    clock.advance(1)
    assert await b.try_acquire_or_renew()      # a silent for the whole duration: b takes over
    lease = kube_cluster.get("coordination.k8s.io/v1", "Lease", LEASE, test_namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    assert lease["spec"]["leaseDurationSeconds"] == 15
    assert not await a.try_acquire_or_renew()  # the old leader is now a follower


async def test_a_conflicting_write_leaves_the_candidate_a_follower(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a, b = elector(kube, clock, test_namespace, "a"), elector(kube, clock, test_namespace, "b")
    assert await a.try_acquire_or_renew()
    assert await a.release() is None
    # b read the released Lease, but a wrote it again before b's replace landed: b's write is stale.
    kube_cluster.inject_fault("PUT", f"/namespaces/{test_namespace}/leases/{LEASE}$", status=409)
    assert not await b.try_acquire_or_renew()
    assert holder(kube_cluster, test_namespace) == ""
    assert await b.try_acquire_or_renew()
    assert holder(kube_cluster, test_namespace) == "b"


async def test_a_stale_resource_version_is_refused_by_the_api(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a = elector(kube, clock, test_namespace, "a")
    assert await a.try_acquire_or_renew()
    stale = kube_cluster.get("coordination.k8s.io/v1", "Lease", LEASE, test_namespace)
    clock.advance(2)
    assert await a.try_acquire_or_renew()  # a new renewTime moves the resourceVersion on
    stale["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(ApiError) as refused:
        kube_cluster.replace(stale)
    assert refused.value.code == 409
    assert holder(kube_cluster, test_namespace) == "a"


async def test_release_lets_the_follower_lead_at_once(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a, b = elector(kube, clock, test_namespace, "a"), elector(kube, clock, test_namespace, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert await b.try_acquire_or_renew()
    await a.release()  # no longer ours: a no-op
    assert holder(kube_cluster, test_namespace) == "b"


async def test_the_leader_gives_up_when_it_cannot_renew_within_the_deadline(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a = elector(kube, clock, test_namespace, "a")
    await a.acquire()
    start = clock.now()
    kube_cluster.inject_fault(None, f"/namespaces/{test_namespace}/leases", status=500, times=None)
    await asyncio.wait_for(a.keep(), timeout=10)
    gave_up_after = (clock.now() - start).total_seconds()
    assert TIMING.renew_deadline_seconds <= gave_up_after < TIMING.lease_seconds


async def test_lead_runs_work_only_while_leading_and_reports_the_loss(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    b = elector(kube, clock, test_namespace, "b")
    assert await b.try_acquire_or_renew()  # b leads; a must wait
    a = elector(kube, clock, test_namespace, "a")
    started = asyncio.Event()
    lost: list[str] = []

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(lead(a, work, on_lost=lambda: lost.append("lost")))
    for _ in range(5):  # a polls while b holds the (never expiring, b not silent long enough) Lease
        await asyncio.sleep(0)
        assert await b.try_acquire_or_renew()
    assert not started.is_set()
    # b goes silent: a takes over after the duration, runs the work, keeps renewing.
    await asyncio.wait_for(started.wait(), timeout=10)
    assert holder(kube_cluster, test_namespace) == "a"
    # The API refuses a's renewals from now on: a gives up, calls on_lost, cancels the work.
    kube_cluster.inject_fault("PUT", f"/namespaces/{test_namespace}/leases/{LEASE}$", status=503, times=None)
    assert await asyncio.wait_for(task, timeout=10) is False
    assert lost == ["lost"]


async def test_lead_releases_the_lease_when_the_work_ends(
    kube: KubeClient, clock: ManualClock, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    a = elector(kube, clock, test_namespace, "a")

    async def work() -> None:
        await asyncio.sleep(0)

    assert await lead(a, work, on_lost=lambda: pytest.fail("not lost")) is True
    assert holder(kube_cluster, test_namespace) == ""


def test_the_timing_must_leave_a_margin() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        ElectionTiming(lease_seconds=10, renew_deadline_seconds=10, retry_seconds=2)



async def test_a_slow_api_server_makes_the_leader_step_down_before_a_follower_takes_over(
    kube: KubeClient, kubeconfig_path: Path, kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    """Each renewal is bounded by the renew deadline (client-go's context timeout): a renewal still in flight at
    the deadline is a lost leadership, not a leader that goes on acting while a follower takes over.

    Real time (the latency is the server's), short client-go-proportioned timing; only the ORDER is asserted.
    """
    timing = ElectionTiming(lease_seconds=3.0, renew_deadline_seconds=1.5, retry_seconds=0.25)
    other = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    try:
        a = LeaderElector(kube, SystemClock(), namespace=test_namespace, identity="a", timing=timing)
        b = LeaderElector(other, SystemClock(), namespace=test_namespace, identity="b", timing=timing)
        await a.acquire()
        order: list[str] = []

        async def keep_a() -> None:
            await a.keep()
            order.append("a stepped down")

        async def acquire_b() -> None:
            await b.acquire()
            order.append("b leads")

        # a's next renewal write takes 5 s to answer (longer than the whole lease), then is applied
        kube_cluster.inject_fault("PUT", f"/namespaces/{test_namespace}/leases/{LEASE}$", latency=5.0, times=1)
        await asyncio.wait_for(asyncio.gather(keep_a(), acquire_b()), timeout=30)
    finally:
        await other.close()
    assert order == ["a stepped down", "b leads"]
    assert holder(kube_cluster, test_namespace) == "b"
