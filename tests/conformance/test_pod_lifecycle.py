"""Pods over their life on a real cluster: graceful deletion, eviction, containers that never start, rollouts.

Runs against a real API server where the behaviour is the API server's or the controllers' own (the DELETE
answer of a bound pod, unscheduled pods deleted at once, force deletion, an evicted pod kept and replaced);
what needs a controlled kubelet (how long containers take to stop, a NotReady node, ImagePullBackOff,
when pods become Ready for the surge/minReadySeconds arithmetic) uses the emulator's knobs and skips on a
real cluster with the reason.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.conftest import Api, deployment, eventually
from tradesense_sandbox.kubeapi import EmulatedCluster


def _pod(
    name: str, *, node: str | None = None, grace: int = 30, node_selector: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "registry.example/app:1"}],
        "terminationGracePeriodSeconds": grace,
    }
    if node:
        spec["nodeName"] = node
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


async def _node(api: Api) -> str:
    nodes = (await api.ok("GET", "/api/v1/nodes"))["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert ready, "the cluster has no Ready node"
    return str(ready[0]["metadata"]["name"])


async def _gone(api: Api, path: str) -> bool:
    return (await api.get(path)).status == 404


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


async def _pods(api: Api, ns: str, selector: str) -> list[dict[str, Any]]:
    return list((await api.ok("GET", f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": selector}))["items"])


async def test_deleting_a_bound_pod_answers_with_its_grace_period_and_force_removes_it(api: Api, ns: str) -> None:
    node = await _node(api)
    path = f"/api/v1/namespaces/{ns}/pods"
    await api.ok("POST", path, _pod("graceful", node=node, grace=45))
    deleted = await api.ok("DELETE", f"{path}/graceful")
    assert deleted["metadata"]["deletionTimestamp"]
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 45
    current = await api.get(f"{path}/graceful")
    if current.status == 200:  # still Terminating: a second DELETE with gracePeriodSeconds=0 forces it
        assert current.body["metadata"]["deletionTimestamp"]
        forced = await api.delete(f"{path}/graceful", {"gracePeriodSeconds": 0})
        assert forced.status in (200, 404)  # 404: its containers stopped in between
    await eventually(lambda: _gone(api, f"{path}/graceful"), timeout=30)


async def test_an_unscheduled_pod_is_deleted_at_once(api: Api, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/pods"
    await api.ok("POST", path, _pod("nowhere", node_selector={"conformance.tradesense.io/no-such-node": "true"}))
    pod = await api.ok("GET", f"{path}/nowhere")
    assert not pod["spec"].get("nodeName")
    await api.ok("DELETE", f"{path}/nowhere")
    assert (await api.get(f"{path}/nowhere")).status == 404


async def test_a_deleted_pod_stays_terminating_until_its_containers_stop_or_the_grace_period_ends(
    emulator: EmulatedCluster, api: Api, ns: str
) -> None:
    node = await _node(api)
    path = f"/api/v1/namespaces/{ns}/pods"
    emulator.set_pod_termination(None, namespace=ns, label_selector="app=stubborn")  # ignores SIGTERM
    await api.ok("POST", path, _pod("stubborn", node=node, grace=30))
    await api.ok("DELETE", f"{path}/stubborn")
    listed = await _pods(api, ns, "app=stubborn")
    assert [p["metadata"]["name"] for p in listed] == ["stubborn"]
    assert listed[0]["metadata"]["deletionTimestamp"]
    emulator.advance_clock(10)
    assert (await api.get(f"{path}/stubborn")).status == 200  # 20 s of its grace period left
    emulator.advance_clock(25)
    await eventually(lambda: _gone(api, f"{path}/stubborn"), timeout=10)

    emulator.set_pod_termination(0.3, namespace=ns, label_selector="app=quick")
    await api.ok("POST", path, _pod("quick", node=node, grace=3600))
    await api.ok("DELETE", f"{path}/quick")
    await eventually(lambda: _gone(api, f"{path}/quick"), timeout=10)  # containers stopped: no need to wait an hour


async def test_pods_on_a_not_ready_node_turn_unready_and_stay_terminating(
    emulator: EmulatedCluster, api: Api, ns: str
) -> None:
    node = await _node(api)
    path = f"/api/v1/namespaces/{ns}/pods"
    await api.ok("POST", path, _pod("stranded", node=node, grace=5))
    await eventually(lambda: _ready_pod(api, f"{path}/stranded"), timeout=10)
    emulator.set_node_ready(node, False)
    try:
        assert not _ready(await api.ok("GET", f"{path}/stranded"))
        await api.ok("DELETE", f"{path}/stranded")
        emulator.advance_clock(60)  # long past the grace period: nobody confirms the deletion
        pod = await api.ok("GET", f"{path}/stranded")
        assert pod["metadata"]["deletionTimestamp"]
        node_obj = await api.ok("GET", f"/api/v1/nodes/{node}")
        assert next(c for c in node_obj["status"]["conditions"] if c["type"] == "Ready")["status"] == "Unknown"
    finally:
        emulator.set_node_ready(node, True)
    await eventually(lambda: _gone(api, f"{path}/stranded"), timeout=10)


async def _ready_pod(api: Api, path: str) -> bool:
    return _ready(await api.ok("GET", path))


async def test_an_evicted_pod_stays_listed_as_failed_and_is_replaced(api: Api, ns: str) -> None:
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("evict", replicas=1))

    async def one_ready() -> list[dict[str, Any]]:
        return [p for p in await _pods(api, ns, "app=evict") if _ready(p)]

    victim = (await eventually(one_ready, timeout=60))[0]["metadata"]["name"]
    evicted = {
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "message": "The node was low on resource: memory.",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed"}],
        }
    }
    await api.ok("PATCH", f"/api/v1/namespaces/{ns}/pods/{victim}/status", evicted,
                 content_type="application/strategic-merge-patch+json")

    async def replaced() -> list[dict[str, Any]]:
        return [p for p in await one_ready() if p["metadata"]["name"] != victim]

    await eventually(replaced, timeout=60)
    kept = await api.ok("GET", f"/api/v1/namespaces/{ns}/pods/{victim}")
    assert kept["status"]["phase"] == "Failed"
    assert kept["status"]["reason"] == "Evicted"
    assert not kept["metadata"].get("deletionTimestamp")


async def test_containers_that_cannot_start_are_never_ready_and_have_no_log(
    emulator: EmulatedCluster, api: Api, ns: str
) -> None:
    emulator.set_pod_waiting("ImagePullBackOff", namespace=ns, label_selector="app=pull")
    emulator.set_pod_waiting("CrashLoopBackOff", namespace=ns, label_selector="app=crash")
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("pull", replicas=1))
    await api.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment("crash", replicas=1))

    async def waiting(app: str) -> dict[str, Any] | None:
        pods = await _pods(api, ns, f"app={app}")
        if pods and (pods[0].get("status") or {}).get("containerStatuses"):
            return pods[0]
        return None

    pull = await eventually(lambda: waiting("pull"), timeout=10)
    assert pull["status"]["phase"] == "Pending"
    assert not _ready(pull)
    assert pull["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    log = await api.get(f"/api/v1/namespaces/{ns}/pods/{pull['metadata']['name']}/log")
    assert log.status == 400
    assert "is waiting to start: trying and failing to pull image" in log.body["message"]

    crash = await eventually(lambda: waiting("crash"), timeout=10)
    assert crash["status"]["phase"] == "Running"
    assert not _ready(crash)
    status = crash["status"]["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["restartCount"] > 0
    assert (await api.get(f"/api/v1/namespaces/{ns}/pods/{crash['metadata']['name']}/log")).status == 200


async def test_a_rolling_update_stays_within_max_surge_and_max_unavailable(
    emulator: EmulatedCluster, api: Api, ns: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    body = deployment("surge", replicas=4)
    body["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    await api.ok("POST", path, body)
    await eventually(lambda: _available(api, ns, "surge", 4), timeout=30)
    emulator.set_pod_readiness(None, namespace=ns, label_selector="track=broken")
    patch = {"spec": {"template": {"metadata": {"labels": {"track": "broken"}}}}}
    await api.ok("PATCH", f"{path}/surge", patch, content_type="application/strategic-merge-patch+json")

    async def settled() -> dict[str, int] | None:
        sets = (await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets"))["items"]
        sizes = {"new" if rs["spec"]["template"]["metadata"]["labels"].get("track") else "old": rs["spec"]["replicas"]
                 for rs in sets}
        return sizes if sizes == {"new": 2, "old": 3} else None

    await eventually(settled, timeout=15)  # 4 + 1 surge = 5 pods at most, 4 - 1 = 3 available at least

    async def counted() -> dict[str, Any] | None:  # pods and status follow the ReplicaSets' new sizes
        dep = await api.ok("GET", f"{path}/surge")
        pods = await _pods(api, ns, "app=surge")
        return dep if dep["status"].get("availableReplicas") == 3 and len(pods) == 5 else None

    dep = await eventually(counted, timeout=15)
    assert next(c for c in dep["status"]["conditions"] if c["type"] == "Available")["status"] == "True"


async def test_min_ready_seconds_delays_availability_on_the_emulated_clock(
    emulator: EmulatedCluster, api: Api, ns: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    body = deployment("settle", replicas=1)
    body["spec"]["minReadySeconds"] = 120
    await api.ok("POST", path, body)

    async def ready_not_available() -> dict[str, Any] | None:
        dep = await api.ok("GET", f"{path}/settle")
        status = dep.get("status") or {}
        return dep if status.get("readyReplicas") == 1 and not status.get("availableReplicas") else None

    await eventually(ready_not_available, timeout=10)
    emulator.advance_clock(121)
    await eventually(lambda: _available(api, ns, "settle", 1), timeout=10)


async def _available(api: Api, ns: str, name: str, replicas: int) -> bool:
    dep = await api.ok("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    return int((dep.get("status") or {}).get("availableReplicas") or 0) == replicas

