"""Bring a cluster to the state the scenarios start from, and take it back down.

Order up: the application namespace (deploy/'s Role lives in it) → `kubectl kustomize deploy/` server-side applied
→ the operator (in-cluster from an image, or out-of-cluster with the ServiceAccount's own token) → the simulated
workloads. Order down: custom objects deleted while the operator still runs (it removes its finalizers) → operator
stopped → application namespace → everything deploy/ created, cluster-scoped objects last.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import (
    APP_NAMESPACE,
    BACKUP_POLICIES,
    DEPLOYMENTS,
    INCIDENTS,
    OPERATOR_NAMESPACE,
    OPERATOR_SA,
    SCALING_POLICIES,
    Kubectl,
    OperatorProcess,
    SyncKube,
    create_app_namespace,
    delete_namespace,
    install,
    render_deploy,
    server_side_apply_problem,
    service_account_token,
    token_kubeconfig,
    uninstall,
    wait_for,
)
from tests.e2e.scenarios import E2EEnv, PgTarget
from tradesense_operator.clients.errors import ClientError

log = logging.getLogger(__name__)


@dataclass
class Options:
    """How to run the operator and what the cluster offers."""

    workdir: Path
    image: str | None = None  # TSO_E2E_IMAGE: run in-cluster from this image when its Deployment becomes Available
    app_image: str = "registry.k8s.io/pause:3.9"
    readiness_timeout: float = 60.0
    operator_timeout: float = 60.0
    in_cluster_timeout: float = 180.0
    pg: PgTarget | None = None
    pg_problem: str = ""
    server_dry_run: bool = True
    operator_env: dict[str, str] = field(default_factory=dict)
    kubectl_kubeconfig: Path | None = None  # what kubectl uses, when it cannot use the cluster's own kubeconfig


def _in_cluster(kube: SyncKube, image: str, timeout: float, replicas: int) -> bool:
    """The operator Deployment as deploy/ ships it (replicas, leader election), from `image`; False if never Available."""
    kube.patch(DEPLOYMENTS, "tradesense-operator",
               {"spec": {"replicas": replicas,
                         "template": {"spec": {"containers": [{"name": "operator", "image": image}]}}}},
               OPERATOR_NAMESPACE, patch_type="strategic")

    def available() -> bool:
        dep = kube.get(DEPLOYMENTS, "tradesense-operator", OPERATOR_NAMESPACE)
        return any(c.get("type") == "Available" and c.get("status") == "True"
                   for c in (dep.get("status") or {}).get("conditions") or [])

    try:
        wait_for(available, timeout=timeout, what=f"the operator Deployment (image {image}) to become Available")
    except TimeoutError as exc:
        log.warning("%s: falling back to the out-of-cluster operator", exc)
        kube.patch(DEPLOYMENTS, "tradesense-operator", {"spec": {"replicas": 0}}, OPERATOR_NAMESPACE)
        return False
    return True


@contextlib.contextmanager
def e2e_environment(kubeconfig: Path, options: Options) -> Iterator[E2EEnv]:
    """The installed operator and simulated namespace; everything it created is removed on exit."""
    kube = SyncKube(kubeconfig)
    process: OperatorProcess | None = None
    installation = None
    created_namespace = False
    try:
        create_app_namespace(kube, APP_NAMESPACE, options.app_image)
        created_namespace = True
        documents = render_deploy(components=("backup-volume",))  # the filesystem backup scenario writes /backups
        shipped_replicas = next(int(d["spec"].get("replicas", 1)) for d in documents if d["kind"] == "Deployment")
        installation = install(kube, documents, operator_replicas=0)
        rbac_problem = None
        if not installation.rbac_served:
            rbac_problem = f"this API server does not serve RBAC (not served: {', '.join(installation.not_served)})"

        # The ServiceAccount's own token: the out-of-cluster operator runs with it, and the RBAC scenario uses it
        # either way (an in-cluster operator has the same identity).
        try:
            token = service_account_token(kube, OPERATOR_NAMESPACE, OPERATOR_SA)
        except ClientError as exc:
            raise RuntimeError(f"cannot create a token for ServiceAccount {OPERATOR_NAMESPACE}/{OPERATOR_SA} "
                               f"(TokenRequest API): {exc}; refusing to run the operator with admin rights") from exc
        operator_kubeconfig = token_kubeconfig(kubeconfig, token, options.workdir / "operator.kubeconfig")

        in_cluster = options.image is not None and _in_cluster(kube, options.image, options.in_cluster_timeout,
                                                                 shipped_replicas)
        backup_root = "/backups/e2e"
        if not in_cluster:
            backup_root = str(options.workdir / "backups")
            Path(backup_root).mkdir(parents=True, exist_ok=True)
            process = OperatorProcess(operator_kubeconfig, options.workdir, dict(options.operator_env))
            process.start(timeout=options.operator_timeout)
        kubectl_config = options.kubectl_kubeconfig or kubeconfig
        yield E2EEnv(
            kube=kube, kubeconfig=kubectl_config, namespace=APP_NAMESPACE, readiness_timeout=options.readiness_timeout,
            backup_root=backup_root, kubectl_problem=Kubectl(kubectl_config).problem(),
            server_side_apply_problem=server_side_apply_problem(kube, APP_NAMESPACE),
            operator_kubeconfig=operator_kubeconfig if rbac_problem is None else None, rbac_problem=rbac_problem,
            pg=options.pg, pg_problem=options.pg_problem, server_dry_run=options.server_dry_run,
            operator_timeout=options.operator_timeout,
        )
    finally:
        try:
            _delete_custom_objects(kube)
        finally:
            if process is not None:
                process.stop()
                if process.process is not None and process.process.returncode not in (0, None, -15):
                    log.warning("operator exited %s:\n%s", process.process.returncode, process.log_tail())
            if created_namespace:
                delete_namespace(kube, APP_NAMESPACE)
            if installation is not None:
                uninstall(kube, installation)
            kube.close()


def _delete_custom_objects(kube: SyncKube) -> None:
    """Delete every incident and policy of the app namespace while the operator can still remove its finalizers."""
    for kind in (INCIDENTS, BACKUP_POLICIES, SCALING_POLICIES):
        with contextlib.suppress(ClientError):
            for obj in kube.list(kind, APP_NAMESPACE):
                if (obj.get("status") or {}).get("phase") not in (None, "Succeeded", "Failed", "Cancelled"):
                    with contextlib.suppress(ClientError):
                        kube.patch(kind, obj["metadata"]["name"], {"spec": {"cancel": True}}, APP_NAMESPACE)
                kube.delete(kind, obj["metadata"]["name"], APP_NAMESPACE)
    with contextlib.suppress(TimeoutError, ClientError):
        wait_for(lambda: not any(kube.list(k, APP_NAMESPACE) for k in (INCIDENTS, BACKUP_POLICIES, SCALING_POLICIES)),
                 timeout=30, what="custom objects deleted")
