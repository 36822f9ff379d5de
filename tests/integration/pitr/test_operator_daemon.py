"""The real kopf operator (emulated API server) running the point-in-time daemon against a throwaway
PostgreSQL 15: it starts pg_receivewal, takes the first base backup at once, and reports the recoverable
window, lag and WALArchiving=True on status; an invalid pointInTime is refused by the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest

from tests.support.kube import OperatorFactory
from tests.support.waiting import wait_until
from tradesense_operator.api.v1alpha1.backup import PLURAL
from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.clients.kube import KubeClient
from tradesense_operator.handlers import pitr as pitr_handlers
from tradesense_operator.handlers import startup as startup_handlers
from tradesense_operator.services.runtime import Runtime
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

API = "ops.tradesense.io/v1alpha1"


def pitr_registry(kubeconfig: Path, runtimes: list[Runtime]) -> kopf.OperatorRegistry:
    """The PITR daemon alone; the operator's Runtime is appended to `runtimes` (its metrics are asserted)."""
    registry = kopf.OperatorRegistry()

    async def inject_runtime(memo: kopf.Memo, **_: Any) -> None:
        memo.runtime = Runtime(kube=await KubeClient.from_kubeconfig(str(kubeconfig)))
        memo.runtime_owned = True
        runtimes.append(memo.runtime)

    kopf.on.startup(registry=registry)(inject_runtime)
    kopf.on.startup(registry=registry)(startup_handlers.configure)
    kopf.on.cleanup(registry=registry)(startup_handlers.close)
    kopf.daemon(GROUP, VERSION, PLURAL, when=pitr_handlers._enabled, cancellation_timeout=30.0,
                registry=registry)(pitr_handlers.wal_archiver)
    return registry


def policy(name: str, ns: str, source: ThrowawayPostgres, store: Path, **pit: Any) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "BackupPolicy", "metadata": {"name": name, "namespace": ns},
        "spec": {"database": {"host": source.host, "port": source.port, "database": "postgres", "user": "postgres"},
                 "storage": {"filesystem": {"path": str(store)}},
                 "pointInTime": {"enabled": True, "replicationUser": "postgres", **pit}},
    }


def test_daemon_archives_and_reports_window(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory: OperatorFactory,
    *, source: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, ns = kube_cluster, test_namespace
    monkeypatch.setenv("TRADESENSE_WAL_STAGING", str(kubeconfig_path.parent / "staging"))
    cluster.create(policy("pg", ns, source, kubeconfig_path.parent / "store", lagCriticalSeconds=120))

    def status() -> dict[str, Any]:
        return dict(cluster.get(API, "BackupPolicy", "pg", ns).get("status") or {})

    def archiving() -> dict[str, Any]:
        return next((c for c in status().get("conditions") or [] if c["type"] == "WALArchiving"), {})

    runtimes: list[Runtime] = []
    handle = operator_factory(registry=pitr_registry(kubeconfig_path, runtimes), namespaces=[ns])
    try:
        with source.connect() as conn:
            conn.execute("INSERT INTO trades (note) SELECT 'ok' FROM generate_series(1, 100)")
        wait_until(lambda: bool((status().get("pointInTime") or {}).get("earliestRestorableTime"))
                   and archiving().get("status") == "True", timeout=60)
        pit = status()["pointInTime"]
        assert pit["latestRestorableTime"] >= pit["earliestRestorableTime"]
        assert len(pit["baseBackups"]) == 1
        assert archiving()["reason"] == "Streaming"
        assert pit["lagBytes"] == 0
        series = {"namespace": ns, "policy": "pg"}
        registry = runtimes[0].metrics.registry
        # the policy's own limit, beside the lag: what TradeSenseWALArchiveBehind compares
        assert registry.get_sample_value("tradesense_operator_wal_archive_max_lag_seconds", series) == 120
        assert registry.get_sample_value("tradesense_operator_wal_archive_lag_seconds", series) is not None
    finally:
        handle.stop()


def test_invalid_point_in_time_is_refused_by_the_schema(
    kube_cluster: EmulatedCluster, test_namespace: str, source: ThrowawayPostgres, tmp_path: Path,
) -> None:
    body = policy("bad", test_namespace, source, tmp_path, lagWarningSeconds=600, lagCriticalSeconds=60)
    with pytest.raises(ApiError, match="lagWarningSeconds must be less than lagCriticalSeconds"):
        kube_cluster.create(body)
