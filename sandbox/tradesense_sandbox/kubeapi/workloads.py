"""Simulated kube-controller-manager + kubelet: Deployments → ReplicaSets → Pods that become Ready.

Faithful where the operator looks: Deployments get defaulted and validated like the API server does;
each distinct pod template gets a ReplicaSet named `<deployment>-<pod-template-hash>` with a
`deployment.kubernetes.io/revision` annotation (reusing an old ReplicaSet on rollback, as `kubectl
rollout undo` relies on); a rollout brings new pods up before old ones go (availability never drops,
i.e. maxUnavailable=0 behaviour); status moves observedGeneration, replicas, updatedReplicas,
readyReplicas, availableReplicas and the Available/Progressing conditions (NewReplicaSetAvailable,
ProgressDeadlineExceeded). The kubelet part binds pods to a node and marks them Running and Ready
after a configurable delay, or never.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.errors import ApiError, invalid
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.kubeapi.selectors import (
    Requirement,
    labels_match,
    parse_label_selector,
    selector_from_label_selector,
)
from tradesense_sandbox.kubeapi.store import Obj, Store, parse_timestamp

logger = logging.getLogger(__name__)

DEPLOYMENTS = ("apps", "v1", "deployments")
REPLICASETS = ("apps", "v1", "replicasets")
PODS = ("", "v1", "pods")
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NODES = ("emulated-node-1", "emulated-node-2")


def template_hash(template: Obj) -> str:
    """A stable pod-template-hash over the template without its own hash label."""
    stripped = copy.deepcopy(template)
    (stripped.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[b % len(_HASH_ALPHABET)] for b in digest[:10])


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid and ref.get("controller") for ref in obj["metadata"].get("ownerReferences") or [])


def _owner_ref(owner: Obj) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(
    existing: list[dict[str, Any]], type_: str, status: str, reason: str, message: str, *, touch: bool = True
) -> dict[str, Any]:
    """A Deployment condition keeping lastTransitionTime unless the status flips, like the controller."""
    now = clock.rfc3339()
    previous = next((c for c in existing if c.get("type") == type_), None)
    transition = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    update = now if touch or previous is None else previous.get("lastUpdateTime", now)
    if (
        previous
        and previous.get("status") == status
        and previous.get("reason") == reason
        and previous.get("message") == message
    ):
        update = previous.get("lastUpdateTime", now) if not touch else update
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        container.setdefault(
            "imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent"
        )
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def admit_workloads(rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
    """API-server defaulting and validation for Deployments (and pod specs of Pods/ReplicaSets)."""
    if rtype.key == PODS:
        _default_pod_spec(obj.setdefault("spec", {}))
        return
    if rtype.key not in (DEPLOYMENTS, REPLICASETS):
        return
    name = obj["metadata"].get("name", "")
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if rtype.key == DEPLOYMENTS:
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    template = spec.get("template") or {}
    _default_pod_spec(template.setdefault("spec", {}))
    causes: list[tuple[str, str, str]] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(
            ("FieldValueInvalid", "spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")
        )
    selector = spec.get("selector")
    if not selector:
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    else:
        requirements = parse_label_selector(selector_from_label_selector(selector))
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not requirements:
            causes.append(("FieldValueInvalid", "spec.selector", "Invalid value: empty selector is invalid for deployment"))
        elif not labels_match(requirements, labels):
            causes.append(
                (
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                )
            )
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            causes.append(
                ("FieldValueInvalid", "spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
            )
    if not (template.get("spec") or {}).get("containers"):
        causes.append(("FieldValueRequired", "spec.template.spec.containers", "Required value"))
    if causes:
        raise invalid(rtype.kind, rtype.group, name, causes)


@dataclass
class ReadinessRule:
    """How long pods matching (namespace, selector) take to become Ready; None = never."""

    namespace: str | None
    selector: list[Requirement]
    delay: float | None


class WorkloadController:
    """Runs on the API server's loop; reacts to store changes through a de-duplicating work queue."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop, *, pod_ready_delay: float | None) -> None:
        self.store = store
        self.loop = loop
        self.pod_ready_delay = pod_ready_delay
        self.readiness_rules: list[ReadinessRule] = []
        self._dirty: dict[tuple[str, str, str], None] = {}
        self._wake = asyncio.Event()
        self._node_counter = 0
        self._rechecks: dict[tuple[str, str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        store.add_admission(admit_workloads)
        store.add_listener(self._on_change)

    # ----------------------------------------------------------------- queueing

    def _on_change(self, rtype: ResourceType, event_type: str, obj: Obj, _old: Obj | None) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        keys: list[tuple[str, str, str]] = []
        if rtype.key == DEPLOYMENTS:
            keys.append(("deployment", namespace, meta["name"]))
        elif rtype.key == REPLICASETS:
            keys.append(("replicaset", namespace, meta["name"]))
            keys.extend(
                ("deployment", namespace, ref["name"])
                for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == "Deployment"
            )
        elif rtype.key == PODS:
            keys.extend(
                ("replicaset", namespace, ref["name"])
                for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == "ReplicaSet"
            )
            if event_type == "ADDED":
                keys.append(("kubelet", namespace, meta["name"]))
        for key in keys:
            self.loop.call_soon_threadsafe(self.enqueue, key)

    def enqueue(self, key: tuple[str, str, str]) -> None:
        self._dirty[key] = None
        self._wake.set()

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name="emulated workload controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._dirty)
            self._dirty.clear()
            for key in batch:
                try:
                    self._reconcile(key)
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        logger.warning("workload controller: %s %s/%s: %s", key[0], key[1], key[2], exc.message)
                    if exc.code == 409:
                        self.enqueue(key)
                except Exception:
                    logger.exception("workload controller crashed on %s %s/%s", *key)
            await asyncio.sleep(0)

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        what, namespace, name = key
        if what == "deployment":
            self._reconcile_deployment(namespace, name)
        elif what == "replicaset":
            self._reconcile_replicaset(namespace, name)
        elif what == "kubelet":
            self._bind_pod(namespace, name)
        elif what == "pod-ready":
            self._start_pod(namespace, name)

    def _rtype(self, key: tuple[str, str, str]) -> ResourceType:
        return self.store.resource_type(*key)

    # ----------------------------------------------------------------- kubelet

    def readiness_delay(self, pod: Obj) -> float | None:
        meta = pod["metadata"]
        for rule in reversed(self.readiness_rules):
            if (rule.namespace is None or rule.namespace == meta.get("namespace")) and labels_match(
                rule.selector, meta.get("labels")
            ):
                return rule.delay
        return self.pod_ready_delay

    def _bind_pod(self, namespace: str, name: str) -> None:
        pods = self._rtype(PODS)
        pod = self.store.get(pods, namespace, name)
        if (pod.get("status") or {}).get("phase") not in (None, "Pending") or pod["metadata"].get("deletionTimestamp"):
            return
        node = (pod.get("spec") or {}).get("nodeName") or _NODES[self._node_counter % len(_NODES)]
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
        delay = self.readiness_delay(pod)
        if delay is not None:
            self.loop.call_later(delay, self.enqueue, ("pod-ready", namespace, name))
        else:
            self._set_running(namespace, name, ready=False)

    def _start_pod(self, namespace: str, name: str) -> None:
        self._set_running(namespace, name, ready=True)

    def _set_running(self, namespace: str, name: str, *, ready: bool) -> None:
        pods = self._rtype(PODS)
        now = clock.rfc3339()

        def running(obj: Obj) -> Obj:
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            status = obj.setdefault("status", {})
            flag = "True" if ready else "False"
            reason = (
                {}
                if ready
                else {
                    "reason": "ContainersNotReady",
                    "message": "containers with unready status: ["
                    + ",".join(c.get("name", "") for c in (obj.get("spec") or {}).get("containers") or [])
                    + "]",
                }
            )
            status.update(
                {
                    "phase": "Running",
                    "startTime": status.get("startTime", now),
                    "podIP": _pod_ip(obj["metadata"]["uid"]),
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now, **reason},
                        {"type": "Ready", "status": flag, "lastTransitionTime": now, **reason},
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
                        for c in (obj.get("spec") or {}).get("containers") or []
                    ],
                }
            )
            return obj

        self.store.update(pods, namespace, name, running, subresource="status")

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Flip a pod's readiness (a crash or a recovery), as the kubelet would report it."""
        self._set_running(namespace, name, ready=ready)

    # ----------------------------------------------------------------- replicasets

    def _pods_of(self, owner_uid: str) -> list[Obj]:
        pods = self.store.owned_by(self._rtype(PODS), owner_uid)
        return [p for p in pods if _owned_by(p, owner_uid) and not p["metadata"].get("deletionTimestamp")]

    def _reconcile_replicaset(self, namespace: str, name: str) -> None:
        rs_type = self._rtype(REPLICASETS)
        try:
            rs = self.store.get(rs_type, namespace, name)
        except ApiError:
            return
        if rs["metadata"].get("deletionTimestamp"):
            return
        uid = rs["metadata"]["uid"]
        pods = self._pods_of(uid)
        desired = int(rs["spec"].get("replicas", 1))
        template = rs["spec"].get("template") or {}
        pod_type = self._rtype(PODS)
        for _ in range(desired - len(pods)):
            template_meta = template.get("metadata") or {}
            pod: Obj = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{name}-",
                    "namespace": namespace,
                    "labels": dict(template_meta.get("labels") or {}),
                    "annotations": dict(template_meta.get("annotations") or {}),
                    "ownerReferences": [_owner_ref(rs)],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
                "status": {"phase": "Pending"},
            }
            if not pod["metadata"]["annotations"]:
                del pod["metadata"]["annotations"]
            pods.append(self.store.create(pod_type, namespace, pod))
        if len(pods) > desired:
            # Like the ReplicaSet controller: delete unready before ready, then the newest first.
            ranked = sorted(pods, key=lambda p: (pod_is_ready(p), p["metadata"]["creationTimestamp"]), reverse=False)
            doomed = sorted(ranked[: len(pods) - desired], key=lambda p: p["metadata"]["name"])
            for pod in doomed:
                try:
                    self.store.delete(pod_type, namespace, pod["metadata"]["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            pods = [p for p in pods if p not in doomed]
        ready = sum(1 for p in pods if pod_is_ready(p))
        labels = (template.get("metadata") or {}).get("labels") or {}
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}

        def write(obj: Obj) -> Obj:
            obj["status"] = status
            return obj

        self.store.update(rs_type, namespace, name, write, subresource="status")

    # ----------------------------------------------------------------- deployments

    def _reconcile_deployment(self, namespace: str, name: str) -> None:
        dep_type, rs_type = self._rtype(DEPLOYMENTS), self._rtype(REPLICASETS)
        try:
            dep = self.store.get(dep_type, namespace, name)
        except ApiError:
            return
        if dep["metadata"].get("deletionTimestamp"):
            return
        uid = dep["metadata"]["uid"]
        spec = dep["spec"]
        replicas = int(spec.get("replicas", 1))
        template = spec["template"]
        wanted_hash = template_hash(template)
        owned = [rs for rs in self.store.owned_by(rs_type, uid) if _owned_by(rs, uid)]
        revisions = [int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned]
        max_revision = max(revisions, default=0)
        new_rs = next((rs for rs in owned if template_hash(rs["spec"].get("template") or {}) == wanted_hash), None)
        created = False
        if new_rs is None and not spec.get("paused"):  # a paused Deployment keeps its ReplicaSets as they are
            new_rs = self._create_replicaset(dep, wanted_hash, max_revision + 1)
            owned.append(new_rs)
            created = True
        elif new_rs is not None and int(new_rs["metadata"].get("annotations", {}).get(REVISION, "0")) != max_revision:
            new_rs = self._set_revision(new_rs, max_revision + 1)
        if new_rs is not None:
            revision = new_rs["metadata"]["annotations"][REVISION]
            if (dep["metadata"].get("annotations") or {}).get(REVISION) != revision:

                def annotate(obj: Obj) -> Obj:
                    obj["metadata"].setdefault("annotations", {})[REVISION] = revision
                    return obj

                dep = self.store.update(dep_type, namespace, name, annotate)
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        pods_by_rs = {rs["metadata"]["uid"]: self._pods_of(rs["metadata"]["uid"]) for rs in owned}
        new_ready = sum(1 for p in pods_by_rs.get(new_uid or "", []) if pod_is_ready(p))
        if new_rs is not None and not spec.get("paused"):
            self._scale_rs(new_rs, replicas)
            budget = max(0, replicas - new_ready)
            old = sorted(
                (rs for rs in owned if rs["metadata"]["uid"] != new_uid),
                key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")),
                reverse=True,
            )
            for rs in old:
                keep = min(int(rs["spec"].get("replicas", 0)), budget)
                budget -= keep
                self._scale_rs(rs, keep)
            self._cleanup_history(dep, old)
        self._write_deployment_status(dep, new_rs, pods_by_rs, created=created)

    def _create_replicaset(self, dep: Obj, pod_hash: str, revision: int) -> Obj:
        name = dep["metadata"]["name"]
        template = copy.deepcopy(dep["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(dep["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{name}-{pod_hash}",
                "namespace": dep["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(dep["spec"].get("replicas", 1)),
                    "deployment.kubernetes.io/max-replicas": str(dep["spec"].get("replicas", 1)),
                },
                "ownerReferences": [_owner_ref(dep)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        created = self.store.create(self._rtype(REPLICASETS), dep["metadata"]["namespace"], rs)
        self._event(
            dep,
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} to {dep['spec'].get('replicas', 1)}",
        )
        return created

    def _set_revision(self, rs: Obj, revision: int) -> Obj:
        def bump(obj: Obj) -> Obj:
            obj["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
            return obj

        return self.store.update(self._rtype(REPLICASETS), rs["metadata"]["namespace"], rs["metadata"]["name"], bump)

    def _scale_rs(self, rs: Obj, replicas: int) -> None:
        if int(rs["spec"].get("replicas", 0)) == replicas:
            return

        def scale(obj: Obj) -> Obj:
            obj["spec"]["replicas"] = replicas
            return obj

        self.store.update(self._rtype(REPLICASETS), rs["metadata"]["namespace"], rs["metadata"]["name"], scale)

    def _cleanup_history(self, dep: Obj, old: list[Obj]) -> None:
        limit = int(dep["spec"].get("revisionHistoryLimit", 10))
        idle = [rs for rs in old if int(rs["spec"].get("replicas", 0)) == 0]
        for rs in idle[limit:]:
            try:
                self.store.delete(self._rtype(REPLICASETS), rs["metadata"]["namespace"], rs["metadata"]["name"])
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _write_deployment_status(
        self,
        dep: Obj,
        new_rs: Obj | None,
        pods_by_rs: dict[str, list[Obj]],
        *,
        created: bool,
    ) -> None:
        spec, meta = dep["spec"], dep["metadata"]
        desired = int(spec.get("replicas", 1))
        all_pods = [p for pods in pods_by_rs.values() for p in pods]
        new_pods = pods_by_rs.get(new_rs["metadata"]["uid"], []) if new_rs is not None else []
        ready = sum(1 for p in all_pods if pod_is_ready(p))
        updated = len(new_pods)
        new_ready = sum(1 for p in new_pods if pod_is_ready(p))
        old_status = dep.get("status") or {}
        conditions: list[dict[str, Any]] = old_status.get("conditions") or []
        max_unavailable = _max_unavailable(spec, desired)
        available_ok = ready >= desired - max_unavailable
        available = _condition(
            conditions,
            "Available",
            "True" if available_ok else "False",
            "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability." if available_ok else "Deployment does not have minimum availability.",
            touch=False,
        )
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        complete = new_rs is not None and updated == desired and new_ready == desired and len(all_pods) == desired
        previous = next((c for c in conditions if c.get("type") == "Progressing"), None)
        counts = (len(all_pods), updated, ready)
        old_counts = (
            old_status.get("replicas", 0),
            old_status.get("updatedReplicas", 0),
            old_status.get("readyReplicas", 0),
        )
        progressed = counts != old_counts or created or previous is None
        deadline = spec.get("progressDeadlineSeconds")
        if spec.get("paused"):
            progressing = _condition(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete:
            progressing = _condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                touch=bool(previous is None or previous.get("reason") != "NewReplicaSetAvailable"),
            )
        elif previous is not None and previous.get("reason") == "ProgressDeadlineExceeded" and not progressed:
            progressing = previous
        elif (
            not progressed
            and deadline is not None
            and previous is not None
            and _age(previous.get("lastUpdateTime")) >= float(deadline)
        ):
            progressing = _condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif created:
            progressing = _condition(
                conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"'
            )
        elif progressed:
            progressing = _condition(
                conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            )
        else:
            progressing = previous or _condition(
                conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            )
        if not complete and deadline is not None and not spec.get("paused"):
            self._recheck_after(float(deadline) + 0.05, ("deployment", meta["namespace"], meta["name"]))
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(all_pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, desired - ready),
            "conditions": [available, progressing],
        }
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]

        def write(obj: Obj) -> Obj:
            obj["status"] = status
            return obj

        self.store.update(self._rtype(DEPLOYMENTS), meta["namespace"], meta["name"], write, subresource="status")

    def _recheck_after(self, delay: float, key: tuple[str, str, str]) -> None:
        """One pending progress-deadline re-check per Deployment (the earliest), however often it is reconciled."""
        due = self.loop.time() + delay
        pending = self._rechecks.get(key)
        if pending is not None and pending <= due:
            return

        def fire() -> None:
            if self._rechecks.get(key) == due:
                del self._rechecks[key]
            self.enqueue(key)

        self._rechecks[key] = due
        self.loop.call_at(due, fire)

    def _event(self, involved: Obj, reason: str, message: str) -> None:
        meta = involved["metadata"]
        now = clock.rfc3339()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": "deployment-controller"},
            "reportingComponent": "deployment-controller",
        }
        self.store.create(self._rtype(("", "v1", "events")), meta["namespace"], event)


def _max_unavailable(spec: Obj, desired: int) -> int:
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(desired * int(value[:-1]) / 100)
    return int(value)


def _age(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return (clock.now() - parse_timestamp(timestamp)).total_seconds()


def _pod_ip(uid: str) -> str:
    """A stable fake pod IP derived from the pod's uid."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{digest[0] % 250}.{digest[1] % 250 + 2}"
