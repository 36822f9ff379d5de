"""ScalingPolicies on the same PromQL share one Prometheus query per evaluation round, counted where it lands:
in the query log of a real Prometheus. The real kopf operator (scaling handlers, in-process, emulated API)
evaluates every policy when the injected clock makes them due; each policy still acts on its own reading
against its own target (policies on another query get that query's answer)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.integration.scaling.prometheus_support import require_prometheus
from tests.integration.scaling.test_operator_timer import scaling_registry
from tests.support.waiting import wait_until
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.handlers.scaling import SHARE_QUERIES_SECONDS
from tradesense_operator.services.scaling.evaluation import STATUS_REFRESH_SECONDS
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.runner import run_operator
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus
API = "ops.tradesense.io/v1alpha1"
BUSY, QUIET = "vector(900)", "vector(50)"
# (policy, query, target per replica); replicas wanted in the end: ceil(value / target) within 1..10
# (busy-big gets there in two rounds: the scale-up rate allows 2 → 6 → 9; quiet after the down window)
POLICIES = [(f"busy-{i}", BUSY, 300) for i in range(5)] + [("busy-big", BUSY, 100)] + [("quiet", QUIET, 100)]
WANTED = {"busy-0": 3, "busy-1": 3, "busy-2": 3, "busy-3": 3, "busy-4": 3, "busy-big": 9, "quiet": 1}


@pytest.fixture(scope="module")
def logged_prometheus() -> Iterator[PrometheusServer]:
    require_prometheus()
    with PrometheusServer(query_log=True) as server:
        yield server


def test_policies_on_one_query_share_one_prometheus_query_per_round(
    cluster: EmulatedCluster, logged_prometheus: PrometheusServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    for name, query, target in POLICIES:
        cluster.create(deployment(name, 2))
        cluster.create(policy(name, {
            "targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10, "pollingIntervalSeconds": 30,
            "prometheusUrl": logged_prometheus.url,
            "metrics": [{"name": "load", "query": query, "target": {"type": "AverageValue", "value": target}}],
        }))

    def evaluated() -> dict[str, Any]:
        return {name: (cluster.get(API, "ScalingPolicy", name, NAMESPACE).get("status") or {}).get(
            "lastEvaluationTime") for name, _, _ in POLICIES}

    def replicas() -> dict[str, int]:
        return {name: int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"])
                for name, _, _ in POLICIES}

    with run_operator(cluster, registry=scaling_registry(kubeconfig, clock), namespaces=[NAMESPACE]):
        wait_until(lambda: None not in evaluated().values())
        first = evaluated()
        time.sleep(SHARE_QUERIES_SECONDS + 0.5)  # the first round's answers are no longer shared
        already = len(logged_prometheus.logged_queries())
        # one polling interval would evaluate without rewriting an unchanged status; past the refresh time the
        # round's evaluations show in lastEvaluationTime
        clock.advance(STATUS_REFRESH_SECONDS)
        # scale-down waits for its stabilization window, so only the second round can be compared exactly
        wait_until(lambda: all(evaluated()[n] != first[n] for n in first))
        per_round = Counter(logged_prometheus.logged_queries()[already:])
        assert per_round == {BUSY: 1, QUIET: 1}, per_round
        clock.advance(300)  # past the default scale-down stabilization window (5 min)
        wait_until(lambda: replicas() == WANTED, what=f"replicas {WANTED}")
