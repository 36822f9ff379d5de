"""The tests/e2e scenarios on the emulated API server, in the default tier.

A fresh `EmulatedCluster` (nothing pre-installed: deploy/ and the CRDs go in through its API, as on a real cluster),
the real `tradesense-operator run` in a subprocess with the emulator's kubeconfig, and the shared PostgreSQL for
the BackupPolicy (its own database, dropped afterwards). The emulator enforces RBAC and serves the TokenRequest API,
so, as on a real cluster, the operator process runs with its own ServiceAccount's token and only deploy/rbac's rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.e2e.environment import Options, e2e_environment
from tests.e2e.harness import (
    APP_NAMESPACE,
    Kubectl,
    SyncKube,
    create_app_namespace,
    install,
    kubectl_missing,
    render_deploy,
    server_side_apply_problem,
)
from tests.e2e.kubectl_front import KubectlFront
from tests.e2e.scenarios import E2EEnv, PgTarget
from tests.support.rbac import record_usage
from tests.support.services import SHARED_PG_DSN
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.rbac import used_grants
from tradesense_sandbox.operator_rbac import deploy_rbac, roles


@pytest.fixture(scope="module")
def emulated_pg() -> Iterator[PgTarget]:
    name = f"tso_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SHARED_PG_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(make_conninfo(SHARED_PG_DSN, dbname=name), autocommit=True) as conn:
            conn.execute("CREATE TABLE trades (id int PRIMARY KEY, symbol text)")
            conn.execute("INSERT INTO trades SELECT g, 'AAPL' FROM generate_series(1, 100) g")
        info = conninfo_to_dict(SHARED_PG_DSN)
        yield PgTarget(host=str(info.get("host", "127.0.0.1")), port=int(info.get("port", 5432)), database=name,
                       user=str(info.get("user", "postgres")))
    finally:
        with psycopg.connect(SHARED_PG_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _require_kubectl() -> None:
    missing = kubectl_missing()
    if missing is not None:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def emulated_env(tmp_path_factory: pytest.TempPathFactory, emulated_pg: PgTarget) -> Iterator[E2EEnv]:
    _require_kubectl()
    workdir = tmp_path_factory.mktemp("e2e-emulated")
    with EmulatedCluster(pod_ready_delay=0.2) as cluster, KubectlFront(cluster.url, cluster.token) as front:
        cluster.enable_rbac()  # a real cluster always authorizes ServiceAccount tokens
        kubeconfig = cluster.write_kubeconfig(workdir / "kubeconfig")
        options = Options(workdir=workdir, readiness_timeout=30, operator_timeout=45, pg=emulated_pg,
                          server_dry_run=False,
                          kubectl_kubeconfig=front.kubeconfig(workdir / "kubectl.kubeconfig"))
        with e2e_environment(kubeconfig, options) as env:
            yield env
            if env.operator_kubeconfig is not None:  # what the operator process used, for the RBAC audit
                token = yaml.safe_load(env.operator_kubeconfig.read_text(encoding="utf-8"))["users"][0]["user"]["token"]
                record_usage(used_grants(roles(deploy_rbac()), cluster.authorized_requests(token)), "e2e-emulated")


@pytest.fixture
def pending_cluster_env(tmp_path: Path) -> Iterator[E2EEnv]:
    """Like a plain API server without kubelets: pods are created and never become Ready."""
    _require_kubectl()
    with EmulatedCluster(pod_ready_delay=None) as cluster:
        cluster.enable_rbac()
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        options = Options(workdir=tmp_path, readiness_timeout=3, operator_timeout=45)
        with e2e_environment(kubeconfig, options) as env:
            yield env


@pytest.fixture
def samples_env(tmp_path: Path) -> Iterator[E2EEnv]:
    """deploy/ installed (CRDs and all) and the `tradesense` namespace, but no operator: applied samples stay inert."""
    _require_kubectl()
    with EmulatedCluster(pod_ready_delay=0.2) as cluster, KubectlFront(cluster.url, cluster.token) as front:
        kube = SyncKube(cluster.write_kubeconfig(tmp_path / "kubeconfig"))
        kubectl_config = front.kubeconfig(tmp_path / "kubectl.kubeconfig")
        try:
            create_app_namespace(kube, APP_NAMESPACE, "registry.k8s.io/pause:3.9")
            install(kube, render_deploy(), operator_replicas=0)
            yield E2EEnv(kube=kube, kubeconfig=kubectl_config, namespace=APP_NAMESPACE, readiness_timeout=5,
                         backup_root=str(tmp_path), kubectl_problem=Kubectl(kubectl_config).problem(),
                         server_side_apply_problem=server_side_apply_problem(kube, APP_NAMESPACE),
                         server_dry_run=False)
        finally:
            kube.close()
