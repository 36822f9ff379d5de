"""The operator's own RBAC (deploy/rbac) on an emulated cluster: the whole operator runs as its ServiceAccount.

`grant(cluster, …)` applies deploy/rbac's ServiceAccount, ClusterRole, Roles and bindings (the application Role
placed in the namespace a test acts on, the operator's own Role in its operator namespace), turns the emulator's
RBAC on, mints the ServiceAccount's token and writes a kubeconfig that holds only that token. kopf (login,
watches, patches, Events) and every operator client built from that kubeconfig then pass through deploy/rbac's
rules, as in a cluster. `OperatorIdentity.used_grants()` says which of the granted rules the run exercised, for
the audit that finds rules no run needs. This module does not start the operator (runner.py) and holds no rules.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tradesense_sandbox.kubeapi import ApiError, EmulatedCluster
from tradesense_sandbox.kubeapi.rbac import Grant, grants, used_grants
from tradesense_sandbox.runner import Endpoint

RBAC_DIR = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
OPERATOR_NAMESPACE = "tradesense-system"
APP_NAMESPACE = "tradesense"
SERVICE_ACCOUNT = "tradesense-operator"
ROLE_KINDS = ("Role", "ClusterRole")

Obj = dict[str, Any]


def deploy_rbac(directory: Path = RBAC_DIR) -> list[Obj]:
    """The documents of deploy/rbac, in its kustomization's order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    return [
        document
        for name in kustomization["resources"]
        for document in yaml.safe_load_all((directory / name).read_text(encoding="utf-8"))
        if document
    ]


def placed(documents: Iterable[Obj], *, app_namespace: str, operator_namespace: str = OPERATOR_NAMESPACE) -> list[Obj]:
    """Copies with the Roles and RoleBindings moved: `tradesense` → app_namespace, `tradesense-system` →
    operator_namespace (the ServiceAccount and binding subjects stay in tradesense-system).

    When both land in one namespace, the two Roles' rules add up there (a production install keeps them apart).
    """
    moved = {APP_NAMESPACE: app_namespace, OPERATOR_NAMESPACE: operator_namespace}
    out = []
    for document in documents:
        copied = copy.deepcopy(document)
        if copied["kind"] in ("Role", "RoleBinding"):
            meta = copied["metadata"]
            meta["namespace"] = moved.get(meta["namespace"], meta["namespace"])
        out.append(copied)
    return out


def roles(documents: Iterable[Obj]) -> list[Obj]:
    return [d for d in documents if d["kind"] in ROLE_KINDS]


def all_grants(documents: Iterable[Obj]) -> set[Grant]:
    """Every single grant the documents' Roles and ClusterRoles make."""
    return {g for role in roles(documents) for g in grants(role)}


@dataclass(frozen=True)
class OperatorIdentity:
    """The operator's ServiceAccount on one emulated cluster: its token, a kubeconfig holding only that token."""

    cluster: EmulatedCluster
    token: str
    kubeconfig: Path
    namespace: str
    documents: tuple[Obj, ...]

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.cluster.url, self.token, self.namespace)

    def used_grants(self) -> set[Grant]:
        """The rules of the applied documents that this token's authorized requests fell under."""
        return used_grants(roles(self.documents), self.cluster.authorized_requests(self.token))


def apply(cluster: EmulatedCluster, documents: Iterable[Obj]) -> None:
    """Create each document, or replace the object already there (like `kubectl apply` of a whole object)."""
    for document in documents:
        try:
            cluster.create(copy.deepcopy(document))
        except ApiError as exc:
            if exc.code != 409:
                raise
            meta = document["metadata"]
            current = cluster.get(document["apiVersion"], document["kind"], meta["name"], meta.get("namespace"))
            replacement = copy.deepcopy(document)
            replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            cluster.replace(replacement)


def grant(cluster: EmulatedCluster, kubeconfig: Path, *, app_namespace: str = APP_NAMESPACE,
          operator_namespace: str = OPERATOR_NAMESPACE, documents: Sequence[Obj] | None = None,
          context_namespace: str | None = None) -> OperatorIdentity:
    """Apply deploy/rbac (or `documents`, e.g. with a rule removed) placed for these namespaces, enforce RBAC,
    and write `kubeconfig` for the operator's ServiceAccount (context namespace: the app namespace).

    Objects that already exist (the ClusterRole on a shared cluster) are replaced, so each grant installs
    exactly the rules it was given.
    """
    applied = placed(deploy_rbac() if documents is None else documents, app_namespace=app_namespace,
                     operator_namespace=operator_namespace)
    for namespace in sorted({OPERATOR_NAMESPACE, operator_namespace, app_namespace}):
        if cluster.find("v1", "Namespace", namespace) is None:
            cluster.create_namespace(namespace)
    apply(cluster, applied)
    cluster.enable_rbac()
    token = cluster.service_account_token(OPERATOR_NAMESPACE, SERVICE_ACCOUNT)
    namespace = context_namespace or app_namespace
    kubeconfig.write_text(yaml.safe_dump(cluster.token_kubeconfig(token, namespace)), encoding="utf-8")
    kubeconfig.chmod(0o600)
    return OperatorIdentity(cluster, token, kubeconfig, namespace, tuple(applied))
