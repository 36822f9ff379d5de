"""HTTP routes of the emulated API server: discovery, CRUD, watch, subresources, pod logs.

Paths are parsed the way the API server does it (`/api/v1/...` for the core group,
`/apis/{group}/{version}/...` for the rest, `namespaces/{ns}/` before namespaced resources), so any
client built for Kubernetes — kopf, kubernetes_asyncio, kubectl — reaches the same handlers.

HTTP translation only; must not hold object state (store.py) or run controllers (workloads.py, kubelet.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from tradesense_sandbox.kubeapi import authn, managed_fields
from tradesense_sandbox.kubeapi.authn import Caller, Tokens
from tradesense_sandbox.kubeapi.errors import ApiError, bad_request, method_not_allowed, not_found
from tradesense_sandbox.kubeapi.faults import Faults, RequestStats, reason_for
from tradesense_sandbox.kubeapi.patching import APPLY_PATCH, apply_patch
from tradesense_sandbox.kubeapi.rbac import Authorizer
from tradesense_sandbox.kubeapi.rbac import Request as AccessRequest
from tradesense_sandbox.kubeapi.resources import ResourceType
from tradesense_sandbox.kubeapi.selectors import selector_from_label_selector
from tradesense_sandbox.kubeapi.store import Obj, Store
from tradesense_sandbox.kubeapi.watch import Watcher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SELF_SUBJECT_REVIEW = ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]
_SELF_SUBJECT_ACCESS_REVIEW = ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]
SERVER_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-tradesense-emulated", "platform": "linux/amd64"}


@dataclass
class ServerState:
    """What the routes need besides the store: credentials, faults, accounting, pod logs."""

    store: Store
    tokens: Tokens
    faults: Faults = field(default_factory=Faults)
    stats: RequestStats = field(default_factory=RequestStats)
    pod_logs: dict[tuple[str, str], str] = field(default_factory=dict)
    pod_logs_lock: threading.Lock = field(default_factory=threading.Lock)
    bookmark_interval: float = 1.0
    shutting_down: bool = False
    rbac: bool = False  # when on, ServiceAccount tokens are authorized by the Roles/bindings in the store


@dataclass(frozen=True)
class Target:
    """A parsed resource URL."""

    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json", headers=headers)


def _error(error: ApiError) -> web.Response:
    return _json(error.status(), error.code, error.headers)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class Routes:
    """Request dispatch over one `ServerState`."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.store = state.store

    # ------------------------------------------------------------------ app & middleware

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in ("/healthz", "/readyz", "/livez", "/version") and not self._authorized(request):
            return _error(ApiError(401, "Unauthorized", "Unauthorized"))
        rule = self.state.faults.take(request.method, request.path, request.path_qs)
        if rule is not None:
            if rule.latency > 0:
                await asyncio.sleep(rule.latency)
            if rule.status is not None:
                headers = {"Retry-After": str(int(rule.retry_after))} if rule.retry_after is not None else None
                return _error(ApiError(rule.status, reason_for(rule.status), rule.message, headers=headers))
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc)

    def _authorized(self, request: web.Request) -> bool:
        return self._caller(request) is not None

    def _caller(self, request: web.Request) -> Caller | None:
        return self.state.tokens.caller(request.headers.get("Authorization", ""))

    def _authorize(self, request: web.Request, target: Target) -> None:
        """RBAC mode: a ServiceAccount's request is checked before anything else (403 before 404); what is let
        through is recorded per token (with RBAC off too, so a run can be audited without being enforced)."""
        caller = self._caller(request)
        user = caller.service_account if caller else None
        if caller is None or user is None:
            return
        method = request.method
        if method == "GET":
            verb = "get" if target.name else ("watch" if _truthy(request.query.get("watch")) else "list")
        elif method == "DELETE":
            verb = "delete" if target.name else "deletecollection"
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
        namespace = target.namespace if target.rtype.namespaced else None
        asked = AccessRequest(verb, target.rtype.group, target.rtype.plural, target.subresource, namespace, target.name)
        if self.state.rbac:
            Authorizer(self.store).check(user, asked)
        self.state.tokens.record(caller.token, asked)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if request.path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if parts == ["version"]:
            return _json(SERVER_VERSION)
        if parts == ["api"]:
            self.state.stats.record("get", "discovery")
            return _json(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
                }
            )
        if parts == ["apis"]:
            self.state.stats.record("get", "discovery")
            return _json(self._group_list())
        if parts[:2] == ["api", "v1"] and len(parts) == 2:
            self.state.stats.record("get", "discovery")
            return _json(self._resource_list("", "v1"))
        if parts and parts[0] == "apis" and len(parts) == 2:
            group = self._group_entry(parts[1])
            if group is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json({"kind": "APIGroup", "apiVersion": "v1", **group})
        if parts and parts[0] == "apis" and len(parts) == 3:
            self.state.stats.record("get", "discovery")
            listing = self._resource_list(parts[1], parts[2])
            if not listing["resources"]:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(listing)
        if request.method == "POST" and parts in (_SELF_SUBJECT_REVIEW, _SELF_SUBJECT_ACCESS_REVIEW):
            return await self._review(request, parts)
        if parts[:1] == ["api"] and len(parts) > 2 and parts[1] == "v1":
            target = self._target("", "v1", parts[2:])
        elif parts[:1] == ["apis"] and len(parts) > 3:
            target = self._target(parts[1], parts[2], parts[3:])
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._authorize(request, target)
        return await self._serve(request, target)

    async def _review(self, request: web.Request, parts: list[str]) -> web.Response:
        """SelfSubjectReview and SelfSubjectAccessReview: any authenticated caller may ask about itself."""
        caller = self._caller(request)
        assert caller is not None  # the middleware answered 401 otherwise
        self.state.stats.record("create", parts[-1])
        if parts == _SELF_SUBJECT_REVIEW:
            return _json(authn.self_subject_review(caller), 201)
        body = await self._body(request)
        return _json(authn.self_subject_access_review(Authorizer(self.store), caller, self.state.rbac, body), 201)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = self._maybe_type(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = self.store.resource_type(group, version, rest[0])
        if rtype.namespaced and namespace is None and len(rest) > 1:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(rtype, namespace, name, subresource)

    def _maybe_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        try:
            return self.store.resource_type(group, version, plural)
        except ApiError:
            return None

    # ------------------------------------------------------------------ discovery

    def _group_entry(self, group: str) -> dict[str, Any] | None:
        versions = sorted({t.version for t in self.store.resource_types() if t.group == group}, reverse=True)
        if not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self) -> dict[str, Any]:
        groups = sorted({t.group for t in self.store.resource_types() if t.group})
        entries = [entry for entry in (self._group_entry(g) for g in groups) if entry is not None]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": entries}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = [
            entry
            for rtype in sorted(self.store.resource_types(), key=lambda t: t.plural)
            if rtype.group == group and rtype.version == version
            for entry in rtype.discovery()
        ]
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    # ------------------------------------------------------------------ resource requests

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        rtype, method, query = target.rtype, request.method, request.query
        resource_label = rtype.plural + (f"/{target.subresource}" if target.subresource else "")
        if target.name is None:
            if method == "GET":
                if _truthy(query.get("watch")):
                    self.state.stats.record("watch", resource_label)
                    return await self._watch(request, target)
                self.state.stats.record("list", resource_label)
                return _json(self._list(target, query))
            if method == "POST":
                self.state.stats.record("create", resource_label)
                body = await self._body(request)
                with self._writer(request, body):
                    created = self.store.create(rtype, target.namespace, body, detached=False)
                return _json(created, 201)
            if method == "DELETE":
                self.state.stats.record("deletecollection", resource_label)
                items, _ = self.store.list(
                    rtype,
                    target.namespace,
                    label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"),
                )
                deleted = []
                for item in items:
                    meta = item["metadata"]
                    try:
                        deleted.append(self.store.delete(rtype, meta.get("namespace"), meta["name"]))
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
                return _json(
                    {
                        "kind": f"{rtype.kind}List",
                        "apiVersion": rtype.api_version,
                        "metadata": {"resourceVersion": str(self.store.resource_version)},
                        "items": deleted,
                    }
                )
            raise method_not_allowed(f"{method} is not supported on a collection")
        name = target.name
        if target.subresource == "token" and rtype.key == ("", "v1", "serviceaccounts") and method == "POST":
            return await self._token_request(request, target, name)
        if target.subresource == "log":
            self.state.stats.record("get", resource_label)
            return self._log(target, query)
        if target.subresource == "scale":
            if rtype.scale is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return await self._scale(request, target)
        if target.subresource not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource == "status" and not rtype.status_subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            self.state.stats.record("get", resource_label)
            return _json(self.store.get(rtype, target.namespace, name, detached=False))
        if method == "PUT":
            self.state.stats.record("update", resource_label)
            body = await self._body(request)
            with self._writer(request, body):
                return _json(self.store.replace(rtype, target.namespace, name, body, subresource=target.subresource,
                                                detached=False))
        if method == "PATCH":
            self.state.stats.record("patch", resource_label)
            content_type = request.headers.get("Content-Type", "application/json")
            if content_type.split(";")[0].strip().lower() == APPLY_PATCH:
                return await self._apply(request, target, name)
            body = await self._body(request)
            with self._writer(request, body):
                return _json(
                    self.store.patch(rtype, target.namespace, name, content_type, body, subresource=target.subresource,
                                     detached=False)
                )
        if method == "DELETE" and target.subresource is None:
            self.state.stats.record("delete", resource_label)
            return await self._delete(request, target, name)
        raise method_not_allowed(f"{method} is not supported here")

    async def _token_request(self, request: web.Request, target: Target, name: str) -> web.Response:
        """TokenRequest: a token for an existing ServiceAccount (`kubectl create token`)."""
        self.state.stats.record("create", "serviceaccounts/token")
        service_account = _find(self.store, target.rtype, target.namespace, name)
        body = await self._body(request, optional=True)
        return _json(authn.token_request(self.state.tokens, service_account, target.namespace or "", name, body), 201)

    async def _delete(self, request: web.Request, target: Target, name: str) -> web.Response:
        """DELETE with DeleteOptions from the body or the query (propagation, preconditions, grace period)."""
        options = await self._body(request, optional=True) or {}
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        preconditions = options.get("preconditions") or {}
        grace = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        gone = self.store.delete(
            target.rtype,
            target.namespace,
            name,
            propagation_policy=policy,
            precondition_uid=preconditions.get("uid"),
            precondition_rv=preconditions.get("resourceVersion"),
            grace_period_seconds=_grace_seconds(grace),
        )
        return _json(gone)

    async def _body(self, request: web.Request, *, optional: bool = False) -> Any:
        raw = await request.read()
        if not raw:
            if optional:
                return None
            raise bad_request("the request body is empty")
        try:
            return json.loads(raw)
        except ValueError as exc:
            if optional:
                return None
            raise bad_request(f"the request body is not valid JSON: {exc}") from exc

    async def _apply(self, request: web.Request, target: Target, name: str) -> web.Response:
        """Server-side apply: create the object when absent, otherwise merge the applied configuration."""
        if not request.query.get("fieldManager"):
            raise bad_request("PATCH with apply requires fieldManager: the fieldManager query parameter is required")
        raw = await request.read()
        try:
            body = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(body, dict):
            raise bad_request("the applied configuration must be an object")
        with managed_fields.writing_as(request.query["fieldManager"], "Apply", body):
            try:
                return _json(
                    self.store.patch(
                        target.rtype, target.namespace, name, APPLY_PATCH, body, subresource=target.subresource
                    )
                )
            except ApiError as exc:
                if exc.code != 404 or target.subresource is not None:
                    raise
            body.setdefault("metadata", {})["name"] = name
            return _json(self.store.create(target.rtype, target.namespace, body), 201)

    @staticmethod
    def _writer(
        request: web.Request, body: Any, subresource: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """The field manager of a write: `fieldManager`, else the User-Agent's product (kube-apiserver's default)."""
        manager = request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
        return managed_fields.writing_as(manager or "unknown", "Update", body, subresource)

    def _list(self, target: Target, query: Any) -> dict[str, Any]:
        rtype = target.rtype
        items, rv = self.store.list(
            rtype, target.namespace, label_selector=query.get("labelSelector"), field_selector=query.get("fieldSelector"),
            detached=False,
        )
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(query.get("limit") or 0)
        start = 0
        token = query.get("continue")
        if token:
            try:
                start = int(token)
            except ValueError as exc:
                raise bad_request(f"invalid continue token {token!r}") from exc
        if limit > 0:
            page = items[start : start + limit]
            if start + limit < len(items):
                meta["continue"] = str(start + limit)
                meta["remainingItemCount"] = len(items) - start - limit
            items = page
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": meta, "items": items}

    # ------------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        loop = asyncio.get_running_loop()
        watcher = Watcher(loop, allow_bookmarks=_truthy(query.get("allowWatchBookmarks")))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        error: ApiError | None = None
        try:
            self.store.watch(
                target.rtype,
                target.namespace,
                watcher,
                since=query.get("resourceVersion"),
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
                send_initial_events=_truthy(query.get("sendInitialEvents")),
            )
        except ApiError as exc:
            if exc.code != 410:
                raise
            error = exc
        await response.prepare(request)
        try:
            if error is not None:
                await self._write(response, {"type": "ERROR", "object": error.status()})
                return response
            await self._pump(response, watcher, target.rtype, query.get("timeoutSeconds"))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(target.rtype, watcher)
        return response

    async def _pump(self, response: web.StreamResponse, watcher: Watcher, rtype: ResourceType, timeout: str | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        interval = self.state.bookmark_interval
        next_bookmark = loop.time() + interval
        while True:
            pending = watcher.drain()
            if pending:  # one write for all that is queued: a burst of events costs one send, not one each
                await response.write(b"".join(json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in pending))
            if watcher.closed or self.state.shutting_down:
                if watcher.expired:
                    gone = ApiError(410, "Expired", "too old resource version: the watch history was compacted")
                    await self._write(response, {"type": "ERROR", "object": gone.status()})
                return
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if watcher.allow_bookmarks and now >= next_bookmark:
                bookmark = self._bookmark(watcher, rtype)
                if bookmark is not None:
                    await self._write(response, bookmark)
                next_bookmark = now + interval
            wait = next_bookmark - now if watcher.allow_bookmarks else 3600.0
            if deadline is not None:
                wait = min(wait, deadline - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.wakeup.wait(), timeout=max(wait, 0.001))

    def _bookmark(self, watcher: Watcher, rtype: ResourceType) -> dict[str, Any] | None:
        """A BOOKMARK at the current rv, only when every earlier event of this watch has been written."""
        with self.store.lock:
            if not watcher.idle():
                return None
            rv = self.store.resource_version
        return {
            "type": "BOOKMARK",
            "object": {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": {"resourceVersion": str(rv)}},
        }

    @staticmethod
    async def _write(response: web.StreamResponse, event: dict[str, Any]) -> None:
        await response.write(json.dumps(event).encode() + b"\n")

    # ------------------------------------------------------------------ subresources

    def _log(self, target: Target, query: Any) -> web.Response:
        if target.name is None or target.namespace is None:
            raise bad_request("a pod name and namespace are required")
        pod = self.store.get(target.rtype, target.namespace, target.name)  # 404 for unknown pods
        _require_started(pod, query.get("container"))
        with self.state.pod_logs_lock:
            text = self.state.pod_logs.get((target.namespace, target.name), "")
        tail = query.get("tailLines")
        if tail:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return web.Response(text=text, content_type="text/plain")

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        rtype, name, method = target.rtype, target.name or "", request.method
        resource_label = f"{rtype.plural}/scale"
        if method == "GET":
            self.state.stats.record("get", resource_label)
            return _json(scale_of(rtype, self.store.get(rtype, target.namespace, name, detached=False)))
        if method not in ("PUT", "PATCH"):
            raise method_not_allowed(f"{method} is not supported on the scale subresource")
        self.state.stats.record("update" if method == "PUT" else "patch", resource_label)
        body = await self._body(request)
        current = scale_of(rtype, self.store.get(rtype, target.namespace, name, detached=False))
        if method == "PUT":
            desired = body
        else:
            desired = apply_patch(current, request.headers.get("Content-Type", ""), body, strategic_allowed=True)
        replicas = (desired.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                f"{replicas!r}: must be greater than or equal to 0",
            )
        # A PUT names the version it replaces; a PATCH is guarded only when it sets one (else the patched Scale
        # carries the current version, read above without an await in between, so the guard always holds).
        precondition = (desired.get("metadata") or {}).get("resourceVersion")
        scale = rtype.scale
        assert scale is not None  # guarded by the caller

        def set_replicas(obj: Obj) -> Obj:
            _set_path(obj, scale.spec_replicas_path, replicas)
            return obj

        with self._writer(request, body, "scale"):
            updated = self.store.update(
                rtype, target.namespace, name, set_replicas, precondition_rv=precondition or None, detached=False
            )
        return _json(scale_of(rtype, updated))


def _find(store: Store, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
    try:
        return store.get(rtype, namespace, name)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


def _get_path(obj: Obj, path: str) -> Any:
    current: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    current = obj
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


def scale_of(rtype: ResourceType, obj: Obj) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of an object, per the kind's scale paths."""
    scale = rtype.scale
    if scale is None:
        raise not_found(rtype.plural, rtype.group, obj["metadata"]["name"])
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": _get_path(obj, scale.status_replicas_path) or 0}
    if scale.label_selector_path:
        selector = _get_path(obj, scale.label_selector_path)
        if selector is None and rtype.group == "apps":
            selector = selector_from_label_selector((obj.get("spec") or {}).get("selector"))
        if selector:
            status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: copy.deepcopy(meta[k])
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": _get_path(obj, scale.spec_replicas_path) or 0},
        "status": status,
    }


def _grace_seconds(raw: Any) -> int | None:
    """DeleteOptions.gracePeriodSeconds from the query or the body; negative values mean "now" like 0."""
    if raw is None or raw == "":
        return None
    try:
        return max(0, int(raw))
    except (TypeError, ValueError) as exc:
        raise bad_request(f"gracePeriodSeconds: invalid value {raw!r}: must be an integer") from exc


def _require_started(pod: dict[str, Any], container: str | None) -> None:
    """A container that never started has no log: 400, worded like the kubelet's answer."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    chosen = next((c for c in statuses if c.get("name") == container), statuses[0] if statuses else None)
    if chosen is None or chosen.get("lastState", {}).get("terminated"):
        return
    waiting = (chosen.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull"):
        why = "trying and failing to pull image"
    elif waiting.get("reason") in ("ContainerCreating", "CreateContainerConfigError"):
        why = str(waiting.get("reason"))
    else:
        return
    raise bad_request(
        f'container "{chosen.get("name")}" in pod "{pod["metadata"]["name"]}" is waiting to start: {why}'
    )
