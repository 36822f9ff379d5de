"""ScalingPolicy evaluations against the emulated API server and a REAL Prometheus scraping the stand-in app.

Covers: request rate and p95 latency scale the Deployment up within maxReplicas; falling load scales down
only after the 300 s stabilization window (ManualClock); a Prometheus outage triggers the fallback; a
market-hours schedule raises the floor at New York local time; the pause annotation; HPA and
ScalingPolicy conflicts; the incident scale floor; WORKERS env; an invalid spec named in a condition.
Each evaluation is one `ScalingService.evaluate` call; time between them is ManualClock time, while
Prometheus and the app run in real time (rates use a 5 s window so load changes show within seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.integration.scaling.prometheus_support import start_prometheus
from tests.support.rbac import with_and_without_rbac
from tradesense_operator.api.v1alpha1.scaling import MetricPreset
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.clients.prometheus import PrometheusClient, PrometheusPool
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.domain.scaling.floor import SCALE_FLOOR_ANNOTATION, ScaleFloor, format_scale_floors
from tradesense_operator.domain.scaling.presets import preset_query
from tradesense_operator.observability.metrics import OperatorMetrics
from tradesense_operator.services.scaling.evaluation import Outcome, ScalingService
from tradesense_sandbox.app import BackgroundLoad, StandinApp
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus

APP_ONLY = 'path!="/metrics"'   # Prometheus' own scrapes of the app are not user traffic


def replicas(cluster: EmulatedCluster, name: str) -> int:
    return int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"])


def condition(cluster: EmulatedCluster, name: str, type_: str) -> dict[str, Any]:
    status = cluster.get("ops.tradesense.io/v1alpha1", "ScalingPolicy", name, NAMESPACE).get("status") or {}
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def event_messages(cluster: EmulatedCluster, name: str, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events(NAMESPACE, name) if e["reason"] == reason]


async def evaluate(service: ScalingService, cluster: EmulatedCluster, name: str) -> Outcome:
    body = cluster.get("ops.tradesense.io/v1alpha1", "ScalingPolicy", name, NAMESPACE)
    return await service.evaluate(body)


async def wait_for_value(url: str, query: str, accept: Callable[[float], bool], timeout: float = 30.0) -> float:
    """Poll Prometheus (real time) until the query's value satisfies `accept`."""
    client = PrometheusClient(url, timeout=3)
    deadline = time.monotonic() + timeout
    last: float | None = None
    try:
        while time.monotonic() < deadline:
            result = await client.instant(query)
            last = result.value
            if last is not None and accept(last):
                return last
            await asyncio.sleep(0.5)
    finally:
        client.close()
    raise AssertionError(f"{query} never reached the expected value (last {last})")


def rps_metric(target: float) -> dict[str, Any]:
    return {"name": "rps", "preset": "request-rate", "window": "5s", "selector": APP_ONLY,
            "target": {"type": "AverageValue", "value": target}}


def setup(cluster: EmulatedCluster, name: str, start: int, spec: dict[str, Any], *,
          annotations: dict[str, str] | None = None, env: list[dict[str, str]] | None = None,
          deployment_annotations: dict[str, str] | None = None) -> None:
    cluster.create(deployment(name, start, env=env, annotations=deployment_annotations))
    cluster.create(policy(name, {"targetRef": {"name": name}, **spec}, annotations=annotations))


async def test_request_rate_scales_up_within_max_replicas(
    cluster: EmulatedCluster, app: StandinApp, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "rps-up", 2, {"minReplicas": 2, "maxReplicas": 5, "prometheusUrl": prometheus.url,
                                 "metrics": [rps_metric(4)]})
    async with BackgroundLoad(app.base_url, rate=30, max_duration=60):
        query = preset_query(MetricPreset.REQUEST_RATE_PER_REPLICA, window="5s", selector=APP_ONLY)
        await wait_for_value(prometheus.url, query, lambda v: v >= 20)
        outcome = await evaluate(service, cluster, "rps-up")
    assert outcome.state == "Scaled"
    assert replicas(cluster, "rps-up") == 5                       # ~30 req/s ÷ 4 per replica = 8, capped at 5
    assert condition(cluster, "rps-up", "ScalingLimited")["reason"] == "TooManyReplicas"
    [message] = event_messages(cluster, "rps-up", "SuccessfulRescale")
    assert "request rate" in message
    assert message.endswith("2 → 5")


