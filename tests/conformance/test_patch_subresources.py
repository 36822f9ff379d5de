"""PATCH flavours, status/scale subresources, finalizers and garbage collection.

Covers: merge patch (null deletes), JSON patch (a failed `test` is 422 with a Status body), strategic
merge for containers/env lists keyed by name (`$patch: delete` too); the status subresource changes
only status and the main endpoint ignores status; the Deployment scale subresource (GET/PATCH/PUT,
autoscaling/v1 Scale); finalizers hold a deleted object with deletionTimestamp until emptied, and no
new finalizer may be added then; deleting a Deployment deletes its ReplicaSets and pods.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import Api, deployment, eventually

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


async def test_merge_patch_merges_maps_and_null_deletes(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await api.ok("POST", path, {"metadata": {"name": "m"}, "data": {"keep": "1", "drop": "2"}})
    patched = await api.ok("PATCH", f"{path}/m", {"data": {"drop": None, "add": "3"}}, content_type=MERGE)
    assert patched["data"] == {"keep": "1", "add": "3"}


async def test_json_patch_applies_and_failed_test_is_422(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    created = await api.ok("POST", path, {"metadata": {"name": "j"}, "data": {"v": "1"}})
    rv = created["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/data/v", "value": "2"},
    ]
    patched = await api.ok("PATCH", f"{path}/j", ops, content_type=JSON)
    assert patched["data"] == {"v": "2"}
    stale = await api.patch(f"{path}/j", ops, content_type=JSON)  # the same rv test again: now stale
    assert stale.status == 422
    assert stale.body["kind"] == "Status"
    assert stale.body["code"] == 422


async def test_strategic_merge_merges_containers_and_env_by_name(api: Api, ns: str) -> None:
    body = deployment("smp", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.example/app:2",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                        },
                    ]
                }
            }
        }
    }
    patched = await api.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/smp", patch, content_type=STRATEGIC)
    containers = {c["name"]: c for c in patched["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"app", "sidecar"}
    assert containers["app"]["image"] == "registry.example/app:2"
    assert [p["containerPort"] for p in containers["app"]["ports"]] == [8080]
    assert {e["name"]: e["value"] for e in containers["app"]["env"]} == {"A": "1", "B": "20", "C": "3"}

    delete_b = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "$patch": "delete"}]}]}}}
    }
    patched = await api.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/smp", delete_b, content_type=STRATEGIC)
    app = next(c for c in patched["spec"]["template"]["spec"]["containers"] if c["name"] == "app")
    assert [e["name"] for e in app["env"]] == ["A", "C"]


async def test_status_subresource_is_separate_from_the_main_endpoint(api: Api, ns: str) -> None:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", base, deployment("st", replicas=0))
    via_main = await api.ok(
        "PATCH", f"{base}/st", {"spec": {"paused": True}, "status": {"replicas": 42}}, content_type=MERGE
    )
    assert via_main["spec"]["paused"] is True
    assert via_main.get("status", {}).get("replicas") != 42
    via_status = await api.ok(
        "PATCH", f"{base}/st/status", {"spec": {"paused": False}, "status": {"collisionCount": 7}}, content_type=MERGE
    )
    assert via_status["status"]["collisionCount"] == 7
    assert via_status["spec"]["paused"] is True


async def test_deployment_scale_subresource(api: Api, ns: str) -> None:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", base, deployment("sc", replicas=1))
    scale = await api.ok("GET", f"{base}/sc/scale")
    assert (scale["kind"], scale["apiVersion"], scale["spec"]["replicas"]) == ("Scale", "autoscaling/v1", 1)
    assert scale["status"]["selector"] == "app=sc"
    patched = await api.ok("PATCH", f"{base}/sc/scale", {"spec": {"replicas": 3}}, content_type=MERGE)
    assert patched["spec"]["replicas"] == 3
    # PUT without a resourceVersion is unconditional (the controller may have written status meanwhile).
    unconditional = {**patched, "metadata": {k: v for k, v in patched["metadata"].items() if k != "resourceVersion"}}
    put = await api.ok("PUT", f"{base}/sc/scale", {**unconditional, "spec": {"replicas": 4}})
    assert put["spec"]["replicas"] == 4
    assert (await api.ok("GET", f"{base}/sc"))["spec"]["replicas"] == 4


async def test_a_scale_patch_carrying_a_stale_resource_version_is_a_conflict(api: Api, ns: str) -> None:
    """A PATCH of the scale subresource that names a resourceVersion is guarded by it, as a PUT is."""
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", base, deployment("guard", replicas=1))
    seen = await api.ok("GET", f"{base}/guard/scale")
    await api.ok("PATCH", f"{base}/guard/scale", {"spec": {"replicas": 2}}, content_type=MERGE)
    stale = await api.patch(f"{base}/guard/scale", {"metadata": {"resourceVersion": seen["metadata"]["resourceVersion"]},
                                                    "spec": {"replicas": 5}}, content_type=MERGE)
    assert stale.status == 409
    assert stale.body["reason"] == "Conflict"
    assert (await api.ok("GET", f"{base}/guard"))["spec"]["replicas"] == 2
    current = (await api.ok("GET", f"{base}/guard/scale"))["metadata"]["resourceVersion"]
    guarded = await api.ok("PATCH", f"{base}/guard/scale", {"metadata": {"resourceVersion": current},
                                                            "spec": {"replicas": 3}}, content_type=MERGE)
    assert guarded["spec"]["replicas"] == 3


async def test_finalizers_hold_a_deleted_object_until_removed(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    await api.ok("POST", path, {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})
    await api.ok("DELETE", f"{path}/fin")
    held = await api.ok("GET", f"{path}/fin")
    assert held["metadata"]["deletionTimestamp"]
    more = await api.patch(
        f"{path}/fin", {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}}, content_type=MERGE
    )
    assert more.status == 422
    await api.ok("PATCH", f"{path}/fin", {"metadata": {"finalizers": None}}, content_type=MERGE)
    assert (await api.get(f"{path}/fin")).status == 404


async def test_deleting_a_deployment_deletes_its_replicasets_and_pods(api: Api, ns: str) -> None:
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", base, deployment("gc", replicas=2))

    async def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (
            await api.ok("GET", f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "app=gc"})
        )["items"]
        return items

    owned = await eventually(pods)
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in owned)
    await api.ok("DELETE", f"{base}/gc", {"propagationPolicy": "Background"})

    async def gone() -> bool:
        rs = (await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets", params={"labelSelector": "app=gc"}))["items"]
        live = [p for p in await pods() if not p["metadata"].get("deletionTimestamp")]
        return not rs and not live

    assert await eventually(gone, timeout=30)


async def test_server_side_apply_creates_then_updates_and_is_idempotent(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps/applied"
    applied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: '1'\n"
    apply = "application/apply-patch+yaml"
    missing_manager = await api.request("PATCH", path, content_type=apply, body=None)
    assert missing_manager.status in (400, 422)

    async def server_side_apply(manifest: str) -> tuple[int, Any]:
        """The manifest as YAML on the wire (kubectl apply --server-side), as field manager `conformance`."""
        async with api.session.patch(
            f"{api.host}{path}",
            data=manifest,
            params={"fieldManager": "conformance"},
            headers={**api.headers, "Content-Type": apply},
            ssl=api.ssl,
        ) as response:
            return response.status, await response.json()

    status, first = await server_side_apply(applied)
    assert status == 201
    status, again = await server_side_apply(applied)
    assert status == 200
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    status, updated = await server_side_apply(applied.replace("'1'", "'2'"))
    assert status == 200
    assert updated["data"] == {"a": "2"}
