"""Paused ScalingPolicies cost nothing: the real kopf operator (scaling handlers, in-process, emulated API)
sends no API request at all while an hour of the injected clock passes over paused policies, and a policy
that is resumed (annotation removed) is evaluated and scales at once, without the clock moving."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.integration.scaling.test_operator_timer import scaling_registry
from tests.support.waiting import wait_until
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.scaling.evaluation import PAUSED_ANNOTATION
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.runner import run_operator
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus
API = "ops.tradesense.io/v1alpha1"
POLICIES = 5


def able_to_scale_reason(cluster: EmulatedCluster, name: str) -> str | None:
    status = cluster.get(API, "ScalingPolicy", name, NAMESPACE).get("status") or {}
    return next((c.get("reason") for c in status.get("conditions") or [] if c.get("type") == "AbleToScale"), None)


def test_paused_policies_send_no_request_and_a_resumed_one_scales_at_once(
    cluster: EmulatedCluster, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    cluster.create(deployment("idle", 2))
    names = [f"idle-{i}" for i in range(POLICIES)]
    for name in names:
        cluster.create(policy(name, {
            "targetRef": {"name": "idle"}, "minReplicas": 1, "maxReplicas": 10, "pollingIntervalSeconds": 30,
            "prometheusUrl": prometheus.url,
            "metrics": [{"name": "load", "query": "vector(900)", "target": {"type": "AverageValue", "value": 100}}],
        }, annotations={PAUSED_ANNOTATION: "true"}))

    def replicas() -> int:
        return int(cluster.get("apps/v1", "Deployment", "idle", NAMESPACE)["spec"]["replicas"])

    with run_operator(cluster, registry=scaling_registry(kubeconfig, clock), namespaces=[NAMESPACE]):
        wait_until(lambda: all(able_to_scale_reason(cluster, n) == "Paused" for n in names))
        time.sleep(1.0)  # the status writes' own watch events arrive and are looked at
        before = cluster.stats.snapshot()
        for _ in range(120):  # an hour of the injected clock, in polling intervals
            clock.advance(30)
            time.sleep(0.01)
        time.sleep(1.0)
        after = cluster.stats.snapshot()
        sent = {key: n - before.get(key, 0) for key, n in after.items() if n != before.get(key, 0)}
        assert sent == {}, f"requests while every policy was paused: {sent}"
        assert replicas() == 2

        resumed: dict[str, Any] = {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}}
        cluster.patch(API, "ScalingPolicy", names[0], resumed, NAMESPACE)
        # wants 9; the default scale-up rate allows 2 → 6; the status is written after the replicas
        wait_until(lambda: replicas() == 6 and able_to_scale_reason(cluster, names[0]) == "SucceededRescale")
        assert all(able_to_scale_reason(cluster, n) == "Paused" for n in names[1:])
    rescales = [e for e in cluster.events(NAMESPACE) if e["reason"] == "SuccessfulRescale"]
    assert [e["involvedObject"]["name"] for e in rescales] == [names[0]]
