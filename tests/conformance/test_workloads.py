"""The workload controller: Deployments → ReplicaSets → Pods, rollouts, scaling, self-healing, rollback.

Covers: pods get the template's labels, a pod-template-hash and ownerReferences and become Ready;
status reports observedGeneration/replicas/updated/ready/available with Available and Progressing
(NewReplicaSetAvailable) conditions; `kubectl rollout restart` (restartedAt annotation) replaces every
pod and bumps the revision; scaling changes the pod count; a deleted pod is replaced; rollback the way
`kubectl rollout undo` does it (copy the previous ReplicaSet's template) reuses the old ReplicaSet;
pods that never become Ready stall the rollout (Available stays as before, old pods are kept) and the
progress deadline turns Progressing False (emulator-only controls); pod logs are served.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.conformance.conftest import Api, deployment, eventually
from tradesense_sandbox.kubeapi import EmulatedCluster

REVISION = "deployment.kubernetes.io/revision"


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def _rolled_out(api: Api, ns: str, name: str, replicas: int) -> dict[str, Any] | None:
    dep = await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    status = dep.get("status") or {}
    done = (
        status.get("observedGeneration") == dep["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == replicas
        and status.get("readyReplicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and _condition(dep, "Progressing").get("reason") == "NewReplicaSetAvailable"
    )
    return dep if done else None


async def _pods(api: Api, ns: str, name: str) -> list[dict[str, Any]]:
    listing = await api.ok("GET", f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": f"app={name}"})
    return [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]


async def test_deployment_gets_ready_pods_and_status(api: Api, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("web", replicas=2))
    dep = await eventually(lambda: _rolled_out(api, ns, "web", 2), timeout=60)
    assert _condition(dep, "Available")["status"] == "True"
    assert dep["metadata"]["annotations"][REVISION] == "1"
    pods = await _pods(api, ns, "web")
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["labels"]["pod-template-hash"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["status"]["phase"] == "Running"
        assert _condition(pod, "Ready")["status"] == "True"


async def test_rollout_restart_replaces_every_pod(api: Api, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", path, deployment("rr", replicas=2))
    await eventually(lambda: _rolled_out(api, ns, "rr", 2), timeout=60)
    before = {p["metadata"]["name"] for p in await _pods(api, ns, "rr")}
    restart = {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}
    }
    await api.ok("PATCH", f"{path}/rr", restart, content_type="application/strategic-merge-patch+json")
    dep = await eventually(lambda: _rolled_out(api, ns, "rr", 2), timeout=60)
    assert dep["metadata"]["generation"] == 2
    assert dep["metadata"]["annotations"][REVISION] == "2"

    async def replaced() -> bool:
        return {p["metadata"]["name"] for p in await _pods(api, ns, "rr")}.isdisjoint(before)

    assert await eventually(replaced, timeout=60)


async def test_scaling_changes_the_pod_count(api: Api, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", path, deployment("sc", replicas=1))
    await eventually(lambda: _rolled_out(api, ns, "sc", 1), timeout=60)
    await api.ok("PATCH", f"{path}/sc/scale", {"spec": {"replicas": 3}})
    await eventually(lambda: _rolled_out(api, ns, "sc", 3), timeout=60)
    assert len(await _pods(api, ns, "sc")) == 3
    await api.ok("PATCH", f"{path}/sc", {"spec": {"replicas": 1}})
    await eventually(lambda: _rolled_out(api, ns, "sc", 1), timeout=60)

    async def one_pod() -> bool:
        return len(await _pods(api, ns, "sc")) == 1

    assert await eventually(one_pod, timeout=60)


async def test_a_deleted_pod_is_replaced(api: Api, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("heal", replicas=2))
    await eventually(lambda: _rolled_out(api, ns, "heal", 2), timeout=60)
    victim = (await _pods(api, ns, "heal"))[0]["metadata"]["name"]
    await api.ok("DELETE", f"/api/v1/namespaces/{ns}/pods/{victim}")

    async def healed() -> bool:
        names = {p["metadata"]["name"] for p in await _pods(api, ns, "heal")}
        return victim not in names and len(names) == 2

    assert await eventually(healed, timeout=60)
    await eventually(lambda: _rolled_out(api, ns, "heal", 2), timeout=60)


async def test_rollback_copies_the_previous_replicaset_template(api: Api, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", path, deployment("undo", replicas=1))
    await eventually(lambda: _rolled_out(api, ns, "undo", 1), timeout=60)
    image_patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:2"}]}}}}
    await api.ok("PATCH", f"{path}/undo", image_patch, content_type="application/strategic-merge-patch+json")
    await eventually(lambda: _rolled_out(api, ns, "undo", 1), timeout=60)

    # What `kubectl rollout undo` does: find the ReplicaSet of the previous revision, copy its template.
    replicasets = (await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets", params={"labelSelector": "app=undo"}))[
        "items"
    ]
    assert sorted(rs["metadata"]["annotations"][REVISION] for rs in replicasets) == ["1", "2"]
    previous = next(rs for rs in replicasets if rs["metadata"]["annotations"][REVISION] == "1")
    template = copy.deepcopy(previous["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    await api.ok(
        "PATCH",
        f"{path}/undo",
        [{"op": "replace", "path": "/spec/template", "value": template}],
        content_type="application/json-patch+json",
    )
    dep = await eventually(lambda: _rolled_out(api, ns, "undo", 1), timeout=60)
    assert dep["metadata"]["annotations"][REVISION] == "3"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/app:1"
    reused = await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets/{previous['metadata']['name']}")
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["spec"]["replicas"] == 1


async def test_pods_that_never_become_ready_stall_the_rollout(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    await api.ok("POST", path, deployment("stuck", replicas=2))
    await eventually(lambda: _rolled_out(api, ns, "stuck", 2), timeout=30)
    old = {p["metadata"]["name"] for p in await _pods(api, ns, "stuck")}
    emulator.set_pod_readiness(None, namespace=ns)
    bad = {
        "spec": {
            "progressDeadlineSeconds": 1,
            "template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:broken"}]}},
        }
    }
    await api.ok("PATCH", f"{path}/stuck", bad, content_type="application/strategic-merge-patch+json")

    async def deadline_exceeded() -> dict[str, Any] | None:
        dep = await api.ok("GET", f"{path}/stuck")
        return dep if _condition(dep, "Progressing").get("reason") == "ProgressDeadlineExceeded" else None

    dep = await eventually(deadline_exceeded, timeout=15)
    assert _condition(dep, "Progressing")["status"] == "False"
    assert _condition(dep, "Available")["status"] == "True"  # the old pods still serve
    assert dep["status"]["updatedReplicas"] == 1  # maxSurge 25% of 2 → 1 new pod; maxUnavailable 0 keeps both old
    assert dep["status"]["readyReplicas"] == 2
    assert old <= {p["metadata"]["name"] for p in await _pods(api, ns, "stuck")}


async def test_pod_readiness_can_be_flipped_and_logs_served(emulator: EmulatedCluster, api: Api, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("flip", replicas=1))
    await eventually(lambda: _rolled_out(api, ns, "flip", 1), timeout=30)
    pod = (await _pods(api, ns, "flip"))[0]["metadata"]["name"]
    emulator.set_pod_ready(ns, pod, False)

    async def unready() -> bool:
        dep = await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/flip")
        return (dep.get("status") or {}).get("readyReplicas", 0) == 0

    assert await eventually(unready)
    emulator.set_pod_log(ns, pod, "line 1\nERROR unauthorized access from 10.0.0.9\nline 3\n")
    url = f"{api.host}/api/v1/namespaces/{ns}/pods/{pod}/log"
    async with api.session.get(url, params={"tailLines": "2"}, headers=api.headers, ssl=api.ssl) as rsp:
        assert await rsp.text() == "ERROR unauthorized access from 10.0.0.9\nline 3\n"
