"""The operator's Kubernetes client: kubernetes_asyncio for config/auth/TLS, plain dicts for bodies.

Why dicts and not the generated models: the operator patches small fragments (an annotation, one env
var, replicas) and reads a few fields; generated models add conversions and hide the wire format that
`kubectl` users reason about. Every HTTP or connection failure is translated once into
`tradesense_operator.clients.errors`; 429 answers are retried here, honouring Retry-After, because the
API server explicitly says the request was not processed. Every write carries `fieldManager=tradesense-operator`,
so managedFields (and GitOps tools that read them) tell the operator's changes from everyone else's.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from tradesense_operator.clients.errors import ClientError, Conflict, Forbidden, Invalid, NotFound, Timeout, Unavailable

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
PatchType = Literal["merge", "json", "strategic"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
EVENT_MESSAGE_LIMIT = 1024  # the API server truncates/rejects longer Event messages
EVENT_SERIES_REMEMBERED = 4096  # like client-go's event correlator cache
COMPONENT = "tradesense-operator"
FIELD_MANAGER = COMPONENT  # every write names it: `kubectl get -o yaml --show-managed-fields` shows who changed what
_WRITES = frozenset({"POST", "PUT", "PATCH"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "OPTIONS", "DELETE"})  # kubernetes_asyncio's rest layer sends a body


@dataclass(frozen=True)
class ResourceKind:
    """Where a resource lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """REST path, e.g. /apis/apps/v1/namespaces/ns/deployments/x/scale."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


NAMESPACES = ResourceKind("v1", "Namespace", "namespaces", namespaced=False)
NODES = ResourceKind("v1", "Node", "nodes", namespaced=False)
PODS = ResourceKind("v1", "Pod", "pods")
SECRETS = ResourceKind("v1", "Secret", "secrets")
CONFIGMAPS = ResourceKind("v1", "ConfigMap", "configmaps")
SERVICES = ResourceKind("v1", "Service", "services")
EVENTS = ResourceKind("v1", "Event", "events")
DEPLOYMENTS = ResourceKind("apps/v1", "Deployment", "deployments")
REPLICASETS = ResourceKind("apps/v1", "ReplicaSet", "replicasets")
LEASES = ResourceKind("coordination.k8s.io/v1", "Lease", "leases")
HPAS = ResourceKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
JOBS = ResourceKind("batch/v1", "Job", "jobs")
INCIDENTS = ResourceKind("ops.tradesense.io/v1alpha1", "TradeSenseIncident", "tradesenseincidents")
BACKUP_POLICIES = ResourceKind("ops.tradesense.io/v1alpha1", "BackupPolicy", "backuppolicies")
SCALING_POLICIES = ResourceKind("ops.tradesense.io/v1alpha1", "ScalingPolicy", "scalingpolicies")


@dataclass(frozen=True)
class ObjectRef:
    """Enough of an object to attach Events to it."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ObjectRef:
        """Build from an object body (or a kopf Body)."""
        meta = body.get("metadata", {})
        return cls(
            api_version=str(body.get("apiVersion", "")),
            kind=str(body.get("kind", "")),
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=meta.get("uid"),
        )


def _status_message(payload: bytes) -> str:
    """The human message of a Kubernetes Status body, or the raw text, shortened."""
    text = payload.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])[:2000]
    return text[:500]


def translate_status(status: int, payload: bytes, what: str, retry_after: float | None = None) -> ClientError:
    """Map an HTTP status from the API server to our error hierarchy."""
    message = f"{what}: {_status_message(payload)}"
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 422):
        return Invalid(message)
    if status in (401, 403):
        return Forbidden(message)
    if status == 429:
        return Unavailable(message, retry_after=retry_after)
    if status == 504:
        return Timeout(message)
    return Unavailable(message)


