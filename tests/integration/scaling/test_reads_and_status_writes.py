"""What a ScalingPolicy evaluation reads and writes, counted in the emulated API server's request log.

- With the watch caches (what the operator runs), the Deployment is never GETted: a change by someone else
  reaches the decision through the watch (one LIST + WATCH per namespace, no GET per evaluation).
- The status is not rewritten when an evaluation has nothing new to say, is rewritten on a decision, and
  its lastEvaluationTime is refreshed once STATUS_REFRESH_SECONDS have passed.
- A concurrent writer of the status makes our write a Conflict (it carries the resourceVersion decided
  from): the evaluation re-reads the policy and decides again — the other writer's scale event is kept and
  the Deployment is not scaled a second time.
- A decision's commit sends only the top-level status fields it changes (still guarded), and the stored status
  is the whole one.
Each evaluation is one `ScalingService.evaluate` call, fed back what the previous one computed (as the
operator's book does); time between them is ManualClock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.api.v1alpha1.scaling import ScalingPolicyStatus
from tradesense_operator.clients.kube import DEPLOYMENTS, HPAS, SCALING_POLICIES, KubeClient, ResourceKind
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.clients.status_writer import status_merge_patch
from tradesense_operator.clients.watch_cache import WatchCache
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.scaling.evaluation import STATUS_REFRESH_SECONDS, Outcome, ScalingService
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus
API = "ops.tradesense.io/v1alpha1"


@pytest.fixture
async def caches(kube: KubeClient) -> AsyncIterator[dict[ResourceKind, WatchCache]]:
    built = {kind: WatchCache(kube, kind) for kind in (DEPLOYMENTS, HPAS, SCALING_POLICIES)}
    yield built
    for cache in built.values():
        await cache.close()


@pytest.fixture
def cached_service(kube: KubeClient, pool: PrometheusPool, clock: ManualClock,
                   caches: dict[ResourceKind, WatchCache]) -> ScalingService:
    return ScalingService(kube, pool, clock, default_prometheus_url="http://127.0.0.1:9", caches=caches)


class Evaluations:
    """Evaluates one policy the way the operator's book does: the freshest body it knows and the status the
    previous evaluation computed from that body."""

    def __init__(self, service: ScalingService, cluster: EmulatedCluster, name: str) -> None:
        self.service, self.cluster, self.name = service, cluster, name
        self.body: Mapping[str, Any] = cluster.get(API, "ScalingPolicy", name, NAMESPACE)
        self.previous: ScalingPolicyStatus | None = None

    async def next(self) -> Outcome:
        outcome = await self.service.evaluate(self.body, self.previous)
        self.body = outcome.written or outcome.decided_from or self.body
        self.previous = outcome.status
        return outcome


def stored_status(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    return dict(cluster.get(API, "ScalingPolicy", name, NAMESPACE).get("status") or {})


def replicas(cluster: EmulatedCluster, name: str) -> int:
    return int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"])


def sent(cluster: EmulatedCluster, before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {key: n - before.get(key, 0) for key, n in cluster.stats.snapshot().items() if n != before.get(key, 0)}


def busy_policy(name: str, prometheus: PrometheusServer, *, per_replica: float) -> dict[str, Any]:
    """vector(900) against `per_replica`: wants ceil(900 / per_replica) replicas."""
    return policy(name, {"targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10,
                         "pollingIntervalSeconds": 15, "prometheusUrl": prometheus.url,
                         "metrics": [{"name": "load", "query": "vector(900)",
                                      "target": {"type": "AverageValue", "value": per_replica}}]})


async def eventually(check: Any, what: str, timeout: float = 10.0) -> None:
    """Await until `check()` (async) is true; real time, for the watch to deliver."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{what} not reached within {timeout:.0f} s"
        await asyncio.sleep(0.05)


async def test_a_deployment_changed_by_someone_else_is_seen_through_the_watch_without_a_get(
    cluster: EmulatedCluster, prometheus: PrometheusServer, cached_service: ScalingService, clock: ManualClock,
    caches: dict[ResourceKind, WatchCache],
) -> None:
    cluster.create(deployment("watched", 3))
    cluster.create(busy_policy("watched", prometheus, per_replica=300))  # wants 3
    before = cluster.stats.snapshot()
    evaluations = Evaluations(cached_service, cluster, "watched")
    assert (await evaluations.next()).state == "Unchanged"

    cluster.patch("apps/v1", "Deployment", "watched", {"spec": {"replicas": 8}}, NAMESPACE)  # someone else
    await eventually(lambda: _cached_replicas(caches[DEPLOYMENTS], "watched", 8), "the watch shows 8 replicas")
    clock.advance(15)
    outcome = await evaluations.next()

    assert outcome.decision is not None
    assert outcome.decision.current_replicas == 8                  # decided from the watched change
    assert stored_status(cluster, "watched")["currentReplicas"] == 8
    requests = sent(cluster, before)
    assert ("get", "deployments") not in requests, requests
    assert ("get", "deployments/scale") not in requests, requests
    assert requests[("list", "deployments")] == 1                  # one LIST for the namespace, then the watch
    assert ("list", "horizontalpodautoscalers") in requests      # the conflict check's lists: cached too
    assert ("list", "scalingpolicies") in requests


async def _cached_replicas(cache: WatchCache, name: str, wanted: int) -> bool:
    return int((await cache.get(NAMESPACE, name))["spec"]["replicas"]) == wanted


