"""The real operator process in-process, serving its HTTP endpoint (bridge, /metrics, health) beside kopf.

The registry holds what an alert-driven incident needs: the incident handlers and the HTTP server, assembled by
the sandbox's `handlers_registry` (the Runtime is built inside kopf's own event loop, with `settings.http_port`
set to a free loopback port; then the production `configure` and `start_http` run). The bridge token lives in a
Secret in the emulated cluster (a planted value, so any leak into logs, Events or status fails the test).

`operator_with_bridge(**settings)` (fixture) starts it and returns a `RunningOperator`; the simulated
`tradesense` Deployments are installed in the same namespace by `install_app_namespace`, with the backend
at revision 2 so that "rollback recent deployment" has a previous revision to return to.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest

from tests.support.secrets import SecretGuard
from tests.support.waiting import eventually
from tradesense_operator.bridge.server import TOKEN_KEY
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.handlers import incident as incident_handlers
from tradesense_operator.handlers.http import start_http, stop_http
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.runner import OperatorHandle, handlers_registry
from tradesense_sandbox.servers import free_port
from tradesense_sandbox.tradesense_namespace import install_tradesense, wait_workloads_ready

INCIDENT_API = "ops.tradesense.io/v1alpha1"
INCIDENT_KIND = "TradeSenseIncident"
GOOD_IMAGE = "tradesense/backend:v2.0.0"
BAD_IMAGE = "tradesense/backend:v2.0.1"


def serve_http(registry: kopf.OperatorRegistry) -> None:
    """The operator's HTTP server (bridge, /metrics, health), as handlers/http.py registers it in production."""
    kopf.on.startup(registry=registry)(start_http)
    kopf.on.cleanup(registry=registry)(stop_http)


def build_registry(kubeconfig: Path, settings: Settings) -> kopf.OperatorRegistry:
    """Incident handlers + the HTTP server, with a Runtime built in the operator's loop."""
    return handlers_registry(kubeconfig, SystemClock(), incident_handlers.register, serve_http, settings=settings)


@dataclass
class RunningOperator:
    """The operator under test and where to reach it."""

    handle: OperatorHandle
    memo: kopf.Memo
    cluster: EmulatedCluster
    namespace: str
    port: int
    token: str

    @property
    def url(self) -> str:
        """The operator's HTTP server: the bridge at /alerts, /metrics, /healthz, /readyz."""
        return f"http://127.0.0.1:{self.port}"

    def incidents(self) -> list[dict[str, Any]]:
        return self.cluster.list(INCIDENT_API, INCIDENT_KIND, self.namespace)

    def backend_image(self) -> str:
        deployment = self.cluster.get("apps/v1", "Deployment", "backend", self.namespace)
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    async def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll (without blocking the loop) until predicate() holds."""
        await eventually(predicate, timeout, what=what)


def install_app_namespace(cluster: EmulatedCluster, namespace: str, signing_key: str) -> None:
    """The runbook's Deployments; the backend then gets a second (bad) release, so revision 1 is 'previous'."""
    install_tradesense(cluster, namespace, signing_key=signing_key, create_namespace=False)
    cluster.patch(
        "apps/v1", "Deployment", "backend",
        {"spec": {"template": {"spec": {"containers": [{"name": "backend", "image": BAD_IMAGE}]}}}},
        namespace, content_type="application/strategic-merge-patch+json",
    )
    deadline = time.monotonic() + 20
    while not _rolled_out(cluster.get("apps/v1", "Deployment", "backend", namespace)):
        if time.monotonic() > deadline:
            raise AssertionError("the backend's second release did not roll out in the emulator")
        time.sleep(0.05)
    wait_workloads_ready(cluster, namespace)


def _rolled_out(deployment: dict[str, Any]) -> bool:
    status = deployment.get("status") or {}
    replicas = int(deployment["spec"].get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == replicas
        and int(status.get("availableReplicas") or 0) == replicas
        and int(status.get("replicas") or 0) == replicas
    )


def copy_logs_to_backend_pods(cluster: EmulatedCluster, namespace: str, text: str) -> None:
    """What `kubectl logs deployment/backend` would show: the stand-in app's log ring."""
    for pod in cluster.list("v1", "Pod", namespace, label_selector="app=backend"):
        cluster.set_pod_log(namespace, pod["metadata"]["name"], text)


OperatorWithBridge = Callable[..., RunningOperator]


@pytest.fixture
def operator_with_bridge(
    kube_cluster: EmulatedCluster,
    test_namespace: str,
    kubeconfig_path: Path,
    operator_factory: Callable[..., OperatorHandle],
    secret_guard: SecretGuard,
) -> OperatorWithBridge:
    """`start(**settings)`: the operator watching the test namespace, its bridge on a free port."""
    token = secret_guard.plant(secrets.token_urlsafe(32))
    secret_guard.add_source(
        "incidents and Events in the cluster",
        lambda: json.dumps([kube_cluster.list(INCIDENT_API, INCIDENT_KIND, test_namespace),
                            kube_cluster.events(test_namespace)]),
    )
    kube_cluster.create({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "tradesense-operator-bridge", "namespace": test_namespace},
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    })

    def start(**overrides: Any) -> RunningOperator:
        port = free_port()
        settings = Settings(**{
            "http_port": port,
            "operator_namespace": test_namespace,
            "bridge_default_namespace": test_namespace,
            "step_poll_seconds": 0.2,
            **overrides,
        })
        memo = kopf.Memo()
        handle = operator_factory(registry=build_registry(kubeconfig_path, settings), namespaces=[test_namespace],
                                  memo=memo)
        return RunningOperator(handle, memo, kube_cluster, test_namespace, port, token)

    return start


async def run_alert_incident(
    operator: RunningOperator, session: aiohttp.ClientSession, payload: dict[str, Any]
) -> dict[str, Any]:
    """POST `payload` to the operator's own bridge and wait until the incident it creates is terminal."""
    async with session.post(f"{operator.url}/alerts", json=payload,
                            headers={"Authorization": f"Bearer {operator.token}"}) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    [result] = body["alerts"]
    assert result["outcome"] == "created", body
    name = result["incident"]

    def phase() -> str | None:
        found = operator.cluster.find(INCIDENT_API, INCIDENT_KIND, name, operator.namespace)
        return ((found or {}).get("status") or {}).get("phase")

    await operator.wait_for(f"incident {name} to finish", lambda: phase() in {"Succeeded", "Failed", "Cancelled"})
    incident = operator.cluster.get(INCIDENT_API, INCIDENT_KIND, name, operator.namespace)
    assert incident["status"]["phase"] == "Succeeded", incident["status"]
    return incident
