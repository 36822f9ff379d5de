"""Simulated kubelets and node lifecycle: what happens to a pod after the API server stored it.

Owns binding (round-robin over Ready nodes), the Running/Ready transition after a per-selector delay
(or never), containers stuck waiting (ImagePullBackOff, CrashLoopBackOff: never Ready), eviction (phase
Failed, still listed), graceful termination (a deleted pod stays Terminating until its containers stop,
at the latest when its grace period ends on the emulated clock, and indefinitely on a NotReady node), and
node readiness (a NotReady node's pods turn unready and its kubelet confirms no deletion).

It must not decide anything a controller decides (replacing pods, scaling): that is `workloads.py`. It
runs on the API server's loop; every method is called from the work queue, never from a store listener.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.kubeapi.selectors import Requirement, labels_match
from tradesense_sandbox.kubeapi.store import Obj, Store, parse_timestamp

PODS = ("", "v1", "pods")
NODES = ("", "v1", "nodes")
WAITING_REASONS = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError")
TERMINAL_PHASES = ("Failed", "Succeeded")
DEFAULT_GRACE_SECONDS = 30

WorkKey = tuple[str, str, str]


@dataclass
class ReadinessRule:
    """How long pods matching (namespace, selector) take to become Ready (None = never), or why they never start."""

    namespace: str | None
    selector: list[Requirement]
    delay: float | None
    waiting: str | None = None


@dataclass
class TerminationRule:
    """How long pods matching (namespace, selector) take to stop once deleted; None = they ignore SIGTERM."""

    namespace: str | None
    selector: list[Requirement]
    delay: float | None


def pod_is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_is_active(pod: Obj) -> bool:
    """What a ReplicaSet counts: not Terminating and not in a terminal phase (an evicted pod is replaced)."""
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES


def pod_is_available(pod: Obj, min_ready_seconds: int) -> bool:
    """Ready for at least minReadySeconds, on the emulated clock."""
    return available_in(pod, min_ready_seconds) == 0.0


def available_in(pod: Obj, min_ready_seconds: int) -> float | None:
    """Seconds until a pod counts as available (0.0: it does now; None: it is not Ready)."""
    if not pod_is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = next(
        (c.get("lastTransitionTime") for c in pod["status"].get("conditions") or [] if c.get("type") == "Ready"), None
    )
    if not since:
        return 0.0
    remaining = min_ready_seconds - (clock.now() - parse_timestamp(since)).total_seconds()
    return max(0.0, remaining)


def _matches(rule_namespace: str | None, selector: list[Requirement], pod: Obj) -> bool:
    meta = pod["metadata"]
    return (rule_namespace is None or rule_namespace == meta.get("namespace")) and labels_match(
        selector, meta.get("labels")
    )


def _pod_ip(uid: str) -> str:
    """A stable fake pod IP derived from the pod's uid."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{digest[0] % 250}.{digest[1] % 250 + 2}"