async def test_p95_latency_scales_up(
    cluster: EmulatedCluster, app: StandinApp, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "latency-up", 2, {"minReplicas": 2, "maxReplicas": 6, "prometheusUrl": prometheus.url,
                                     "metrics": [{"name": "p95", "preset": "p95-latency", "window": "5s",
                                                  "selector": APP_ONLY, "target": {"type": "Value", "value": 0.5}}]})
    app.set_mode(latency_ms=800)
    try:
        async with BackgroundLoad(app.base_url, rate=8, max_duration=60):
            query = preset_query(MetricPreset.P95_LATENCY, window="5s", selector=APP_ONLY)
            await wait_for_value(prometheus.url, query, lambda v: v >= 0.7)
            outcome = await evaluate(service, cluster, "latency-up")
    finally:
        app.reset_mode()
    assert outcome.state == "Scaled"
    assert 3 <= replicas(cluster, "latency-up") <= 6                # 2 × (≈0.8…1.0 s / 0.5 s)
    assert "p95 latency" in outcome.message
    assert "> 0.5 s target" in outcome.message


async def test_falling_load_scales_down_only_after_the_stabilization_window(
    cluster: EmulatedCluster, app: StandinApp, prometheus: PrometheusServer, service: ScalingService,
    clock: ManualClock,
) -> None:
    setup(cluster, "rps-down", 2, {"minReplicas": 1, "maxReplicas": 6, "prometheusUrl": prometheus.url,
                                   "metrics": [rps_metric(5)]})
    query = preset_query(MetricPreset.REQUEST_RATE_PER_REPLICA, window="5s", selector=APP_ONLY)
    async with BackgroundLoad(app.base_url, rate=25, max_duration=90) as load:
        await wait_for_value(prometheus.url, query, lambda v: v >= 18)
        await evaluate(service, cluster, "rps-down")
        high = replicas(cluster, "rps-down")
        assert high >= 4
        load.set_rate(2)
        await wait_for_value(prometheus.url, query, lambda v: v <= 4)
        for _ in range(19):                                       # 285 s of evaluations every 15 s
            clock.advance(15)
            await evaluate(service, cluster, "rps-down")
            assert replicas(cluster, "rps-down") == high
        assert condition(cluster, "rps-down", "AbleToScale")["reason"] == "ScaleDownStabilized"
        clock.advance(30)                                        # the high recommendations left the 300 s window
        outcome = await evaluate(service, cluster, "rps-down")
    assert outcome.state == "Scaled"
    assert replicas(cluster, "rps-down") == 1


async def test_prometheus_outage_triggers_the_fallback(
    cluster: EmulatedCluster, service: ScalingService, clock: ManualClock
) -> None:
    own = start_prometheus()
    try:
        setup(cluster, "outage", 2, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": own.url,
                                     "fallback": {"failureThreshold": 3, "replicas": 6},
                                     "metrics": [{"name": "load", "query": "vector(200)",
                                                  "target": {"type": "AverageValue", "value": 100}}]})
        assert (await evaluate(service, cluster, "outage")).state == "Unchanged"   # 200 / 100 = 2 replicas
        own.stop()
        for attempt in (1, 2):
            clock.advance(30)
            await evaluate(service, cluster, "outage")
            assert replicas(cluster, "outage") == 2, attempt
            assert condition(cluster, "outage", "ScalingActive")["reason"] == "FailedGetMetrics"
        clock.advance(30)
        outcome = await evaluate(service, cluster, "outage")
    finally:
        own.stop()
    assert outcome.state == "Scaled"
    assert replicas(cluster, "outage") == 6
    assert condition(cluster, "outage", "FallbackActive")["status"] == "True"
    assert "unreachable" in condition(cluster, "outage", "FallbackActive")["message"]
    assert event_messages(cluster, "outage", "FallbackActive")


async def test_market_hours_schedule_raises_the_floor_at_new_york_time(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 6, 14, 29, tzinfo=UTC))   # Tuesday 09:29 EST
    setup(cluster, "market", 1, {
        "minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
        "metrics": [{"name": "load", "query": "vector(50)", "target": {"type": "AverageValue", "value": 100}}],
        "schedules": [{"name": "us-market", "start": "30 9 * * 1-5", "end": "0 16 * * 1-5",
                       "timeZone": "America/New_York", "minReplicas": 4}],
    })
    await evaluate(service, cluster, "market")
    assert replicas(cluster, "market") == 1
    clock.advance(60)                                     # 09:30 EST
    outcome = await evaluate(service, cluster, "market")
    assert replicas(cluster, "market") == 4
    assert "schedule us-market raises the minimum to 4" in outcome.message
    assert condition(cluster, "market", "ScalingLimited")["reason"] == "ScheduleFloor"
    clock.set(datetime(2026, 1, 6, 21, 0, tzinfo=UTC))    # 16:00 EST: closed, load still asks for 1
    await evaluate(service, cluster, "market")
    assert replicas(cluster, "market") == 1


