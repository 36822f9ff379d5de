"""Fixtures of the ScalingPolicy integration tests: emulated API server with our CRDs, a KubeClient on it,
the stand-in app, a real Prometheus scraping it every second, and a ScalingService on a ManualClock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scaling.prometheus_support import start_prometheus
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.scaling.evaluation import ScalingService
from tradesense_sandbox.app import StandinApp
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.operator_rbac import OperatorIdentity
from tradesense_sandbox.servers.prometheus import PrometheusServer

REPO = Path(__file__).resolve().parents[3]
NAMESPACE = "tradesense"
MONDAY_1000_NEW_YORK = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    with EmulatedCluster(pod_ready_delay=None) as c:
        c.install_crds(REPO / "crds")
        c.create_namespace(NAMESPACE)
        yield c


@pytest.fixture
def rbac_target(cluster: EmulatedCluster) -> tuple[EmulatedCluster, str]:
    return cluster, NAMESPACE  # deploy-rbac mode (tests/support/rbac.py) places deploy/rbac here


@pytest.fixture
def scaling_kubeconfig(cluster: EmulatedCluster, tmp_path: Path, operator_identity: OperatorIdentity | None) -> Path:
    """The admin's kubeconfig, or the operator's ServiceAccount's when the test runs with deploy/rbac in force."""
    if operator_identity is not None:
        return operator_identity.kubeconfig
    return cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)


@pytest.fixture
async def kube(scaling_kubeconfig: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.from_kubeconfig(str(scaling_kubeconfig))
    yield client
    await client.close()


@pytest.fixture(scope="module")
def app() -> Iterator[StandinApp]:
    with StandinApp() as standin:
        yield standin


@pytest.fixture(scope="module")
def prometheus(app: StandinApp) -> Iterator[PrometheusServer]:
    server = start_prometheus([app.target])
    try:
        server.wait_for_target_up(app.target, timeout=30)
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_1000_NEW_YORK)


@pytest.fixture
def pool() -> Iterator[PrometheusPool]:
    p = PrometheusPool(timeout=3)
    yield p
    p.close()


@pytest.fixture
def service(kube: KubeClient, pool: PrometheusPool, clock: ManualClock) -> ScalingService:
    # No default server: every test's policy names its Prometheus, so a mistake cannot reach a real one.
    return ScalingService(kube, pool, clock, default_prometheus_url="http://127.0.0.1:9")


def deployment(name: str, replicas: int, *, env: list[dict[str, str]] | None = None,
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A backend Deployment body like the runbook's (one container, optional env)."""
    container: dict[str, Any] = {"name": "backend", "image": "tradesense/backend:v2.0.0"}
    if env is not None:
        container["env"] = env
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations or {}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}},
    }


def policy(name: str, spec: dict[str, Any], *, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A ScalingPolicy body."""
    return {"apiVersion": "ops.tradesense.io/v1alpha1", "kind": "ScalingPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations or {}}, "spec": spec}
