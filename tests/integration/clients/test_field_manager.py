"""Every write the operator makes names its field manager, so managedFields tell its changes from others'.

Argo CD (managedFieldsManagers) and Flux recognise the operator's edits of replicas, env and restartedAt by
this name (deploy/gitops); the emulated API server records managedFields like a real one.
"""

from __future__ import annotations

from pathlib import Path

from tradesense_operator.clients.kube import CONFIGMAPS, DEPLOYMENTS, FIELD_MANAGER, KubeClient
from tradesense_sandbox.kubeapi import EmulatedCluster


def _managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(e["manager"], e.get("subresource", "")): e for e in obj["metadata"].get("managedFields") or []}


async def test_creates_patches_and_scale_writes_are_recorded_under_tradesense_operator(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path
) -> None:
    kube_cluster.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": test_namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}},
    })
    kube = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    try:
        await kube.create(CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, test_namespace)
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [
            {"name": "READ_ONLY", "value": "true"}]}]}}}}
        await kube.patch(DEPLOYMENTS, "web", patch, test_namespace, patch_type="strategic")
        await kube.set_replicas(test_namespace, "web", 3)
    finally:
        await kube.close()

    configmap = _managers(kube_cluster.get("v1", "ConfigMap", "cm", test_namespace))
    assert configmap[(FIELD_MANAGER, "")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    deployment = _managers(kube_cluster.get("apps/v1", "Deployment", "web", test_namespace))
    env_fields = deployment[(FIELD_MANAGER, "")]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]
    assert "f:containers" in env_fields
    assert deployment[(FIELD_MANAGER, "scale")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert all(entry["operation"] == "Update" for (name, _), entry in deployment.items() if name == FIELD_MANAGER)