async def test_paused_policy_writes_nothing(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "paused", 2, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                 "metrics": [{"name": "load", "query": "vector(900)",
                                              "target": {"type": "AverageValue", "value": 100}}]},
          annotations={"ops.tradesense.io/paused": "true"})
    outcome = await evaluate(service, cluster, "paused")
    assert outcome.state == "Paused"
    assert replicas(cluster, "paused") == 2
    assert condition(cluster, "paused", "AbleToScale")["reason"] == "Paused"
    cluster.patch("ops.tradesense.io/v1alpha1", "ScalingPolicy", "paused",
                  {"metadata": {"annotations": {"ops.tradesense.io/paused": None}}}, NAMESPACE)
    await evaluate(service, cluster, "paused")
    assert replicas(cluster, "paused") == 6                  # resumed: wants 9, default rate allows max(2×2, 2+4)


@with_and_without_rbac
async def test_a_deployment_managed_by_an_hpa_is_left_alone(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService, operator_rbac: str
) -> None:
    name, hpa = f"with-hpa-{operator_rbac}", f"backend-cpu-{operator_rbac}"  # both modes share the module's cluster
    setup(cluster, name, 3, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                   "metrics": [{"name": "load", "query": "vector(900)",
                                                "target": {"type": "AverageValue", "value": 100}}]})
    cluster.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": hpa, "namespace": NAMESPACE},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                             "minReplicas": 3, "maxReplicas": 10,
                             "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                                 "type": "Utilization", "averageUtilization": 70}}}]}})
    outcome = await evaluate(service, cluster, name)
    assert outcome.state == "Conflict"
    assert replicas(cluster, name) == 3
    able = condition(cluster, name, "AbleToScale")
    assert (able["status"], able["reason"]) == ("False", "ConflictingAutoscaler")
    assert f"HorizontalPodAutoscaler {NAMESPACE}/{hpa}" in able["message"]
    assert event_messages(cluster, name, "ConflictingAutoscaler")


async def test_the_older_of_two_policies_wins(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    spec = {"targetRef": {"name": "shared"}, "minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
            "metrics": [{"name": "load", "query": "vector(300)", "target": {"type": "AverageValue", "value": 100}}]}
    cluster.create(deployment("shared", 2))
    cluster.create(policy("shared-a", spec))
    cluster.create(policy("shared-b", spec))
    loser = await evaluate(service, cluster, "shared-b")
    assert loser.state == "Conflict"
    assert "ScalingPolicy tradesense/shared-a" in loser.message
    assert replicas(cluster, "shared") == 2
    assert (await evaluate(service, cluster, "shared-a")).state == "Scaled"
    assert replicas(cluster, "shared") == 3


async def test_incident_floor_holds_until_it_expires(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService, clock: ManualClock
) -> None:
    floor = ScaleFloor(8, clock.now() + timedelta(minutes=10), "tradesense/high-cpu-1")
    setup(cluster, "floored", 8, {"minReplicas": 2, "maxReplicas": 6, "prometheusUrl": prometheus.url,
                                  "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                                  "metrics": [{"name": "load", "query": "vector(100)",
                                               "target": {"type": "AverageValue", "value": 100}}]},
          deployment_annotations={SCALE_FLOOR_ANNOTATION: format_scale_floors([floor])})
    await evaluate(service, cluster, "floored")
    assert replicas(cluster, "floored") == 8                  # above maxReplicas 6: the incident's scale-out holds
    limited = condition(cluster, "floored", "ScalingLimited")
    assert limited["reason"] == "IncidentFloor"
    assert "tradesense/high-cpu-1" in limited["message"]
    clock.advance(timedelta(minutes=10))
    await evaluate(service, cluster, "floored")
    assert replicas(cluster, "floored") == 6                  # floor expired: back inside the policy's bounds
    clock.advance(30)
    await evaluate(service, cluster, "floored")
    assert replicas(cluster, "floored") == 2


