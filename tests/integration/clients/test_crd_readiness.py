"""The operator waits for its CRDs to be Established before kopf watches them (a fresh install's transient
state is logged at INFO, not as kopf's start-up ERROR), and starts anyway with one WARNING after the timeout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.services.crd_readiness import OPERATOR_CRDS, wait_until_established
from tradesense_sandbox.kubeapi import EmulatedCluster

CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")


def _set_established(cluster: EmulatedCluster, name: str, status: str) -> None:
    crd = cluster.get(*CRD, name)
    conditions = [c for c in crd["status"]["conditions"] if c["type"] != "Established"]
    ready = status == "True"
    conditions.append({
        "type": "Established", "status": status, "reason": "InitialNamesAccepted" if ready else "Installing",
        "message": "the initial names have been accepted" if ready else "the initial names have not been accepted",
        "lastTransitionTime": crd["metadata"]["creationTimestamp"],
    })
    cluster.patch(*CRD, name, {"status": {"conditions": conditions}}, subresource="status")


async def test_waits_at_info_until_the_crds_are_established(
    fresh_kube_cluster: EmulatedCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    incidents = OPERATOR_CRDS[0]
    _set_established(fresh_kube_cluster, incidents, "False")
    polls: list[float] = []

    async def sleep(seconds: float) -> None:
        polls.append(seconds)
        _set_established(fresh_kube_cluster, incidents, "True")  # the API server finished initialising

    kube = await KubeClient.from_kubeconfig(str(fresh_kube_cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        with caplog.at_level(logging.INFO, logger="tradesense_operator.services.crd_readiness"):
            assert await wait_until_established(kube, sleep=sleep) == {}
    finally:
        await kube.close()
    assert polls == [1.0]
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith("crd_readiness")]
    assert all(level == logging.INFO for level, _ in records), records
    assert incidents in records[0][1]


async def test_starts_anyway_with_one_warning_naming_what_is_missing(
    fresh_kube_cluster: EmulatedCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_kube_cluster.delete(*CRD, OPERATOR_CRDS[2])
    kube = await KubeClient.from_kubeconfig(str(fresh_kube_cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        with caplog.at_level(logging.INFO, logger="tradesense_operator.services.crd_readiness"):
            pending = await wait_until_established(kube, timeout=0.0)
    finally:
        await kube.close()
    assert pending == {OPERATOR_CRDS[2]: "not installed"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert OPERATOR_CRDS[2] in warnings[0]