class KubeClient:
    """Async Kubernetes REST client returning plain dicts."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        request_timeout: float = 30.0,
        max_429_retries: int = 5,
        max_retry_after: float = 10.0,
    ) -> None:
        self._api = api_client
        _skip_environment_lookups(api_client)
        self._timeout = request_timeout
        self._max_429_retries = max_429_retries
        self._max_retry_after = max_retry_after
        # Event series: (object, type, reason, message) -> (name, count) of the Event this client posted for it
        self._event_series: OrderedDict[tuple[str, ...], tuple[str, int]] = OrderedDict()

    @classmethod
    async def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> KubeClient:
        """Load a kubeconfig file (KUBECONFIG or ~/.kube/config by default)."""
        configuration = k8s_client.Configuration()
        await k8s_config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        return cls(k8s_client.ApiClient(configuration))

    @classmethod
    async def auto(cls) -> KubeClient:
        """In-cluster service account when present, kubeconfig otherwise (like kubectl and kopf)."""
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            # kubernetes_asyncio reads KUBECONFIG once at import; read it now so a process that sets it later
            # (the demo, tests running the operator in-process) is honoured, as kubectl would.
            await k8s_config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
            )
        return cls(k8s_client.ApiClient(configuration))

    async def close(self) -> None:
        """Release the HTTP connection pool."""
        await self._api.close()

    # -- the one request path ------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        """Send one request; return parsed JSON (or text when raw). Errors become ClientError subclasses."""
        what = f"{method} {path}"
        params = list(query or [])
        if method in _WRITES and not any(key == "fieldManager" for key, _ in params):
            params.append(("fieldManager", FIELD_MANAGER))
        for attempt in range(self._max_429_retries + 1):
            try:
                response = await self._send(method, path, params, body, content_type)
                async with response:
                    payload = await response.read()
                    status = response.status
                    retry_after_header = response.headers.get("Retry-After")
            except TimeoutError as exc:
                raise Timeout(f"{what}: no answer within {self._timeout:.0f}s") from exc
            except aiohttp.ClientError as exc:
                raise Unavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
            if 200 <= status < 300:
                if raw:
                    return payload.decode("utf-8", errors="replace")
                return json.loads(payload) if payload else {}
            retry_after = _parse_retry_after(retry_after_header)
            if status == 429 and attempt < self._max_429_retries:
                delay = min(retry_after if retry_after is not None else 1.0, self._max_retry_after)
                log.info("API server throttled %s; retrying in %.1fs", what, delay)
                await asyncio.sleep(delay)
                continue
            raise translate_status(status, payload, what, retry_after)
        raise Unavailable(f"{what}: still throttled after {self._max_429_retries} retries")  # pragma: no cover

    async def _send(
        self, method: str, path: str, params: list[tuple[str, str]], body: Any, content_type: str
    ) -> aiohttp.ClientResponse:
        """One exchange on kubernetes_asyncio's session with its auth, TLS and proxy settings: what
        `ApiClient.call_api` sends for these arguments, byte for byte, without its generic per-request work.

        Why: `call_api` walks every body in Python (`sanitize_for_serialization`) before `json.dumps` walks it
        again, and rebuilds headers, query and timeout objects; with the REST layer that was ~10 % of the
        operator's CPU in bench/scale.py's profile. Here the body goes to `json.dumps` once; whatever it cannot
        encode itself (datetimes, generated models) is converted by that same `sanitize_for_serialization`.
        """
        api = self._api
        rest = api.rest_client
        headers = {"Content-Type": content_type, "Accept": "application/json", **api.default_headers}
        if api.cookie:
            headers["Cookie"] = api.cookie
        query = list(params)
        await api.update_params_for_auth(headers, query, ["BearerToken"])
        url = (api.configuration.host or "") + path + (f"?{urlencode(query)}" if query else "")
        extra: dict[str, Any] = {}
        if rest.proxy:
            extra["proxy"] = rest.proxy
        if rest.proxy_headers:
            extra["proxy_headers"] = rest.proxy_headers
        if rest.server_hostname:
            extra["server_hostname"] = rest.server_hostname
        if method in _WITH_BODY:
            extra["data"] = None if body is None else json.dumps(body, default=api.sanitize_for_serialization)
        response: aiohttp.ClientResponse = await rest.pool_manager.request(
            method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=self._timeout), **extra)
        return response

    # -- generic verbs -------------------------------------------------------------------------

    async def get(self, kind: ResourceKind, name: str, namespace: str | None = None) -> JsonDict:
        """GET one object; NotFound when absent."""
        return cast(JsonDict, await self.request("GET", kind.path(namespace, name)))

    async def get_or_none(self, kind: ResourceKind, name: str, namespace: str | None = None) -> JsonDict | None:
        """GET one object, or None when absent."""
        try:
            return await self.get(kind, name, namespace)
        except NotFound:
            return None

    async def list(
        self,
        kind: ResourceKind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonDict]:
        """LIST objects (all pages)."""
        selectors = [("labelSelector", label_selector or ""), ("fieldSelector", field_selector or "")]
        items, _ = await self._pages(kind, namespace, [(key, value) for key, value in selectors if value])
        return items

    async def list_versioned(self, kind: ResourceKind, namespace: str | None) -> tuple[builtins.list[JsonDict], str]:
        """LIST every object (all pages) and the list's resourceVersion, where a WATCH of the same objects starts."""
        return await self._pages(kind, namespace, [])

    async def _pages(self, kind: ResourceKind, namespace: str | None, query: builtins.list[tuple[str, str]]
                     ) -> tuple[builtins.list[JsonDict], str]:
        items: list[JsonDict] = []
        cont: str | None = None
        while True:
            data = await self.request("GET", kind.path(namespace), query=[*query, *([("continue", cont)] if cont else [])])
            items.extend(data.get("items") or [])
            cont = (data.get("metadata") or {}).get("continue")
            if not cont:
                return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def create(self, kind: ResourceKind, body: Mapping[str, Any], namespace: str | None = None) -> JsonDict:
        """POST a new object; Conflict when it already exists."""
        return cast(JsonDict, await self.request("POST", kind.path(namespace), body=dict(body)))

    async def patch(
        self,
        kind: ResourceKind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> JsonDict:
        """PATCH an object (or its status/scale subresource)."""
        return cast(
            JsonDict,
            await self.request(
                "PATCH",
                kind.path(namespace, name, subresource),
                body=patch,
                content_type=_PATCH_CONTENT_TYPES[patch_type],
            ),
        )

    async def replace(
        self,
        kind: ResourceKind,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JsonDict:
        """PUT an object; Conflict when its resourceVersion is stale."""
        return cast(JsonDict, await self.request("PUT", kind.path(namespace, name, subresource), body=dict(body)))

    async def delete(
        self,
        kind: ResourceKind,
        name: str,
        namespace: str | None = None,
        *,
        propagation: Literal["Foreground", "Background", "Orphan"] | None = None,
        grace_period_seconds: int | None = None,
    ) -> JsonDict:
        """DELETE an object; NotFound when already gone."""
        body: JsonDict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            body["propagationPolicy"] = propagation
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        return cast(JsonDict, await self.request("DELETE", kind.path(namespace, name), body=body))

    async def watch(
        self, kind: ResourceKind, namespace: str | None, *, resource_version: str, timeout_seconds: int = 300
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """WATCH from `resource_version`: (type, object) pairs until the server ends the stream.

        Types are ADDED, MODIFIED, DELETED and BOOKMARK (asked for: they move the resourceVersion on without
        an object change). An ERROR event raises its translated status (410 Gone: NotFound's sibling
        `Expired` is not in our hierarchy, so it is Unavailable with code 410 in the message; callers re-list
        on any error). The stream holds one connection of the pool for its whole life, so the pool grows by
        one while it is open instead of starving ordinary requests.
        """
        what = f"WATCH {kind.path(namespace)}"
        query = [("watch", "1"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        connector = getattr(getattr(getattr(self._api, "rest_client", None), "pool_manager", None), "connector", None)
        grow = isinstance(connector, aiohttp.TCPConnector) and connector.limit > 0
        if grow and isinstance(connector, aiohttp.TCPConnector):
            connector._limit += 1
        try:
            try:
                response = await self._api.call_api(
                    kind.path(namespace), "GET", query_params=query, header_params={"Accept": "application/json"},
                    auth_settings=["BearerToken"], _preload_content=False,
                    _request_timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                                           sock_read=timeout_seconds + self._timeout),
                )
            except TimeoutError as exc:
                raise Timeout(f"{what}: no answer within {self._timeout:.0f}s") from exc
            except aiohttp.ClientError as exc:
                raise Unavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
            async with response:
                if response.status != 200:
                    raise translate_status(response.status, await response.read(), what)
                try:
                    async for line in response.content:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        type_, obj = str(event.get("type")), event.get("object") or {}
                        if type_ == "ERROR":
                            raise translate_status(int(obj.get("code") or 500), json.dumps(obj).encode(), what)
                        yield type_, obj
                except (TimeoutError, aiohttp.ClientError) as exc:
                    raise Unavailable(f"{what}: stream ended: {type(exc).__name__}: {exc}") from exc
        finally:
            if grow and isinstance(connector, aiohttp.TCPConnector):
                connector._limit -= 1

    # -- conveniences used by several runbooks -------------------------------------------------

    async def get_replicas(self, namespace: str, deployment: str) -> int:
        """spec.replicas via the scale subresource."""
        scale = await self.request("GET", DEPLOYMENTS.path(namespace, deployment, "scale"))
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def set_replicas(self, namespace: str, deployment: str, replicas: int) -> JsonDict:
        """Write spec.replicas through the scale subresource (what `kubectl scale` does)."""
        return await self.patch(
            DEPLOYMENTS, deployment, {"spec": {"replicas": replicas}}, namespace, subresource="scale"
        )

    async def pod_logs(
        self, namespace: str, pod: str, *, tail_lines: int | None = None, since_seconds: int | None = None
    ) -> str:
        """A pod's log text (`kubectl logs`)."""
        query: list[tuple[str, str]] = []
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        return cast(str, await self.request("GET", PODS.path(namespace, pod, "log"), query=query, raw=True))

    async def create_event(
        self,
        involved: ObjectRef,
        *,
        type_: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        now: datetime | None = None,
    ) -> None:
        """Record a core/v1 Event on an object, as `kubectl describe` shows them.

        A repeat of an Event this client posted (same object, type, reason and message) bumps that Event's
        count and lastTimestamp instead of creating another one — what client-go's recorder does, and what
        `kubectl describe` shows as "(x3 over 10m)". If that Event is gone (expired), a new one starts.
        """
        when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = message[:EVENT_MESSAGE_LIMIT]
        key = (involved.namespace, involved.kind, involved.name, involved.uid or "", type_, reason, message)
        known = self._event_series.get(key)
        if known is not None:
            name, count = known
            try:
                await self.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": when}, involved.namespace)
            except NotFound:
                pass
            else:
                self._remember_event(key, (name, count + 1))
                return
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved.name}.{secrets.token_hex(8)}",
                "namespace": involved.namespace,
            },
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "name": involved.name,
                "namespace": involved.namespace,
                **({"uid": involved.uid} if involved.uid else {}),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
        }
        await self.create(EVENTS, body, involved.namespace)
        self._remember_event(key, (str(body["metadata"]["name"]), 1))

    def _remember_event(self, key: tuple[str, ...], series: tuple[str, int]) -> None:
        self._event_series[key] = series
        self._event_series.move_to_end(key)
        while len(self._event_series) > EVENT_SERIES_REMEMBERED:
            self._event_series.popitem(last=False)


_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC")


def _skip_environment_lookups(api_client: k8s_client.ApiClient) -> None:
    """kubernetes_asyncio opens its aiohttp session with trust_env=True: every request then looks up ~/.netrc
    and proxy settings in a thread (measured: 26 % of the operator's CPU per incident in bench/scale.py).
    Without proxy variables those lookups find nothing, so skip them; with any, keep aiohttp's behaviour."""
    if any(os.environ.get(name) for name in _PROXY_ENV):
        return
    session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    if isinstance(session, aiohttp.ClientSession) and hasattr(session, "_trust_env"):
        session._trust_env = False


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
