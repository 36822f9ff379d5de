"""The emulated API's optional RBAC mode, with the operator's real deploy/rbac: a ServiceAccount token is
authorized by Roles/ClusterRoles and their bindings (verbs, resourceNames, subresources) before anything else,
and refused with the Forbidden Status a real server answers (403 before 404 in a namespace without a Role)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tradesense_operator.clients.errors import Forbidden, NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, PODS, SECRETS, KubeClient, ResourceKind
from tradesense_sandbox.kubeapi import EmulatedCluster

RBAC = Path(__file__).resolve().parents[3] / "deploy" / "rbac"
LEASES = ResourceKind("coordination.k8s.io/v1", "Lease", "leases")
OPERATOR = "system:serviceaccount:tradesense-system:tradesense-operator"


@pytest.fixture
async def operator_kube(fresh_kube_cluster: EmulatedCluster, tmp_path: Path) -> AsyncIterator[KubeClient]:
    cluster = fresh_kube_cluster
    for namespace in ("tradesense-system", "tradesense"):
        cluster.create_namespace(namespace)
    for path in sorted(RBAC.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            cluster.apply_manifests(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    cluster.enable_rbac()
    token = cluster.service_account_token("tradesense-system", "tradesense-operator")
    kubeconfig = tmp_path / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(cluster.token_kubeconfig(token)), encoding="utf-8")
    kube = await KubeClient.from_kubeconfig(str(kubeconfig))
    try:
        yield kube
    finally:
        await kube.close()


async def test_what_the_roles_grant_works_and_the_rest_is_forbidden(
    operator_kube: KubeClient, fresh_kube_cluster: EmulatedCluster
) -> None:
    kube = operator_kube
    fresh_kube_cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tradesense-secrets",
                               "namespace": "tradesense"}, "data": {}})
    assert (await kube.get(SECRETS, "tradesense-secrets", "tradesense"))["metadata"]["name"] == "tradesense-secrets"
    assert await kube.list(PODS, "tradesense") == []
    with pytest.raises(NotFound):  # authorized (Role in tradesense-system), then absent
        await kube.get(LEASES, "tradesense-operator-leader", "tradesense-system")
    with pytest.raises(Forbidden, match=f'secrets "other" is forbidden: User "{OPERATOR}" cannot get resource '
                                        '"secrets" in API group "" in the namespace "tradesense"'):
        await kube.get(SECRETS, "other", "tradesense")  # resourceNames
    with pytest.raises(Forbidden, match='cannot delete resource "deployments" in API group "apps"'):
        await kube.delete(DEPLOYMENTS, "backend", "tradesense")  # verbs


async def test_authorization_comes_before_existence(operator_kube: KubeClient) -> None:
    forbidden = r'leases.coordination.k8s.io "x" is forbidden: .* in the namespace "no-such-namespace"'
    with pytest.raises(Forbidden, match=forbidden):
        await operator_kube.get(LEASES, "x", "no-such-namespace")


async def test_subresources_are_authorized_on_their_own(
    operator_kube: KubeClient, fresh_kube_cluster: EmulatedCluster
) -> None:
    fresh_kube_cluster.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "tradesense"},
                               "spec": {"containers": [{"name": "c", "image": "example/c:1"}]}})
    await operator_kube.pod_logs("tradesense", "p")  # pods/log: get
    with pytest.raises(Forbidden, match='cannot patch resource "pods/status"'):
        await operator_kube.patch(PODS, "p", {"status": {"phase": "Failed"}}, "tradesense", subresource="status")