def _containers(pod: Obj) -> list[dict[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _unready(pod: Obj, reason: str = "ContainersNotReady") -> dict[str, str]:
    names = ",".join(str(c.get("name", "")) for c in _containers(pod))
    return {"reason": reason, "message": f"containers with unready status: [{names}]"}


class Kubelet:
    """Every node's kubelet plus the node lifecycle controller, driven by the workload controller's queue."""

    def __init__(
        self,
        store: Store,
        loop: asyncio.AbstractEventLoop,
        enqueue: Callable[[WorkKey], None],
        *,
        pod_ready_delay: float | None,
        pod_stop_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.loop = loop
        self.enqueue = enqueue
        self.pod_ready_delay = pod_ready_delay
        self.pod_stop_delay = pod_stop_delay
        self.readiness_rules: list[ReadinessRule] = []
        self.termination_rules: list[TerminationRule] = []
        self._node_counter = 0
        self._stopping: dict[tuple[str, str], str] = {}  # (namespace, name) → uid of a pod whose containers stop
        store.set_grace_policy(self.grace_period)

    def _pods(self) -> ResourceType:
        return self.store.resource_type(*PODS)

    # ----------------------------------------------------------------- API-server side (pod strategy)

    def grace_period(self, rtype: ResourceType, pod: Obj, requested: int | None) -> int:
        """The pod strategy's CheckGracefulDelete: unbound or finished pods go at once, others get their grace."""
        if rtype.key != PODS:
            return 0
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in TERMINAL_PHASES:
            return 0
        if requested is not None:
            return requested
        return int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS) or 0)

    # ----------------------------------------------------------------- nodes

    def node_ready(self, name: str) -> bool:
        try:
            node = self.store.get(self.store.resource_type(*NODES), None, name)
        except ApiError:
            return False
        return pod_is_ready(node)  # the same Ready-condition test

    def _ready_nodes(self, node_selector: dict[str, str]) -> list[str]:
        """The scheduler's view: Ready nodes whose labels satisfy the pod's nodeSelector."""
        nodes, _ = self.store.list(self.store.resource_type(*NODES), None)
        return sorted(
            n["metadata"]["name"]
            for n in nodes
            if pod_is_ready(n)
            and all((n["metadata"].get("labels") or {}).get(k) == v for k, v in node_selector.items())
        )

    def set_node_ready(self, name: str, ready: bool) -> None:
        """A node's kubelet stops (or resumes) posting status: Ready Unknown, its pods unready; back: resumed."""
        nodes = self.store.resource_type(*NODES)
        now = clock.rfc3339()

        def post(node: Obj) -> Obj:
            conditions = [c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") != "Ready"]
            conditions.append(
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}
                if ready else
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": now,
                 "lastTransitionTime": now}
            )
            node.setdefault("status", {})["conditions"] = conditions
            return node

        self.store.update(nodes, None, name, post, subresource="status")
        pods, _ = self.store.list(self._pods(), None)
        for pod in (p for p in pods if (p.get("spec") or {}).get("nodeName") == name):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                if ready:
                    self.enqueue(("terminate", meta["namespace"], meta["name"]))
                continue
            if (pod.get("status") or {}).get("phase") != "Running" or self._waiting_reason(pod):
                continue
            if not ready:
                self._set_running(meta["namespace"], meta["name"], ready=False, reason="NodeNotReady")
            elif self.readiness_delay(pod) is not None:
                self._set_running(meta["namespace"], meta["name"], ready=True)

    # ----------------------------------------------------------------- binding and starting

    def _rule(self, pod: Obj) -> ReadinessRule | None:
        return next((r for r in reversed(self.readiness_rules) if _matches(r.namespace, r.selector, pod)), None)

    def readiness_delay(self, pod: Obj) -> float | None:
        rule = self._rule(pod)
        return self.pod_ready_delay if rule is None else rule.delay

    def _waiting_reason(self, pod: Obj) -> str | None:
        rule = self._rule(pod)
        return None if rule is None else rule.waiting

    def bind(self, namespace: str, name: str) -> None:
        pods = self._pods()
        pod = self.store.get(pods, namespace, name)
        if (pod.get("status") or {}).get("phase") not in (None, "Pending") or pod["metadata"].get("deletionTimestamp"):
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            ready_nodes = self._ready_nodes(dict((pod.get("spec") or {}).get("nodeSelector") or {}))
            if not ready_nodes:
                return  # stays Pending and unscheduled: no Ready node fits
            node = ready_nodes[self._node_counter % len(ready_nodes)]
            self._node_counter += 1
        now = clock.rfc3339()

        def bind(obj: Obj) -> Obj:
            obj.setdefault("spec", {})["nodeName"] = node
            return obj

        self.store.update(pods, namespace, name, bind)

        def scheduled(obj: Obj) -> Obj:
            obj["status"] = {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
                "qosClass": "BestEffort",
            }
            return obj

        self.store.update(pods, namespace, name, scheduled, subresource="status")
        if not self.node_ready(str(node)):
            return
        waiting = self._waiting_reason(pod)
        if waiting is not None:
            self._set_waiting(namespace, name, waiting)
            return
        delay = self.readiness_delay(pod)
        if delay is not None:
            self.loop.call_later(delay, self.enqueue, ("pod-ready", namespace, name))
        else:
            self._set_running(namespace, name, ready=False)

    def start(self, namespace: str, name: str) -> None:
        try:
            pod = self.store.get(self._pods(), namespace, name)
        except ApiError:
            return
        if self.node_ready(str((pod.get("spec") or {}).get("nodeName") or "")):
            self._set_running(namespace, name, ready=True)

    def _set_running(self, namespace: str, name: str, *, ready: bool, reason: str = "ContainersNotReady") -> None:
        now = clock.rfc3339()

        def running(obj: Obj) -> Obj:
            status = obj.setdefault("status", {})
            if obj["metadata"].get("deletionTimestamp") or status.get("phase") in TERMINAL_PHASES:
                return obj
            flag = "True" if ready else "False"
            why = {} if ready else _unready(obj, reason)
            previous = {c.get("type"): c for c in status.get("conditions") or []}

            def condition(type_: str) -> dict[str, Any]:
                old = previous.get(type_) or {}
                since = old.get("lastTransitionTime", now) if old.get("status") == flag else now
                return {"type": type_, "status": flag, "lastTransitionTime": since, **why}

            status.update(
                {
                    "phase": "Running",
                    "startTime": status.get("startTime", now),
                    "podIP": _pod_ip(obj["metadata"]["uid"]),
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        condition("ContainersReady"),
                        condition("Ready"),
                    ],
                    "containerStatuses": [
                        {
                            "name": c.get("name"),
                            "image": c.get("image"),
                            "ready": ready,
                            "started": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": now}},
                        }
                        for c in _containers(obj)
                    ],
                }
            )
            return obj

        self.store.update(self._pods(), namespace, name, running, subresource="status")

    def _set_waiting(self, namespace: str, name: str, reason: str) -> None:
        """Containers that never start (image pull) or keep crashing (CrashLoopBackOff), as kubectl shows them."""
        now = clock.rfc3339()
        crashing = reason == "CrashLoopBackOff"

        def waiting(obj: Obj) -> Obj:
            statuses = []
            for c in _containers(obj):
                image = str(c.get("image", ""))
                message = (
                    f"back-off 40s restarting failed container={c.get('name')} pod={name}_{namespace}"
                    if crashing
                    else f'Back-off pulling image "{image}"'
                )
                entry: dict[str, Any] = {
                    "name": c.get("name"),
                    "image": image,
                    "ready": False,
                    "started": False,
                    "restartCount": 3 if crashing else 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
                if crashing:
                    entry["lastState"] = {
                        "terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}
                    }
                statuses.append(entry)
            why = _unready(obj)
            obj["status"] = {
                "phase": "Running" if crashing else "Pending",
                "startTime": now,
                "podIP": _pod_ip(obj["metadata"]["uid"]),
                "qosClass": "BestEffort",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, **why},
                    {"type": "Ready", "status": "False", "lastTransitionTime": now, **why},
                ],
                "containerStatuses": statuses,
            }
            return obj

        self.store.update(self._pods(), namespace, name, waiting, subresource="status")

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Flip a pod's readiness (a crash or a recovery), as the kubelet would report it."""
        self._set_running(namespace, name, ready=ready)

    def evict(self, namespace: str, name: str, message: str) -> None:
        """Node-pressure eviction: phase Failed, reason Evicted; the pod object stays until someone deletes it."""
        now = clock.rfc3339()

        def evicted(obj: Obj) -> Obj:
            why = {"reason": "PodFailed", "message": ""}
            obj["status"] = {
                **(obj.get("status") or {}),
                "phase": "Failed",
                "reason": "Evicted",
                "message": message,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, **why},
                    {"type": "Ready", "status": "False", "lastTransitionTime": now, **why},
                ],
                "containerStatuses": [
                    {
                        "name": c.get("name"),
                        "image": c.get("image"),
                        "ready": False,
                        "started": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {"exitCode": 137, "reason": "Error", "startedAt": now, "finishedAt": now}
                        },
                    }
                    for c in _containers(obj)
                ],
            }
            return obj

        self.store.update(self._pods(), namespace, name, evicted, subresource="status")

    # ----------------------------------------------------------------- graceful termination

    def _stop_delay(self, pod: Obj) -> float | None:
        rule = next((r for r in reversed(self.termination_rules) if _matches(r.namespace, r.selector, pod)), None)
        return self.pod_stop_delay if rule is None else rule.delay

    def terminate(self, namespace: str, name: str) -> None:
        """A pod marked for deletion: stop its containers, and confirm the deletion when they stopped or time ran out."""
        try:
            pod = self.store.get(self._pods(), namespace, name)
        except ApiError:
            return
        meta = pod["metadata"]
        deadline = meta.get("deletionTimestamp")
        if not deadline or not int(meta.get("deletionGracePeriodSeconds") or 0):
            return
        if not self.node_ready(str((pod.get("spec") or {}).get("nodeName") or "")):
            return  # nobody confirms the deletion: Terminating until the node is back or someone forces it
        remaining = (parse_timestamp(deadline) - clock.now()).total_seconds()
        if remaining <= 0:
            self._confirm(namespace, name, str(meta["uid"]))
            return
        delay = self._stop_delay(pod)
        if delay is not None and (namespace, name) not in self._stopping:
            self._stopping[(namespace, name)] = str(meta["uid"])
            self.loop.call_later(min(delay, remaining), self.enqueue, ("stopped", namespace, name))
        self.loop.call_later(remaining + 0.01, self.enqueue, ("terminate", namespace, name))

    def stopped(self, namespace: str, name: str) -> None:
        """The containers exited after SIGTERM: confirm the deletion (unless the node went away meanwhile)."""
        uid = self._stopping.pop((namespace, name), None)
        if uid is None:
            return
        try:
            pod = self.store.get(self._pods(), namespace, name)
        except ApiError:
            return
        if self.node_ready(str((pod.get("spec") or {}).get("nodeName") or "")):
            self._confirm(namespace, name, uid)

    def _confirm(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final DELETE with gracePeriodSeconds=0 (for the same pod only)."""
        try:
            self.store.delete(self._pods(), namespace, name, precondition_uid=uid, grace_period_seconds=0)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def terminating(self) -> list[Obj]:
        pods, _ = self.store.list(self._pods(), None)
        return [p for p in pods if p["metadata"].get("deletionTimestamp")]