async def test_workers_env_follows_the_replica_count(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "workers", 2, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                  "workers": {"totalBudget": 24, "min": 2, "max": 8},
                                  "metrics": [{"name": "load", "query": "vector(400)",
                                               "target": {"type": "AverageValue", "value": 100}}]},
          env=[{"name": "LOG_LEVEL", "value": "info"}, {"name": "WORKERS", "value": "8"}])
    await evaluate(service, cluster, "workers")
    body = cluster.get("apps/v1", "Deployment", "workers", NAMESPACE)
    env = {e["name"]: e["value"] for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert body["spec"]["replicas"] == 4
    assert env == {"LOG_LEVEL": "info", "WORKERS": "6"}       # 24 // 4
    generation = body["metadata"]["generation"]
    await evaluate(service, cluster, "workers")               # nothing changes: no rollout-triggering write
    assert cluster.get("apps/v1", "Deployment", "workers", NAMESPACE)["metadata"]["generation"] == generation


async def test_invalid_spec_is_named_in_a_condition_and_a_warning_event(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "bad-zone", 2, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                   "metrics": [{"name": "load", "query": "vector(900)",
                                                "target": {"type": "AverageValue", "value": 100}}],
                                   "schedules": [{"name": "w", "start": "0 9 * * *", "end": "0 17 * * *",
                                                  "timeZone": "Mars/Olympus", "minReplicas": 2}]})
    outcome = await evaluate(service, cluster, "bad-zone")
    assert outcome.state == "Invalid"
    assert replicas(cluster, "bad-zone") == 2
    active = condition(cluster, "bad-zone", "ScalingActive")
    assert active["reason"] == "InvalidSpec"
    assert "spec.schedules[0].timeZone" in active["message"]
    [warning] = [e for e in cluster.events(NAMESPACE, "bad-zone") if e["reason"] == "InvalidSpec"]
    assert warning["type"] == "Warning"


async def test_vertical_memory_limit_is_bounded_and_not_rewritten_within_the_hysteresis(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "vertical", 2, {
        "minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
        "metrics": [{"name": "load", "query": "vector(200)", "target": {"type": "AverageValue", "value": 100}}],
        "vertical": {"memoryQuery": "vector(3 * 1024 * 1024 * 1024)", "minMemory": "512Mi", "maxMemory": "2Gi",
                     "headroomPercent": 30},
    })
    await evaluate(service, cluster, "vertical")
    body = cluster.get("apps/v1", "Deployment", "vertical", NAMESPACE)
    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["memory"] == "2Gi"  # 3.9 Gi capped
    assert resources["requests"]["memory"] == "1Gi"  # requestPercent 50: the runbook's 1Gi/2Gi
    [message] = event_messages(cluster, "vertical", "VerticalRescale")
    assert "limit unset → 2Gi, request 1Gi (50% of the limit)" in message
    generation = body["metadata"]["generation"]
    await evaluate(service, cluster, "vertical")
    assert cluster.get("apps/v1", "Deployment", "vertical", NAMESPACE)["metadata"]["generation"] == generation


async def test_a_failed_workers_write_does_not_lose_the_scale_event(
    cluster: EmulatedCluster, prometheus: PrometheusServer, service: ScalingService
) -> None:
    setup(cluster, "wfail", 4, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
                                "workers": {"totalBudget": 24, "min": 2, "max": 12},
                                "metrics": [{"name": "load", "query": "vector(200)",
                                             "target": {"type": "AverageValue", "value": 100}}]},
          env=[{"name": "WORKERS", "value": "6"}])
    cluster.inject_fault("PATCH", r"/deployments/wfail$", status=500, times=1)   # the env patch, not /scale
    await evaluate(service, cluster, "wfail")
    assert replicas(cluster, "wfail") == 2
    status = cluster.get("ops.tradesense.io/v1alpha1", "ScalingPolicy", "wfail", NAMESPACE)["status"]
    assert [(e["fromReplicas"], e["toReplicas"]) for e in status["scaleEvents"]] == [(4, 2)]
    assert "workers: not applied" in condition(cluster, "wfail", "ScalingLimited")["message"]
    assert event_messages(cluster, "wfail", "SecondaryChangeFailed")
    await evaluate(service, cluster, "wfail")                                     # the next evaluation catches up
    container = cluster.get("apps/v1", "Deployment", "wfail", NAMESPACE)["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "WORKERS", "value": "12"}]


async def test_evaluations_and_desired_replicas_are_exported_as_operator_metrics(
    cluster: EmulatedCluster, prometheus: PrometheusServer, kube: KubeClient, pool: PrometheusPool, clock: ManualClock
) -> None:
    metrics = OperatorMetrics()
    counted = ScalingService(kube, pool, clock, default_prometheus_url="http://127.0.0.1:9", metrics=metrics)
    setup(cluster, "exported", 2, {"minReplicas": 1, "maxReplicas": 10, "prometheusUrl": prometheus.url,
                                   "metrics": [{"name": "load", "query": "vector(300)",
                                                "target": {"type": "AverageValue", "value": 100}}]})
    await evaluate(counted, cluster, "exported")
    await evaluate(counted, cluster, "exported")
    labels = {"namespace": NAMESPACE, "policy": "exported"}
    registry = metrics.registry
    assert registry.get_sample_value("tradesense_operator_scaling_desired_replicas", labels) == 3
    evaluations = "tradesense_operator_scaling_evaluations_total"
    assert registry.get_sample_value(evaluations, {**labels, "outcome": "Scaled"}) == 1
    assert registry.get_sample_value(evaluations, {**labels, "outcome": "Unchanged"}) == 1
