"""Simulated kube-controller-manager: Deployments → ReplicaSets → Pods, with the work queue the kubelet shares.

Faithful where the operator looks: Deployments get defaulted and validated like the API server does;
each distinct pod template gets a ReplicaSet named `<deployment>-<pod-template-hash>` with a
`deployment.kubernetes.io/revision` annotation (reusing an old ReplicaSet on rollback, as `kubectl
rollout undo` relies on); a RollingUpdate honours maxSurge/maxUnavailable (the deployment controller's
arithmetic: scale the new ReplicaSet up within the surge, old ones down within the availability budget,
unhealthy old pods first) and a Recreate waits for every old pod to be gone; availability honours
minReadySeconds on the emulated clock; Terminating and Failed (evicted) pods are not counted and get
replaced. Status moves observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas and
the Available/Progressing conditions (NewReplicaSetAvailable, ProgressDeadlineExceeded). What happens to a
pod on its node is the kubelet's (`kubelet.py`), not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.errors import ApiError, invalid
from tradesense_sandbox.kubeapi.kubelet import (
    Kubelet,
    available_in,
    pod_is_active,
    pod_is_available,
    pod_is_ready,
)
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.kubeapi.selectors import (
    labels_match,
    parse_label_selector,
    selector_from_label_selector,
)
from tradesense_sandbox.kubeapi.snapshot import clone
from tradesense_sandbox.kubeapi.store import Obj, Store, parse_timestamp

logger = logging.getLogger(__name__)

DEPLOYMENTS = ("apps", "v1", "deployments")
REPLICASETS = ("apps", "v1", "replicasets")
PODS = ("", "v1", "pods")
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    """A stable pod-template-hash over the template without its own hash label."""
    stripped = clone(template)
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


class WorkloadController:
    """Runs on the API server's loop; reacts to store changes through a de-duplicating work queue."""

    def __init__(
        self,
        store: Store,
        loop: asyncio.AbstractEventLoop,
        *,
        pod_ready_delay: float | None,
        pod_stop_delay: float = 0.0,
    ) -> None:
        self.store = store
        self.loop = loop
        self.kubelet = Kubelet(store, loop, self.enqueue, pod_ready_delay=pod_ready_delay, pod_stop_delay=pod_stop_delay)
        self._dirty: dict[tuple[str, str, str], None] = {}
        self._wake = asyncio.Event()
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
            elif event_type == "MODIFIED" and meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds"):
                keys.append(("terminate", namespace, meta["name"]))
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
                await asyncio.sleep(0)  # requests waiting on the server loop go first: the real controller-manager
                #                         is another process, its lag is no reason for the API server to stall
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
            self.kubelet.bind(namespace, name)
        elif what == "pod-ready":
            self.kubelet.start(namespace, name)
        elif what == "terminate":
            self.kubelet.terminate(namespace, name)
        elif what == "stopped":
            self.kubelet.stopped(namespace, name)

    def clock_moved(self) -> None:
        """After the emulated clock jumped: re-check grace periods, minReadySeconds and progress deadlines."""
        for pod in self.kubelet.terminating():
            self.enqueue(("terminate", pod["metadata"]["namespace"], pod["metadata"]["name"]))
        for kind, key in (("deployment", DEPLOYMENTS), ("replicaset", REPLICASETS)):
            objects, _ = self.store.list(self._rtype(key), None)
            for obj in objects:
                self.enqueue((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _rtype(self, key: tuple[str, str, str]) -> ResourceType:
        return self.store.resource_type(*key)

    def _live(self, rtype: ResourceType, namespace: str, name: str) -> Obj | None:
        """The object to reconcile; None when it is gone or being deleted (its controller then does nothing).
        The stored snapshot itself, like every read of this controller: it only reads them (changes go through
        `store.update`), and copying each read was most of its cost."""
        try:
            obj = self.store.get(rtype, namespace, name, detached=False)
        except ApiError:
            return None
        return None if obj["metadata"].get("deletionTimestamp") else obj

    # ----------------------------------------------------------------- replicasets

    def _pods_of(self, owner_uid: str, *, active: bool = True) -> list[Obj]:
        """The pods a ReplicaSet controls: active ones (not Terminating, not Failed/Succeeded), or all."""
        pods = self.store.owned_by(self._rtype(PODS), owner_uid, detached=False)
        return [p for p in pods if _owned_by(p, owner_uid) and (pod_is_active(p) or not active)]

    def _reconcile_replicaset(self, namespace: str, name: str) -> None:
        rs_type = self._rtype(REPLICASETS)
        rs = self._live(rs_type, namespace, name)
        if rs is None:
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
                "spec": clone(template.get("spec") or {}),
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
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        available = self._available(pods, min_ready, ("replicaset", namespace, name))
        labels = (template.get("metadata") or {}).get("labels") or {}
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": sum(
                1 for p in pods if all(p["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            ),
            "readyReplicas": ready,
            "availableReplicas": available,
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
        dep = self._live(dep_type, namespace, name)
        if dep is None:
            return
        uid = dep["metadata"]["uid"]
        spec = dep["spec"]
        replicas = int(spec.get("replicas", 1))
        template = spec["template"]
        wanted_hash = template_hash(template)
        owned = [rs for rs in self.store.owned_by(rs_type, uid, detached=False) if _owned_by(rs, uid)]
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
        min_ready = int(spec.get("minReadySeconds") or 0)
        if new_rs is not None and not spec.get("paused"):
            old = [rs for rs in owned if rs["metadata"]["uid"] != new_uid]
            if (spec.get("strategy") or {}).get("type") == "Recreate":
                sizes = self._recreate(new_rs, old, replicas)
            else:
                sizes = self._roll(spec, new_rs, old, pods_by_rs)
            for rs in owned:
                self._scale_rs(rs, sizes[rs["metadata"]["uid"]], min_ready)
            by_revision = sorted(
                old, key=lambda rs: int(rs["metadata"].get("annotations", {}).get(REVISION, "0")), reverse=True
            )
            self._cleanup_history(dep, [rs for rs in by_revision if sizes[rs["metadata"]["uid"]] == 0])
        self._write_deployment_status(dep, new_rs, pods_by_rs, created=created)

    @staticmethod
    def _roll(spec: Obj, new_rs: Obj, old: list[Obj], pods_by_rs: dict[str, list[Obj]]) -> dict[str, int]:
        """RollingUpdate: the deployment controller's reconcileNewReplicaSet + reconcileOldReplicaSets arithmetic."""
        replicas = int(spec.get("replicas", 1))
        min_ready = int(spec.get("minReadySeconds") or 0)
        new_uid = new_rs["metadata"]["uid"]
        sizes = {rs["metadata"]["uid"]: int(rs["spec"].get("replicas", 0)) for rs in [new_rs, *old]}
        available = {
            uid: sum(1 for p in pods_by_rs.get(uid, []) if pod_is_available(p, min_ready)) for uid in sizes
        }
        if not any(sizes[rs["metadata"]["uid"]] for rs in old):
            sizes[new_uid] = replicas  # not a rollout: a plain scaling event
            return sizes
        surge, unavailable = _rolling_limits(spec, replicas)
        if sizes[new_uid] > replicas:
            sizes[new_uid] = replicas
        elif sizes[new_uid] < replicas:
            room = replicas + surge - sum(sizes.values())
            if room > 0:
                sizes[new_uid] = min(replicas, sizes[new_uid] + room)
        min_available = replicas - unavailable
        new_unavailable = max(0, sizes[new_uid] - available[new_uid])
        budget = sum(sizes.values()) - min_available - new_unavailable
        if budget <= 0:
            return sizes
        oldest_first = sorted(old, key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        for rs in oldest_first:  # unhealthy old replicas go first: they hold no availability
            uid = rs["metadata"]["uid"]
            cut = min(budget, max(0, sizes[uid] - available[uid]))
            sizes[uid] -= cut
            budget -= cut
        spare = sum(available.values()) - min_available
        for rs in oldest_first:
            uid = rs["metadata"]["uid"]
            if spare <= 0:
                break
            cut = min(sizes[uid], spare)
            sizes[uid] -= cut
            spare -= cut
        return sizes

    def _recreate(self, new_rs: Obj, old: list[Obj], replicas: int) -> dict[str, int]:
        """Recreate: every old ReplicaSet to 0, and the new one up only once no old pod is left (even Terminating)."""
        sizes = {rs["metadata"]["uid"]: 0 for rs in old}
        sizes[new_rs["metadata"]["uid"]] = int(new_rs["spec"].get("replicas", 0))
        if not any(self._pods_of(rs["metadata"]["uid"], active=False) for rs in old):
            sizes[new_rs["metadata"]["uid"]] = replicas
        return sizes

    def _available(self, pods: list[Obj], min_ready: int, key: tuple[str, str, str]) -> int:
        """Pods available now; a re-check is scheduled for those Ready but still inside minReadySeconds."""
        waits = [w for p in pods if (w := available_in(p, min_ready)) is not None]
        pending = [w for w in waits if w > 0]
        if pending:
            self._recheck_after(min(pending) + 0.05, key)
        return sum(1 for w in waits if w == 0)

    def _create_replicaset(self, dep: Obj, pod_hash: str, revision: int) -> Obj:
        name = dep["metadata"]["name"]
        template = clone(dep["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = clone(dep["spec"]["selector"])
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

    def _scale_rs(self, rs: Obj, replicas: int, min_ready: int) -> None:
        spec = rs["spec"]
        if int(spec.get("replicas", 0)) == replicas and int(spec.get("minReadySeconds") or 0) == min_ready:
            return

        def scale(obj: Obj) -> Obj:
            obj["spec"]["replicas"] = replicas
            if min_ready:
                obj["spec"]["minReadySeconds"] = min_ready
            else:
                obj["spec"].pop("minReadySeconds", None)
            return obj

        self.store.update(self._rtype(REPLICASETS), rs["metadata"]["namespace"], rs["metadata"]["name"], scale)

    def _cleanup_history(self, dep: Obj, idle: list[Obj]) -> None:
        """Delete idle old ReplicaSets (newest revision first in `idle`) beyond revisionHistoryLimit."""
        limit = int(dep["spec"].get("revisionHistoryLimit", 10))
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
        min_ready = int(spec.get("minReadySeconds") or 0)
        available_count = self._available(all_pods, min_ready, ("deployment", meta["namespace"], meta["name"]))
        updated = len(new_pods)
        new_available = sum(1 for p in new_pods if pod_is_available(p, min_ready))
        old_status = dep.get("status") or {}
        conditions: list[dict[str, Any]] = old_status.get("conditions") or []
        _, max_unavailable = _rolling_limits(spec, desired)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            max_unavailable = desired
        available_ok = available_count >= desired - max_unavailable
        available = _condition(
            conditions,
            "Available",
            "True" if available_ok else "False",
            "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability." if available_ok else "Deployment does not have minimum availability.",
            touch=False,
        )
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else ""
        complete = new_rs is not None and updated == desired and new_available == desired and len(all_pods) == desired
        previous = next((c for c in conditions if c.get("type") == "Progressing"), None)
        counts = (len(all_pods), updated, ready, available_count)
        old_counts = (
            old_status.get("replicas", 0),
            old_status.get("updatedReplicas", 0),
            old_status.get("readyReplicas", 0),
            old_status.get("availableReplicas", 0),
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
            "availableReplicas": available_count,
            "unavailableReplicas": max(0, desired - available_count),
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


def _rolling_limits(spec: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against the replica count: surge rounds up, unavailable down; never both 0."""
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}

    def resolve(value: Any, round_up: bool) -> int:
        if isinstance(value, str) and value.endswith("%"):
            exact = desired * int(value[:-1]) / 100
            return math.ceil(exact) if round_up else math.floor(exact)
        return int(value)

    surge = resolve(rolling.get("maxSurge", "25%"), True)
    unavailable = min(resolve(rolling.get("maxUnavailable", "25%"), False), desired)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _age(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return (clock.now() - parse_timestamp(timestamp)).total_seconds()


