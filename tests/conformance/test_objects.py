"""Object metadata and CRUD semantics.

Covers: uid, creationTimestamp, resourceVersion that changes on every write and not on a no-op,
generation bumped by spec changes only, generateName, namespaces (create/list/get), 409
AlreadyExists, 404 NotFound as a Status, PUT with a stale resourceVersion → 409 Conflict,
discovery of built-in groups, and the kinds the operator uses (Secrets, ConfigMaps, Leases,
Events with field selectors, Nodes, HPAs, Jobs), and Event expiry after the TTL (emulator clock).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.conformance.conftest import Api, deployment
from tradesense_sandbox.kubeapi import EmulatedCluster


async def test_create_sets_uid_timestamp_resource_version_and_generation(api: Api, ns: str) -> None:
    created = await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("meta"))
    meta = created["metadata"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert meta["namespace"] == ns


async def test_generation_moves_with_spec_but_not_metadata_or_status(api: Api, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/gen"
    created = await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("gen"))
    labelled = await api.ok(
        "PATCH", path, {"metadata": {"labels": {"team": "a"}}}, content_type="application/merge-patch+json"
    )
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    scaled = await api.ok("PATCH", path, {"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
    assert scaled["metadata"]["generation"] == 2


async def test_no_op_update_keeps_the_resource_version(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = await api.ok("POST", path, {"metadata": {"name": "same"}, "data": {"a": "1"}})
    again = await api.ok("PATCH", f"{path}/same", {"data": {"a": "1"}}, content_type="application/merge-patch+json")
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_generate_name_appends_a_random_suffix(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    first = await api.ok("POST", path, {"metadata": {"generateName": "gen-"}})
    second = await api.ok("POST", path, {"metadata": {"generateName": "gen-"}})
    assert re.fullmatch(r"gen-[a-z0-9]{5}", first["metadata"]["name"])
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_namespaces_can_be_created_listed_and_read(api: Api, ns: str) -> None:
    listing = await api.ok("GET", "/api/v1/namespaces")
    assert ns in {item["metadata"]["name"] for item in listing["items"]}
    single = await api.ok("GET", f"/api/v1/namespaces/{ns}")
    assert single["status"]["phase"] == "Active"


async def test_creating_an_existing_object_is_409_already_exists(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/secrets"
    await api.ok("POST", path, {"metadata": {"name": "twice"}, "stringData": {"k": "v"}})
    rsp = await api.post(path, {"metadata": {"name": "twice"}, "stringData": {"k": "v"}})
    assert (rsp.status, rsp.reason, rsp.body["kind"]) == (409, "AlreadyExists", "Status")


async def test_missing_object_is_404_status(api: Api, ns: str) -> None:
    rsp = await api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/absent")
    assert (rsp.status, rsp.reason, rsp.body["kind"], rsp.body["code"]) == (404, "NotFound", "Status", 404)
    assert rsp.body["details"]["name"] == "absent"


async def test_object_in_a_missing_namespace_is_404(api: Api, unique: Callable[[str], str]) -> None:
    rsp = await api.post(f"/api/v1/namespaces/{unique('nowhere')}/configmaps", {"metadata": {"name": "x"}})
    assert rsp.status == 404


async def test_put_with_a_stale_resource_version_is_409_conflict(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = await api.ok("POST", path, {"metadata": {"name": "cas"}, "data": {"v": "1"}})
    updated = dict(created, data={"v": "2"})
    await api.ok("PUT", f"{path}/cas", updated)
    stale = dict(created, data={"v": "3"})
    rsp = await api.put(f"{path}/cas", stale)
    assert (rsp.status, rsp.reason) == (409, "Conflict")
    current = await api.ok("GET", f"{path}/cas")
    assert current["data"] == {"v": "2"}


async def test_lease_updates_are_compare_and_swap(api: Api, ns: str) -> None:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
    lease = await api.ok(
        "POST", path, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    )
    mine = dict(lease, spec={**lease["spec"], "holderIdentity": "b"})
    theirs = dict(lease, spec={**lease["spec"], "holderIdentity": "c"})
    assert (await api.put(f"{path}/lock", mine)).status == 200
    assert (await api.put(f"{path}/lock", theirs)).status == 409


async def test_discovery_lists_the_groups_the_operator_uses(api: Api) -> None:
    core = await api.ok("GET", "/api")
    assert "v1" in core["versions"]
    groups = {g["name"] for g in (await api.ok("GET", "/apis"))["groups"]}
    assert {"apps", "coordination.k8s.io", "apiextensions.k8s.io", "autoscaling", "batch"} <= groups
    apps = await api.ok("GET", "/apis/apps/v1")
    names = {r["name"] for r in apps["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= names


async def test_events_are_listed_by_involved_object(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/events"
    for target in ("one", "two"):
        await api.ok(
            "POST",
            path,
            {
                "metadata": {"generateName": f"{target}."},
                "involvedObject": {"kind": "ConfigMap", "name": target, "namespace": ns, "apiVersion": "v1"},
                "reason": "Tested",
                "message": f"about {target}",
                "type": "Normal",
            },
        )
    listing = await api.ok("GET", path, params={"fieldSelector": "involvedObject.name=two"})
    assert [e["message"] for e in listing["items"]] == ["about two"]


async def test_nodes_are_ready(api: Api) -> None:
    nodes = (await api.ok("GET", "/api/v1/nodes"))["items"]
    assert nodes
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)


async def test_hpas_and_jobs_are_stored(api: Api, ns: str) -> None:
    hpa = await api.ok(
        "POST",
        f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        },
    )
    assert hpa["spec"]["maxReplicas"] == 5
    job = await api.ok(
        "POST",
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        {
            "metadata": {"name": "once"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}},
        },
    )
    assert job["metadata"]["name"] == "once"


async def test_events_expire_after_the_event_ttl(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    """kube-apiserver's --event-ttl flag (1 h by default); the emulator measures it on its controllable clock."""
    path = f"/api/v1/namespaces/{ns}/events"
    involved = {"kind": "ConfigMap", "name": "cm", "namespace": ns, "apiVersion": "v1"}
    body = {"metadata": {"name": "old"}, "involvedObject": involved, "reason": "Tested", "message": "m",
            "type": "Normal"}
    await api.ok("POST", path, body)
    emulator.advance_clock(emulator.event_ttl / 2)
    await api.ok("POST", path, {**body, "metadata": {"name": "young"}})
    emulator.advance_clock(emulator.event_ttl / 2 + 1)
    names = [e["metadata"]["name"] for e in (await api.ok("GET", path))["items"]]
    assert names == ["young"]


async def test_writes_record_their_field_manager_in_managed_fields(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    body = {"metadata": {"name": "owned"}, "data": {"a": "1"}}
    await api.ok("POST", path, body, params={"fieldManager": "conformance-creator"})
    await api.ok("PATCH", f"{path}/owned", {"data": {"b": "2"}}, params={"fieldManager": "conformance-patcher"})
    entries = {e["manager"]: e for e in (await api.ok("GET", f"{path}/owned"))["metadata"]["managedFields"]}
    assert entries["conformance-creator"]["operation"] == "Update"
    assert entries["conformance-creator"]["fieldsType"] == "FieldsV1"
    assert "f:a" in entries["conformance-creator"]["fieldsV1"]["f:data"]
    assert "f:b" in entries["conformance-patcher"]["fieldsV1"]["f:data"]
    assert entries["conformance-patcher"]["time"]
