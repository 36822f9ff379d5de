"""Repeated Events aggregate like client-go's recorder: the same object, type, reason and message bump the
count of the Event already posted (what `kubectl describe` shows as "x3"), anything different is a new
Event, and a series whose Event is gone (expired, deleted) starts again with a new one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.rbac import with_and_without_rbac
from tradesense_operator.clients.kube import KubeClient, ObjectRef
from tradesense_sandbox.kubeapi.cluster import EmulatedCluster

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@with_and_without_rbac
async def test_repeats_bump_the_count_of_one_event(kube_cluster: EmulatedCluster, test_namespace: str,
                                                   kubeconfig_path: Path) -> None:
    cluster, ns = kube_cluster, test_namespace
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "subject", "namespace": ns}})
    subject = ObjectRef.from_body(cluster.get("v1", "ConfigMap", "subject", ns))
    kube = await KubeClient.from_kubeconfig(str(kubeconfig_path))
    try:
        for minute in range(3):
            await kube.create_event(subject, type_="Warning", reason="BackupFailed", message="port 1 refused",
                                    now=T0 + timedelta(minutes=minute))
        await kube.create_event(subject, type_="Warning", reason="BackupFailed", message="port 2 refused", now=T0)
        await kube.create_event(subject, type_="Normal", reason="BackupFailed", message="port 1 refused", now=T0)
        events = cluster.events(ns, "subject")
        assert [(e["type"], e["message"], e["count"]) for e in events] == [
            ("Warning", "port 1 refused", 3), ("Warning", "port 2 refused", 1), ("Normal", "port 1 refused", 1)]
        assert (events[0]["firstTimestamp"], events[0]["lastTimestamp"]) == ("2026-01-05T14:30:00Z", "2026-01-05T14:32:00Z")

        cluster.delete("v1", "Event", events[0]["metadata"]["name"], ns)
        await kube.create_event(subject, type_="Warning", reason="BackupFailed", message="port 1 refused", now=T0)
        again = [e for e in cluster.events(ns, "subject") if e["message"] == "port 1 refused" and e["type"] == "Warning"]
        assert [e["count"] for e in again] == [1]
    finally:
        await kube.close()
