"""The real kopf operator (in-process, against the emulated API server) evaluating a ScalingPolicy with
the real handler functions: the loop evaluates a new policy at once, waits for pollingIntervalSeconds
of the injected ManualClock before the next evaluation, and scales the Deployment each time it is due; one
policy's unexpected error is logged and does not stop the loop for the others."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.integration.scaling.conftest import NAMESPACE, deployment, policy
from tests.support.rbac import with_and_without_rbac
from tests.support.waiting import wait_until
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.handlers import scaling as scaling_handlers
from tradesense_operator.services.scaling.evaluation import Outcome, ScalingService
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.operator_rbac import OperatorIdentity
from tradesense_sandbox.runner import handlers_registry, run_operator
from tradesense_sandbox.servers.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus


def scaling_registry(kubeconfig: Path, clock: ManualClock) -> kopf.OperatorRegistry:
    """Only the scaling handlers (plus the lead's startup) and a Runtime built inside the operator's loop.

    The kube client's HTTP session belongs to the loop that creates it, so the test cannot build it in its
    own loop and inject it; this startup handler builds it in the operator's loop, with the test's clock.
    """
    return handlers_registry(kubeconfig, clock, scaling_handlers.register)


@with_and_without_rbac
def test_operator_evaluates_when_due_on_the_injected_clock(
    cluster: EmulatedCluster, prometheus: PrometheusServer, scaling_kubeconfig: Path,
    operator_identity: OperatorIdentity | None, operator_rbac: str,
) -> None:
    clock = ManualClock()
    token = operator_identity.token if operator_identity else None
    name = f"timed-{operator_rbac}"  # both modes share the module's cluster
    cluster.create(deployment(name, 2))
    cluster.create(policy(name, {
        "targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10, "pollingIntervalSeconds": 30,
        "prometheusUrl": prometheus.url,
        "metrics": [{"name": "load", "query": "vector(900)", "target": {"type": "AverageValue", "value": 100}}],
    }))

    def replicas() -> int:
        return int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"])

    def last_evaluation() -> str | None:
        body = cluster.get("ops.tradesense.io/v1alpha1", "ScalingPolicy", name, NAMESPACE)
        return (body.get("status") or {}).get("lastEvaluationTime")

    with run_operator(cluster, token=token, registry=scaling_registry(scaling_kubeconfig, clock),
                      namespaces=[NAMESPACE]):
        wait_until(lambda: replicas() == 6 and last_evaluation() is not None)   # wants 9; the up rate allows 2 → 6
        first = last_evaluation()
        time.sleep(2.5)                                     # ticks happen, but 30 s of clock time have not passed
        assert last_evaluation() == first
        assert replicas() == 6
        clock.advance(30)
        wait_until(lambda: replicas() == 9)
    events = [e for e in cluster.events(NAMESPACE, name) if e["reason"] == "SuccessfulRescale"]
    assert [e["message"].rsplit(": ", 1)[-1] for e in events] == ["2 → 6", "6 → 9"]


def test_one_policys_unexpected_error_does_not_stop_the_others(
    cluster: EmulatedCluster, prometheus: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    original = ScalingService.evaluate
    failures: list[str] = []

    async def evaluate(self: ScalingService, body: Mapping[str, Any], previous: Any = None) -> Outcome:
        if body["metadata"]["name"] == "broken":
            failures.append("broken")
            raise RuntimeError("a bug in one evaluation")
        return await original(self, body, previous)

    monkeypatch.setattr(ScalingService, "evaluate", evaluate)
    for name in ("broken", "healthy"):
        cluster.create(deployment(name, 2))
        cluster.create(policy(name, {
            "targetRef": {"name": name}, "minReplicas": 1, "maxReplicas": 10, "pollingIntervalSeconds": 30,
            "prometheusUrl": prometheus.url,
            "metrics": [{"name": "load", "query": "vector(900)", "target": {"type": "AverageValue", "value": 100}}],
        }))

    def replicas(name: str) -> int:
        return int(cluster.get("apps/v1", "Deployment", name, NAMESPACE)["spec"]["replicas"])

    with run_operator(cluster, registry=scaling_registry(kubeconfig, clock), namespaces=[NAMESPACE]):
        wait_until(lambda: replicas("healthy") == 6 and bool(failures))
        clock.advance(30)                                   # the loop goes on: the next round scales again
        wait_until(lambda: replicas("healthy") == 9)
    assert replicas("broken") == 2
