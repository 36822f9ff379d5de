"""The real kopf operator (in-process, emulated API server) running the BackupPolicy handlers.

Covers: the run-now annotation triggers a backup at once through the field handler (once per token);
the timer runs a scheduled backup when the injected ManualClock reaches the schedule time, and writes
status (nextScheduleTime, backups[], conditions) through the real API round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf

from tests.support.kube import OperatorFactory
from tests.support.rbac import with_and_without_rbac
from tests.support.waiting import wait_until
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.handlers import backup as backup_handlers
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.reconcile import RUN_NOW_ANNOTATION
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster
from tradesense_sandbox.runner import handlers_registry

API = "ops.tradesense.io/v1alpha1"


def backup_registry(kubeconfig: Path, clock: ManualClock) -> kopf.OperatorRegistry:
    """The backup handlers, and a Runtime with the test's clock built in the operator's own loop."""
    return handlers_registry(kubeconfig, clock, backup_handlers.register)


@with_and_without_rbac
def test_operator_runs_run_now_and_scheduled_backups(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory: OperatorFactory,
    source_db: PgTarget,
) -> None:
    cluster, ns = kube_cluster, test_namespace
    tmp_path = kubeconfig_path.parent
    clock = ManualClock(datetime.now(UTC))
    store = FilesystemStore(tmp_path / "bk")
    next_hour = (clock.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    cluster.create({
        "apiVersion": API, "kind": "BackupPolicy",
        "metadata": {"name": "pg", "namespace": ns, "annotations": {RUN_NOW_ANNOTATION: "first"}},
        "spec": {"database": {"host": source_db.host, "port": source_db.port, "database": source_db.dbname,
                              "user": source_db.user},
                 "schedule": "0 * * * *", "storage": {"filesystem": {"path": str(store.root)}}},
    })

    def status() -> dict[str, Any]:
        return dict(cluster.get(API, "BackupPolicy", "pg", ns).get("status") or {})

    handle = operator_factory(registry=backup_registry(kubeconfig_path, clock), namespaces=[ns])
    try:
        wait_until(lambda: status().get("lastRunNowToken") == "first" and len(status().get("backups") or []) == 1)
        assert status()["nextScheduleTime"].startswith(next_hour.strftime("%Y-%m-%dT%H:%M:%S"))
        assert len(dump_pipeline.list_backups(store)) == 1
        clock.set(next_hour + timedelta(seconds=5))
        wait_until(lambda: len(status().get("backups") or []) == 2)
        assert status()["lastScheduleTime"].startswith(next_hour.strftime("%Y-%m-%dT%H:%M:%S"))
    finally:
        handle.stop()
    conditions = {c["type"]: c["status"] for c in status()["conditions"]}
    assert conditions == {"Ready": "True", "LastBackupSucceeded": "True", "BackupStale": "False"}
    assert {e["reason"] for e in cluster.events(ns, "pg")} >= {"BackupSucceeded"}
    assert len(dump_pipeline.list_backups(store)) == 2
