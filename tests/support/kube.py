"""Kubernetes fixtures: the emulated API server, per-test namespaces, kubeconfigs, the in-process operator.

- `kube_cluster`: a session-wide `EmulatedCluster` (pods Ready after 0.2 s; the generated CRDs from
  `crds/` installed when present). Faults and readiness rules a test adds are removed after it.
  Every object in it except Secrets (statuses, Events, annotations, ConfigMaps …) is scanned by the
  secret-leak guard for the values a test planted (tests/support/secrets.py).
- `fresh_kube_cluster`: a private cluster for tests that must own the whole history (410s, restarts).
- `test_namespace`: a unique namespace, deleted afterwards (isolation on the shared cluster).
- `kubeconfig_path`: a kubeconfig for the shared cluster, context namespace = `test_namespace`; the operator's
  ServiceAccount's when the test runs with deploy/rbac in force (tests/support/rbac.py).
- `operator_factory(memo=…, registry=…, namespaces=…, settings=…, cluster=…)`: starts the real kopf
  operator in-process and returns its `OperatorHandle` (as the ServiceAccount in deploy-rbac mode); all
  still running are stopped (and their crashes re-raised) at teardown.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.support.secrets import SecretGuard
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.operator_rbac import OperatorIdentity
from tradesense_sandbox.runner import Endpoint, OperatorHandle

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"

OperatorFactory = Callable[..., OperatorHandle]


def _install_generated_crds(cluster: EmulatedCluster) -> None:
    if any(CRD_DIR.glob("*.yaml")):
        cluster.install_crds(CRD_DIR)


@pytest.fixture(scope="session")
def _session_kube_cluster() -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(pod_ready_delay=0.2).start()
    try:
        _install_generated_crds(cluster)
        yield cluster
    finally:
        cluster.stop()


def _everything_but_secrets(cluster: EmulatedCluster) -> Callable[[], str]:
    """What a user can see without Secret access: a planted value found here is a leak."""
    def dump() -> str:
        return json.dumps(
            [obj for rtype, obj in cluster.store.all_objects() if rtype.kind != "Secret"], default=str
        )
    return dump


@pytest.fixture
def kube_cluster(_session_kube_cluster: EmulatedCluster, secret_guard: SecretGuard) -> Iterator[EmulatedCluster]:
    """The shared cluster; per-test faults and readiness rules do not leak into the next test."""
    cluster = _session_kube_cluster
    secret_guard.add_source("an object or Event in the emulated cluster", _everything_but_secrets(cluster))
    rules_before = len(cluster.kubelet.readiness_rules)
    stop_rules_before = len(cluster.kubelet.termination_rules)
    delay_before = cluster.pod_ready_delay
    yield cluster
    cluster.faults.clear()
    del cluster.kubelet.readiness_rules[rules_before:]
    del cluster.kubelet.termination_rules[stop_rules_before:]
    cluster.reset_clock()  # advance_clock is process-wide; the next test's operator compares with wall time
    for node in cluster.list("v1", "Node"):
        if not cluster.kubelet.node_ready(node["metadata"]["name"]):
            cluster.set_node_ready(node["metadata"]["name"], True)
    cluster.pod_ready_delay = delay_before


@pytest.fixture
def fresh_kube_cluster(secret_guard: SecretGuard) -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(pod_ready_delay=0.2).start()
    secret_guard.add_source("an object or Event in the emulated cluster", _everything_but_secrets(cluster))
    try:
        _install_generated_crds(cluster)
        yield cluster
    finally:
        cluster.reset_clock()
        cluster.stop()


@pytest.fixture
def test_namespace(kube_cluster: EmulatedCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    kube_cluster.create_namespace(name)
    yield name
    if kube_cluster.find("v1", "Namespace", name) is not None:
        kube_cluster.delete("v1", "Namespace", name)


@pytest.fixture
def kubeconfig_path(
    kube_cluster: EmulatedCluster, test_namespace: str, tmp_path: Path, operator_identity: OperatorIdentity | None
) -> Path:
    if operator_identity is not None:
        return operator_identity.kubeconfig
    return kube_cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=test_namespace)


@pytest.fixture
def operator_factory(
    kube_cluster: EmulatedCluster, operator_identity: OperatorIdentity | None
) -> Iterator[OperatorFactory]:
    handles: list[OperatorHandle] = []

    def start(
        *,
        memo: Any = None,
        registry: kopf.OperatorRegistry | None = None,
        namespaces: Collection[str] | None = None,
        settings: kopf.OperatorSettings | None = None,
        cluster: EmulatedCluster | None = None,
        timeout: float = 30.0,
    ) -> OperatorHandle:
        target = cluster or kube_cluster
        identity = operator_identity if operator_identity and operator_identity.cluster is target else None
        endpoint = identity.endpoint if identity else Endpoint.of(target)
        handle = OperatorHandle(endpoint, registry=registry, memo=memo, namespaces=namespaces, settings=settings)
        handles.append(handle)
        return handle.start(timeout=timeout)

    yield start
    errors = []
    for handle in handles:
        if handle.running:
            try:
                handle.stop()
            except Exception as exc:  # noqa: BLE001  # stop every handle, then fail with the first error
                errors.append(exc)
        elif handle.error is not None and not handle.killed:
            errors.append(handle.error)
    if errors:
        raise errors[0]
