"""Policies crossing together: each one's status commit still precedes its scale write, and the SuccessfulRescale
Events wait until the round's scale writes are done (they are on no policy's path to its replicas changing).

The real kopf operator (scaling handlers, in-process, emulated API); one Deployment's scale write answers late
(injected latency), so an Event posted right after another policy's scale would land before that write."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.integration.scaling.test_operator_timer import scaling_registry
from tests.support.waiting import wait_until
from tradesense_operator.domain.clock import ManualClock
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.runner import run_operator
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus
POLICIES = 4


def test_rescale_events_follow_the_rounds_scale_writes_and_each_commit_precedes_its_scale(
    cluster: EmulatedCluster, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    names = [f"round-{i}" for i in range(POLICIES)]
    writes: list[tuple[str, str]] = []  # (what, name) in the order the API server stored them
    lock = threading.Lock()

    def listen(rtype: ResourceType, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = obj["metadata"].get("name", "")
        if rtype.kind == "Deployment" and old is not None and obj["spec"]["replicas"] != old["spec"]["replicas"]:
            what = "scale"
        elif rtype.kind == "ScalingPolicy" and (obj.get("status") or {}).get("desiredReplicas") == 6 and (
                (old or {}).get("status") or {}).get("desiredReplicas") != 6:
            what = "commit"
        elif rtype.kind == "Event" and event_type == "ADDED" and obj.get("reason") == "SuccessfulRescale":
            what, name = "event", obj["involvedObject"]["name"]
        else:
            return
        if name in names:
            with lock:
                writes.append((what, name))

    cluster.store.add_listener(listen)
    for name in names:
        cluster.create(deployment(name, 2))
        cluster.create(policy(name, {
            "targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10, "pollingIntervalSeconds": 30,
            "prometheusUrl": prometheus.url,
            "metrics": [{"name": "load", "query": "vector(900)", "target": {"type": "AverageValue", "value": 100}}],
        }))
    cluster.inject_fault("PATCH", f"/deployments/{names[-1]}/scale", latency=1.5)

    with run_operator(cluster, registry=scaling_registry(kubeconfig, clock), namespaces=[NAMESPACE]):
        wait_until(lambda: sum(1 for what, _ in writes if what == "event") == POLICIES)  # wants 9; up rate: 2 → 6
    with lock:
        order = list(writes)
    for name in names:
        assert order.index(("commit", name)) < order.index(("scale", name)), order
        assert int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"]) == 6
    last_scale = max(i for i, (what, _) in enumerate(order) if what == "scale")
    first_event = min(i for i, (what, _) in enumerate(order) if what == "event")
    assert last_scale < first_event, order
    assert sorted(name for what, name in order if what == "event") == names