async def test_the_status_is_written_when_it_has_something_new_to_say_and_refreshed_otherwise(
    cluster: EmulatedCluster, prometheus: PrometheusServer, cached_service: ScalingService, clock: ManualClock,
) -> None:
    cluster.create(deployment("quiet", 3))
    cluster.create(busy_policy("quiet", prometheus, per_replica=300))  # wants 3: nothing to do
    evaluations = Evaluations(cached_service, cluster, "quiet")
    await evaluations.next()
    first = stored_status(cluster, "quiet")
    assert first["currentReplicas"] == 3

    before = cluster.stats.snapshot()
    for _ in range(3):                                             # 45 s of evaluations, nothing changes
        clock.advance(15)
        assert (await evaluations.next()).state == "Unchanged"
    assert ("patch", "scalingpolicies/status") not in sent(cluster, before)
    assert stored_status(cluster, "quiet") == first

    cluster.patch("apps/v1", "Deployment", "quiet", {"spec": {"replicas": 1}}, NAMESPACE)  # someone else
    await eventually(lambda: _cached_replicas(cluster_cache(cached_service), "quiet", 1), "the watch shows 1")
    before = cluster.stats.snapshot()
    clock.advance(15)
    outcome = await evaluations.next()
    assert outcome.state == "Scaled"                               # a decision: 1 → 3, and the status says so
    assert replicas(cluster, "quiet") == 3
    assert sent(cluster, before)[("patch", "scalingpolicies/status")] >= 1
    decided = stored_status(cluster, "quiet")
    assert (decided["currentReplicas"], decided["desiredReplicas"]) == (1, 3)
    assert decided["lastScaleTime"] == decided["lastEvaluationTime"]

    before = cluster.stats.snapshot()
    clock.advance(15)
    await evaluations.next()                                       # 3 = 3 now: currentReplicas changes
    clock.advance(15)
    await evaluations.next()                                       # nothing new
    assert sent(cluster, before)[("patch", "scalingpolicies/status")] == 1
    shown = stored_status(cluster, "quiet")["lastEvaluationTime"]

    before = cluster.stats.snapshot()
    clock.advance(STATUS_REFRESH_SECONDS)                          # nothing new, but the shown time is old
    await evaluations.next()
    assert sent(cluster, before)[("patch", "scalingpolicies/status")] == 1
    assert stored_status(cluster, "quiet")["lastEvaluationTime"] > shown


def cluster_cache(service: ScalingService) -> WatchCache:
    return service.caches[DEPLOYMENTS]


@with_and_without_rbac
async def test_a_concurrent_status_writer_makes_the_evaluation_decide_again_without_scaling_twice(
    *, cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService,
    cached_service: ScalingService, caches: dict[ResourceKind, WatchCache], operator_rbac: str,
) -> None:
    name = f"contested-{operator_rbac}"  # both modes share the module's cluster
    cluster.create(deployment(name, 2))
    cluster.create(busy_policy(name, prometheus, per_replica=100))  # wants 9; the up rate allows 2 → 6
    stale = cluster.get(API, "ScalingPolicy", name, NAMESPACE)
    await caches[DEPLOYMENTS].get(NAMESPACE, name)           # our instance is watching already

    other = await service.evaluate(stale)                          # another writer acts first: 2 → 6
    assert other.state == "Scaled"
    assert replicas(cluster, name) == 6
    await eventually(lambda: _cached_replicas(caches[DEPLOYMENTS], name, 6), "the watch shows 6")

    before = cluster.stats.snapshot()
    ours = await cached_service.evaluate(stale)                    # decided from the body before that write

    requests = sent(cluster, before)
    assert requests[("get", "scalingpolicies")] == 1               # the Conflict made it re-read the policy
    assert ("patch", "deployments/scale") not in requests, requests  # and not scale again (6 → 9 on the stale view)
    assert replicas(cluster, name) == 6
    assert ours.state == "Unchanged"
    status = stored_status(cluster, name)
    assert [(e["fromReplicas"], e["toReplicas"]) for e in status["scaleEvents"]] == [(2, 6)]  # theirs, kept
    assert status["desiredReplicas"] == 6
    rescales = [e for e in cluster.events(NAMESPACE, name) if e["reason"] == "SuccessfulRescale"]
    assert len(rescales) == 1


async def test_a_decision_is_committed_with_only_the_fields_it_changes_and_stores_the_whole_status(
    cluster: EmulatedCluster, prometheus: PrometheusServer, cached_service: ScalingService, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster.create(deployment("lean", 3))
    cluster.create(busy_policy("lean", prometheus, per_replica=300))  # wants 3
    evaluations = Evaluations(cached_service, cluster, "lean")
    await evaluations.next()
    cluster.patch("apps/v1", "Deployment", "lean", {"spec": {"replicas": 1}}, NAMESPACE)  # someone else
    await eventually(lambda: _cached_replicas(cluster_cache(cached_service), "lean", 1), "the watch shows 1")
    sent_bodies: list[dict[str, Any]] = []
    patch = cached_service.kube.patch

    async def recording(kind: ResourceKind, name: str, body: Any, namespace: str | None = None,
                        **options: Any) -> dict[str, Any]:
        if options.get("subresource") == "status":
            sent_bodies.append(body)
        return await patch(kind, name, body, namespace, **options)

    monkeypatch.setattr(cached_service.kube, "patch", recording)
    clock.advance(15)
    outcome = await evaluations.next()

    assert outcome.state == "Scaled"
    assert replicas(cluster, "lean") == 3
    commit = sent_bodies[0]["status"]
    assert {"currentReplicas", "lastScaleTime", "lastEvaluationTime", "scaleEvents"} <= set(commit)
    assert not {"desiredReplicas", "observedGeneration", "consecutiveFailures"} & set(commit)  # 3, 1, 0: as stored
    assert sent_bodies[0]["metadata"]["resourceVersion"]                    # still guarded
    assert outcome.status is not None
    whole = {k: v for k, v in status_merge_patch(outcome.status).items() if v is not None}
    assert stored_status(cluster, "lean") == whole                            # as if the whole status was written
