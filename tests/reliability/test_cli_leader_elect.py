"""`tradesense-operator run` (leader election is the default) as a real process against the emulated API: while another
replica holds the Lease it does not act but answers its liveness probe; it takes over only after the
Lease expired; when another holder takes the Lease away it exits with status 1 (Kubernetes restarts it
as a follower) instead of acting on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tradesense_operator.domain.incident.lease import format_micro_time
from tradesense_sandbox.kubeapi import EmulatedCluster
from tradesense_sandbox.servers import free_port

pytestmark = pytest.mark.slow
LEASE = "tradesense-operator-leader"


def _lease_spec(cluster: EmulatedCluster, namespace: str) -> dict[str, object]:
    lease = cluster.find("coordination.k8s.io/v1", "Lease", LEASE, namespace)
    return dict((lease or {}).get("spec") or {})


def _wait(what: str, predicate: object, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def replica(
    kube_cluster: EmulatedCluster, test_namespace: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    now = format_micro_time(datetime.now(UTC))
    kube_cluster.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": LEASE, "namespace": test_namespace},
                         "spec": {"holderIdentity": "other-replica", "leaseDurationSeconds": 3,
                                  "acquireTime": now, "renewTime": now, "leaseTransitions": 0}})
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=test_namespace)
    port, http_port = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "TSO_OPERATOR_NAMESPACE": test_namespace,
           "TSO_HTTP_PORT": str(http_port), "POD_NAME": "cli-replica"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tradesense_operator", "run", "-n", test_namespace,
         f"--liveness=http://127.0.0.1:{port}/healthz", "--lease-duration=3", "--renew-deadline=2",
         "--retry-period=0.3"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield process, f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{http_port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_a_replica_waits_while_alive_takes_over_after_expiry_and_exits_when_it_loses_the_lease(
    replica: tuple[subprocess.Popen[bytes], str, str], kube_cluster: EmulatedCluster, test_namespace: str
) -> None:
    process, liveness, http = replica
    _wait("the follower's liveness endpoint", lambda: _alive(liveness))
    assert _lease_spec(kube_cluster, test_namespace)["holderIdentity"] == "other-replica"
    # The Service also routes to the follower: the webhook gets a retryable 503, not a refused connection.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{http}/alerts", data=b"{}", timeout=2)
    assert refused.value.code == 503
    assert refused.value.headers["Retry-After"] == "5"
    with urllib.request.urlopen(f"{http}/metrics", timeout=2) as metrics:
        assert b"tradesense_operator_leader 0" in metrics.read()
    # "other-replica" never renews: after 3 s unchanged on the follower's clock it takes over.
    _wait("the take-over", lambda: str(_lease_spec(kube_cluster, test_namespace)["holderIdentity"]).startswith(
        "cli-replica_"))
    assert process.poll() is None
    spec = _lease_spec(kube_cluster, test_namespace)
    assert spec["leaseTransitions"] == 1
    # Another replica takes the Lease (as if this one had been partitioned away): this one must exit.
    now = format_micro_time(datetime.now(UTC))
    kube_cluster.patch("coordination.k8s.io/v1", "Lease", LEASE,
                       {"spec": {"holderIdentity": "usurper", "renewTime": now, "leaseDurationSeconds": 30}},
                       test_namespace)
    assert process.wait(timeout=20) == 1
    assert _lease_spec(kube_cluster, test_namespace)["holderIdentity"] == "usurper"
