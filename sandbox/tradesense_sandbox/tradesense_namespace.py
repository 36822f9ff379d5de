"""The simulated `tradesense` namespace the runbook talks about: four Deployments, their Services, the
`tradesense-secrets` Secret and the DR activation ConfigMap, as plain manifests.

The demo and the runbook integration tests install the same objects into the emulated cluster, so the
names (`app=<name>` labels, container names, the JWT key in `tradesense-secrets`) are the ones the
catalogue's defaults expect — exactly as in the runbook.

Manifests and their installation into an emulated cluster; must not touch a real cluster.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

from tradesense_sandbox.kubeapi.cluster import EmulatedCluster

Obj = dict[str, Any]

WORKLOADS = ("postgres", "redis", "backend", "frontend")
DEFAULT_REPLICAS: Mapping[str, int] = {"postgres": 1, "redis": 1, "backend": 3, "frontend": 2}
IMAGES: Mapping[str, str] = {
    "postgres": "postgres:15",
    "redis": "redis:7",
    "backend": "tradesense/backend:v2.0.0",
    "frontend": "tradesense/frontend:v2.0.0",
}
SECRET_NAME = "tradesense-secrets"  # noqa: S105 - the Secret's name, not its value
SIGNING_KEY = "jwt-secret-key"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _env(name: str) -> list[Obj]:
    if name == "backend":
        return [
            {"name": "WORKERS", "value": "4"},
            {"name": "DATABASE_HOST", "value": "postgres"},
            {"name": "REDIS_HOST", "value": "redis"},
            {"name": "JWT_SECRET_KEY", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": SIGNING_KEY}}},
        ]
    if name == "frontend":
        return [{"name": "API_URL", "value": "http://backend-service:8000"}]
    return []


def deployment(namespace: str, name: str, replicas: int) -> Obj:
    """A Deployment whose pods carry `app=<name>` (and `version=blue` for the backend's blue/green Service)."""
    labels = {"app": name, **({"version": "blue"} if name == "backend" else {})}
    container: Obj = {
        "name": name,
        "image": IMAGES[name],
        "resources": {"requests": {"memory": "1Gi", "cpu": "500m"}, "limits": {"memory": "2Gi", "cpu": "1"}},
    }
    env = _env(name)
    if env:
        container["env"] = env
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def tradesense_manifests(namespace: str, *, signing_key: str, replicas: Mapping[str, int] | None = None) -> list[Obj]:
    """Every object of the simulated namespace (the Namespace itself not included)."""
    counts = {**DEFAULT_REPLICAS, **(replicas or {})}
    objects: list[Obj] = [deployment(namespace, name, counts[name]) for name in WORKLOADS]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": namespace},
            "type": "Opaque",
            "data": {SIGNING_KEY: _b64(signing_key)},
        }
    )
    for name, port, selector in (
        ("postgres", 5432, {"app": "postgres"}),
        ("redis", 6379, {"app": "redis"}),
        ("backend-service", 8000, {"app": "backend", "version": "blue"}),
    ):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": selector, "ports": [{"port": port, "targetPort": port}]},
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dr-activate", "namespace": namespace},
            "data": {"site": "tradesense-dr", "manifest": "k8s/dr-activate.yaml"},
        }
    )
    return objects


def install_tradesense(
    cluster: EmulatedCluster,
    namespace: str,
    *,
    signing_key: str,
    replicas: Mapping[str, int] | None = None,
    create_namespace: bool = True,
    timeout: float = 20.0,
) -> list[Obj]:
    """Create the namespace's objects and wait until every Deployment's pods are Ready."""
    if create_namespace and cluster.find("v1", "Namespace", namespace) is None:
        cluster.create_namespace(namespace)
    created = cluster.apply_manifests(tradesense_manifests(namespace, signing_key=signing_key, replicas=replicas))
    wait_workloads_ready(cluster, namespace, timeout=timeout)
    return created


def _rolled_out(deployment: Obj) -> bool:
    status = deployment.get("status") or {}
    wanted = int(deployment["spec"].get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) >= wanted
        and int(status.get("availableReplicas") or 0) >= wanted
        and int(status.get("replicas") or 0) <= wanted  # no old pods left
    )


def wait_workloads_ready(cluster: EmulatedCluster, namespace: str, *, timeout: float = 20.0) -> None:
    """Block until each Deployment's rollout is complete, as `kubectl rollout status` decides it.

    The controller must have observed the current generation first: right after a template change the status
    still describes the previous one, whose pods are all updated and available.
    """
    deadline = time.monotonic() + timeout
    while True:
        pending = [d["metadata"]["name"] for d in cluster.list("apps/v1", "Deployment", namespace) if not _rolled_out(d)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"deployments not ready in {namespace} after {timeout}s: {', '.join(pending)}")
        time.sleep(0.05)
