"""`EmulatedCluster`: the emulated API server in its own thread and loop, plus direct test access.

Tests and `make demo` start one, point kopf / kubernetes_asyncio / kubectl at `cluster.url` (or the
kubeconfig from `write_kubeconfig`), and use the thread-safe methods here to arrange and inspect
state, steer the simulated kubelet (pod readiness, logs) and inject faults.

A facade: must not hold API semantics of its own (the store, the routes and the controllers do).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tradesense_sandbox.kubeapi import clock, crds
from tradesense_sandbox.kubeapi.authn import Tokens
from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.kubeapi.faults import FaultRule, Faults, RequestStats
from tradesense_sandbox.kubeapi.kubelet import Kubelet, ReadinessRule, TerminationRule
from tradesense_sandbox.kubeapi.rbac import Request, User
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.kubeapi.selectors import parse_label_selector
from tradesense_sandbox.kubeapi.server import Routes, ServerState
from tradesense_sandbox.kubeapi.store import Obj, Store, parse_timestamp
from tradesense_sandbox.kubeapi.workloads import WorkloadController
from tradesense_sandbox.servers.process import free_port


def _event_age(event: Obj) -> float:
    """Seconds since an Event was last written (its newest timestamp; the API server's TTL restarts on writes)."""
    stamps = [
        event.get("lastTimestamp"),
        event.get("eventTime"),
        (event.get("series") or {}).get("lastObservedTime"),
        event["metadata"].get("creationTimestamp"),
    ]
    newest = max(parse_timestamp(str(s)) for s in stamps if s)
    return (clock.now() - newest).total_seconds()


class EmulatedCluster:
    """A Kubernetes API server on 127.0.0.1 with a simulated workload controller and kubelet."""

    def __init__(
        self,
        *,
        pod_ready_delay: float | None = 0.2,
        pod_stop_delay: float = 0.0,
        history_size: int = 5000,
        bookmark_interval: float = 1.0,
        port: int | None = None,
        event_ttl: float = 3600.0,
    ) -> None:
        self.store = Store(history_size=history_size)
        self.event_ttl = event_ttl  # like kube-apiserver's --event-ttl flag: Events vanish this long after their last write
        crds.install(self.store)
        self.store.seed()
        self.token = secrets.token_urlsafe(24)
        self.state = ServerState(self.store, Tokens(self.token), bookmark_interval=bookmark_interval)
        self._pod_ready_delay = pod_ready_delay
        self._pod_stop_delay = pod_stop_delay
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._controller: WorkloadController | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EmulatedCluster:
        if self._thread is not None:
            raise RuntimeError("the emulated cluster is already started")
        self._thread = threading.Thread(target=self._serve, name="emulated-kube-api", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._startup_error is not None:
            raise RuntimeError("the emulated API server failed to start") from self._startup_error
        if not self._ready.is_set():
            raise RuntimeError("the emulated API server did not start within 30 s")
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_async())
        except BaseException as exc:  # noqa: BLE001  # handed to the starting thread, which raises it
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._stop_async())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_async(self) -> None:
        loop = asyncio.get_running_loop()
        self._controller = WorkloadController(
            self.store, loop, pod_ready_delay=self._pod_ready_delay, pod_stop_delay=self._pod_stop_delay
        )
        self._controller.start()
        self._runner = web.AppRunner(Routes(self.state).app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        port = self._port or free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", port, shutdown_timeout=1.0)
        await site.start()
        self.url = f"http://127.0.0.1:{port}"

    async def _stop_async(self) -> None:
        self.state.shutting_down = True
        for watcher in self.store.watchers():
            watcher.close()
        if self._controller is not None:
            await self._controller.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> EmulatedCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def controller(self) -> WorkloadController:
        if self._controller is None:
            raise RuntimeError("the emulated cluster is not started")
        return self._controller

    # ------------------------------------------------------------------ client configuration

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "emulated", "user": {"token": self.token}}],
            "contexts": [
                {"name": "emulated", "context": {"cluster": "emulated", "user": "emulated", "namespace": namespace}}
            ],
            "current-context": "emulated",
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace)), encoding="utf-8")
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ direct object access

    def resource(self, api_version: str, kind: str) -> ResourceType:
        return self.store.resource_for_kind(api_version, kind)

    def create(self, obj: Obj, namespace: str | None = None) -> Obj:
        rtype = self.resource(obj["apiVersion"], obj["kind"])
        return self.store.create(rtype, namespace or obj.get("metadata", {}).get("namespace"), obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        return self.store.get(self.resource(api_version, kind), namespace, name)

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """Like `get`, but None when the object does not exist."""
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[Obj]:
        items, _ = self.store.list(
            self.resource(api_version, kind), namespace, label_selector=label_selector, field_selector=field_selector
        )
        return items

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        content_type: str = "application/merge-patch+json",
        subresource: str | None = None,
    ) -> Obj:
        return self.store.patch(
            self.resource(api_version, kind), namespace, name, content_type, patch, subresource=subresource
        )

    def replace(self, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj["metadata"]
        return self.store.replace(
            self.resource(obj["apiVersion"], obj["kind"]), meta.get("namespace"), meta["name"], obj, subresource=subresource
        )

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, propagation_policy: str | None = None
    ) -> Obj:
        return self.store.delete(self.resource(api_version, kind), namespace, name, propagation_policy=propagation_policy)

    def apply_manifests(self, documents: Iterable[Obj]) -> builtins.list[Obj]:
        """Create every document (skipping empties); handy for YAML fixtures and the demo."""
        return [self.create(doc) for doc in documents if doc]

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> Obj:
        return self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})

    def events(self, namespace: str, involved_name: str | None = None) -> builtins.list[Obj]:
        """core/v1 Events in a namespace, optionally only those about one object, oldest first."""
        selector = f"involvedObject.name={involved_name}" if involved_name else None
        events = self.list("v1", "Event", namespace, field_selector=selector)
        return sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    # ------------------------------------------------------------------ CRDs

    def install_crd(self, crd: Obj) -> Obj:
        return self.create(crd)

    def install_crds(self, directory: Path) -> builtins.list[Obj]:
        """Register every CustomResourceDefinition found in `directory/*.yaml`."""
        installed = []
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    installed.append(self.install_crd(doc))
        if not installed:
            raise FileNotFoundError(f"no CustomResourceDefinition in {directory}/*.yaml")
        return installed

    # ------------------------------------------------------------------ simulated kubelet

    @property
    def kubelet(self) -> Kubelet:
        return self.controller.kubelet

    @property
    def pod_ready_delay(self) -> float | None:
        return self.kubelet.pod_ready_delay

    @pod_ready_delay.setter
    def pod_ready_delay(self, value: float | None) -> None:
        self.kubelet.pod_ready_delay = value

    def set_pod_readiness(self, delay: float | None, *, namespace: str | None = None, label_selector: str = "") -> None:
        """Pods created from now on that match take `delay` s to become Ready (None: never). Later rules win."""
        self.kubelet.readiness_rules.append(ReadinessRule(namespace, parse_label_selector(label_selector), delay))

    def set_pod_waiting(self, reason: str, *, namespace: str | None = None, label_selector: str = "") -> None:
        """Pods created from now on that match never start: their containers wait with `reason`
        (ImagePullBackOff: phase Pending; CrashLoopBackOff: phase Running with restarts). Later rules win."""
        self.kubelet.readiness_rules.append(
            ReadinessRule(namespace, parse_label_selector(label_selector), None, waiting=reason)
        )

    def set_pod_termination(
        self, delay: float | None, *, namespace: str | None = None, label_selector: str = ""
    ) -> None:
        """Matching pods take `delay` s to stop once deleted; None: they ignore SIGTERM and stay Terminating
        until their grace period ends on the emulated clock (see `advance_clock`). Later rules win."""
        self.kubelet.termination_rules.append(TerminationRule(namespace, parse_label_selector(label_selector), delay))

    def set_pod_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Flip a running pod's readiness, as if its readiness probe started failing or recovered."""
        self._call_in_loop(lambda: self.kubelet.set_pod_ready(namespace, name, ready))

    def evict_pod(
        self, namespace: str, name: str, message: str = "The node was low on resource: memory."
    ) -> None:
        """Node-pressure eviction: the pod turns Failed/Evicted and stays listed; its ReplicaSet replaces it."""
        self._call_in_loop(lambda: self.kubelet.evict(namespace, name, message))

    def set_node_ready(self, node: str, ready: bool) -> None:
        """A node stops (or resumes) reporting: its pods turn unready and deleted ones stay Terminating."""
        self._call_in_loop(lambda: self.kubelet.set_node_ready(node, ready))

    def advance_clock(self, seconds: float) -> None:
        """Move the emulated clock forward (grace periods, minReadySeconds, progress deadlines, Event TTL)."""
        clock.advance(seconds)
        self.expire_events()
        self._call_in_loop(self.controller.clock_moved)

    def reset_clock(self) -> None:
        """Back to wall time after a test moved the clock (the clock is process-wide: see kubeapi/clock.py)."""
        clock.reset()

    def expire_events(self) -> int:
        """Delete the Events (core/v1 and events.k8s.io/v1) last written more than `event_ttl` ago."""
        expired = 0
        for api_version in ("v1", "events.k8s.io/v1"):
            rtype = self.resource(api_version, "Event")
            items, _ = self.store.list(rtype, None)
            for event in items:
                if _event_age(event) >= self.event_ttl:
                    with contextlib.suppress(ApiError):
                        self.store.delete(rtype, event["metadata"]["namespace"], event["metadata"]["name"])
                        expired += 1
        return expired

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        """The text `GET …/pods/{name}/log` returns for this pod."""
        with self.state.pod_logs_lock:
            self.state.pod_logs[(namespace, name)] = text

    def _call_in_loop(self, fn: Any) -> Any:
        if self._loop is None:
            raise RuntimeError("the emulated cluster is not started")

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    # ------------------------------------------------------------------ RBAC (optional)

    def enable_rbac(self, enabled: bool = True) -> None:
        """ServiceAccount tokens are authorized by the Roles/ClusterRoles and bindings in the store (the admin
        token of `kubeconfig()` keeps full access, like cluster-admin)."""
        self.state.rbac = enabled

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates as system:serviceaccount:<namespace>:<name> (no expiry; the API's
        TokenRequest, `POST …/serviceaccounts/<name>/token`, mints expiring ones)."""
        token, _ = self.state.tokens.issue(User(namespace, name))
        return token

    def authorized_requests(self, token: str) -> set[Request]:
        """What the ServiceAccount token was let do so far: (verb, group, resource, subresource, namespace, name)."""
        return self.state.tokens.used(token)

    def token_kubeconfig(self, token: str, namespace: str = "default") -> dict[str, Any]:
        """`kubeconfig()` with another bearer token (a ServiceAccount's)."""
        config = self.kubeconfig(namespace)
        config["users"] = [{"name": "emulated", "user": {"token": token}}]
        return config

    # ------------------------------------------------------------------ faults and accounting

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def stats(self) -> RequestStats:
        return self.state.stats

    def inject_fault(
        self,
        method: str | None = None,
        path: str = ".*",
        *,
        status: int | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        latency: float = 0.0,
    ) -> FaultRule:
        """The next `times` requests matching (method, path regex over path+query) fail/are delayed."""
        return self.state.faults.add(method, path, status=status, times=times, retry_after=retry_after, latency=latency)

    def drop_watches(self) -> int:
        """Close every open watch stream (clients reconnect from their last resourceVersion)."""
        watchers = self.store.watchers()
        for watcher in watchers:
            watcher.close()
        return len(watchers)

    def expire_watches(self) -> int:
        """Compact the history and end every watch with 410 Gone: clients must re-list."""
        self.store.compact()
        watchers = self.store.watchers()
        for watcher in watchers:
            watcher.close(expired=True)
        return len(watchers)
