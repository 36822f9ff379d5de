"""Suspended BackupPolicies cost nothing between their scheduled times: the real kopf operator (backup
handlers, in-process, emulated API) sends no API request while hours of the injected clock pass before the
next scheduled time; at that time each policy takes exactly one pass (the run is skipped and reported, as
before); a resumed policy shows its next run at once and runs it when the clock gets there."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.backups.test_operator_handler import backup_registry
from tests.support.kube import OperatorFactory
from tests.support.waiting import wait_until
from tradesense_operator.domain.clock import ManualClock
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster

API = "ops.tradesense.io/v1alpha1"
POLICIES = 3


def next_two_am(after: datetime) -> datetime:
    """The first 02:00 UTC at least two hours after `after` (the policies' schedule is 0 2 * * *)."""
    candidate = (after + timedelta(hours=2)).replace(hour=2, minute=0, second=0, microsecond=0)
    return candidate if candidate >= after + timedelta(hours=2) else candidate + timedelta(days=1)


def test_suspended_policies_are_silent_until_their_scheduled_time_and_act_once_resumed(
    kube_cluster: EmulatedCluster, test_namespace: str, kubeconfig_path: Path, operator_factory: OperatorFactory,
    tmp_path: Path,
) -> None:
    cluster, ns = kube_cluster, test_namespace
    # Not earlier than the objects' creationTimestamp: schedules count from creation (CronJob semantics).
    clock = ManualClock(datetime.now(UTC))
    next_run = next_two_am(clock.now())
    day = next_run.strftime("%Y-%m-%dT%H:%M:%S")
    following = (next_run + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    names = [f"quiet-{i}" for i in range(POLICIES)]
    for name in names:
        cluster.create({"apiVersion": API, "kind": "BackupPolicy", "metadata": {"name": name, "namespace": ns},
                        "spec": {"database": {"host": "127.0.0.1", "port": 1, "database": "tradesense", "user": "u"},
                                 "schedule": "0 2 * * *", "suspend": True,
                                 "storage": {"filesystem": {"path": str(tmp_path / name)}}}})

    def status(name: str) -> dict[str, Any]:
        return dict(cluster.get(API, "BackupPolicy", name, ns).get("status") or {})

    def reasons(name: str) -> list[str]:
        return [e["reason"] for e in cluster.events(ns, name)]

    handle = operator_factory(registry=backup_registry(kubeconfig_path, clock), namespaces=[ns])
    try:
        wait_until(lambda: all(status(n).get("observedGeneration") == 1 for n in names))
        time.sleep(1.0)  # the status writes' own watch events arrive and are looked at
        before = cluster.stats.snapshot()
        while clock.now() < next_run - timedelta(minutes=10):  # 2 to 26 hours, in 10-minute steps
            clock.advance(timedelta(minutes=10))
            time.sleep(0.01)
        time.sleep(1.0)
        sent = {k: n - before.get(k, 0) for k, n in cluster.stats.snapshot().items() if n != before.get(k, 0)}
        assert sent == {}, f"requests while every policy was suspended and nothing was due: {sent}"

        clock.set(next_run + timedelta(seconds=30))
        wait_until(lambda: all(reasons(n).count("Suspended") == 1 for n in names))
        assert all(status(n)["lastScheduleTime"].startswith(day) for n in names)
        assert all(status(n).get("nextScheduleTime") is None for n in names)  # suspended: no next run

        cluster.patch(API, "BackupPolicy", names[0], {"spec": {"suspend": False}}, ns)
        wait_until(lambda: str(status(names[0]).get("nextScheduleTime", "")).startswith(following))
        clock.set(next_run + timedelta(days=1, seconds=30))
        # the database is a closed port: the run happens and fails, and says so
        wait_until(lambda: "BackupFailed" in reasons(names[0]))
        time.sleep(0.5)
        assert all("BackupFailed" not in reasons(n) for n in names[1:])
        assert all(reasons(n).count("Suspended") == 2 for n in names[1:])
    finally:
        handle.stop()
