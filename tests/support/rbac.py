"""The identity the operator under test runs as: the emulator's admin (default) or its own ServiceAccount with
only deploy/rbac's rules in force (`tradesense_sandbox.operator_rbac`).

- `with_and_without_rbac`: parametrize an operator-level test to run both ways (ids `admin`, `deploy-rbac`);
  the same assertions then hold with kopf's watches, patches and Events and every action authorized by
  deploy/rbac alone, so a missing rule fails the test.
- `operator_identity`: None for the admin; in `deploy-rbac` mode the `OperatorIdentity` whose kubeconfig
  `kubeconfig_path` returns and whose token `operator_factory` gives kopf. `rbac_documents` (default: deploy/rbac
  as shipped; a test may override it, e.g. with a rule removed) are placed on the cluster of `rbac_target`
  (default `kube_cluster`, `test_namespace`): the application Role in its namespace, the operator's own Role in
  `rbac_operator_namespace` (tradesense-system as shipped; the bridge and leader-election tests, whose operator
  namespace is the test namespace, override it). A test directory with its own cluster overrides `rbac_target`.
- With `TSO_RBAC_USAGE_DIR` set, each deploy-rbac test (and the e2e suite on the emulator) writes the grants its
  run used there (one JSON file per run) for the excess-rule audit (tests/integration/rbac/test_deploy_rbac_audit.py).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.kubeapi.rbac import Grant
from tradesense_sandbox.operator_rbac import OPERATOR_NAMESPACE, OperatorIdentity, deploy_rbac, grant

ADMIN = "admin"
DEPLOY_RBAC = "deploy-rbac"
USAGE_DIR_VARIABLE = "TSO_RBAC_USAGE_DIR"

with_and_without_rbac = pytest.mark.parametrize("operator_rbac", [ADMIN, DEPLOY_RBAC], indirect=True)


@pytest.fixture
def operator_rbac(request: pytest.FixtureRequest) -> str:
    """`admin` unless a test is parametrized (indirectly) with `deploy-rbac`."""
    return str(getattr(request, "param", ADMIN))


@pytest.fixture
def rbac_documents() -> list[dict[str, Any]]:
    return deploy_rbac()


@pytest.fixture
def rbac_operator_namespace() -> str:
    return OPERATOR_NAMESPACE


@pytest.fixture
def rbac_target(request: pytest.FixtureRequest) -> tuple[EmulatedCluster, str]:
    """(cluster, namespace) that deploy-rbac mode places deploy/rbac on; looked up only in that mode."""
    return request.getfixturevalue("kube_cluster"), request.getfixturevalue("test_namespace")


def record_usage(used_grants: set[Grant], test_id: str) -> None:
    """Write the grants a run used where the audit collects them (only when it asked, by the variable)."""
    directory = os.environ.get(USAGE_DIR_VARIABLE)
    if not directory:
        return
    used = [asdict(g) for g in sorted(used_grants)]
    path = Path(directory) / f"{secrets.token_hex(8)}.json"
    path.write_text(json.dumps({"test": test_id, "used": used}), encoding="utf-8")


@pytest.fixture
def operator_identity(
    operator_rbac: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[OperatorIdentity | None]:
    if operator_rbac == ADMIN:
        yield None
        return
    if operator_rbac != DEPLOY_RBAC:
        raise ValueError(f"unknown operator_rbac mode {operator_rbac!r}")
    cluster, namespace = request.getfixturevalue("rbac_target")
    documents: list[dict[str, Any]] = request.getfixturevalue("rbac_documents")
    identity = grant(cluster, tmp_path / "operator.kubeconfig", app_namespace=namespace,
                     operator_namespace=request.getfixturevalue("rbac_operator_namespace"), documents=documents)
    yield identity
    if documents == deploy_rbac():  # a run with rules removed says nothing about what the shipped ones need
        record_usage(identity.used_grants(), request.node.nodeid)
