"""Objects of one kind, per namespace in use, kept current by one LIST + WATCH instead of a read per use.

Why: a thousand ScalingPolicies each GETting their Deployment every polling interval cost a thousand
requests per interval; one watch per namespace costs a request only when something changes. A namespace is
listed the first time it is asked about and watched from then on (re-listed after a 410 Gone or any stream
error, after a short pause). Where the operator may not list/watch the kind (RBAC without those verbs), every
call falls back to a direct read, as before, and says so once in the log.

The cache lags the API server by the watch's latency, so our own writes are remembered (`remember`) until
the watch shows the object at least as new: a decision never acts on the state from before our own write.

Owns: the list/watch loops, the cached bodies and the remembered writes. Must not interpret the objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradesense_operator.clients.errors import ClientError, Forbidden, NotFound
from tradesense_operator.clients.kube import JsonDict, KubeClient, ResourceKind

log = logging.getLogger(__name__)

RELIST_PAUSE_SECONDS = 1.0  # after a failed list or a broken stream, before listing again
WATCH_TIMEOUT_SECONDS = 300  # the server ends each watch request after this long; the loop starts the next


def version_at_least(live: Mapping[str, Any], ours: Mapping[str, Any]) -> bool | None:
    """Whether `live` is at least as new as `ours` (bodies); None when that cannot be told.

    resourceVersion is opaque by contract, but every server in use (etcd revisions, the emulated API) hands
    out increasing integers, and comparing them is the only way to tell that a watch has caught up with a
    write whose own event was coalesced with a later one. Anything else: equal says yes, otherwise unknown.
    """
    a = str((live.get("metadata") or {}).get("resourceVersion") or "")
    b = str((ours.get("metadata") or {}).get("resourceVersion") or "")
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True if a and a == b else None


@dataclass
class _Namespace:
    """One namespace's objects, its loop, and whether a direct read must stand in for the cache."""

    objects: dict[str, JsonDict] = field(default_factory=dict)
    synced: asyncio.Future[None] | None = None
    task: asyncio.Task[None] | None = None
    direct: bool = False  # not allowed to list/watch here: read directly


class WatchCache:
    """Bodies of one namespaced kind, by namespace and name, fed by a watch per namespace."""

    def __init__(self, kube: KubeClient, kind: ResourceKind) -> None:
        self.kube = kube
        self.kind = kind
        self._namespaces: dict[str, _Namespace] = {}
        self._remembered: dict[tuple[str, str], JsonDict] = {}

    async def get(self, namespace: str, name: str) -> JsonDict:
        """The object as last seen (or as our own last write returned it); NotFound when it does not exist."""
        entry = await self._ready(namespace)
        if entry.direct:
            return await self.kube.get(self.kind, name, namespace)
        remembered = self._remembered.get((namespace, name))
        if remembered is not None:
            return remembered
        found = entry.objects.get(name)
        if found is None:
            raise NotFound(f"{self.kind.kind} {namespace}/{name} not found")
        return found

    async def list(self, namespace: str) -> list[JsonDict]:
        """Every object of the namespace as last seen."""
        entry = await self._ready(namespace)
        if entry.direct:
            return await self.kube.list(self.kind, namespace)
        return [self._remembered.get((namespace, name), body) for name, body in entry.objects.items()]

    def remember(self, body: Mapping[str, Any]) -> None:
        """Our own write's answer: served instead of the watched body until the watch has caught up with it."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        seen = (self._namespaces.get(key[0]) or _Namespace()).objects.get(key[1])
        prior = self._remembered.get(key)
        if prior is not None and version_at_least(prior, body):
            return  # an answer at least as new is already remembered
        if seen is None or not version_at_least(seen, body):
            self._remembered[key] = dict(body)

    async def close(self) -> None:
        """Stop every watch."""
        tasks = [entry.task for entry in self._namespaces.values() if entry.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._namespaces.clear()

    # -- the per-namespace loop --------------------------------------------------------------------

    async def _ready(self, namespace: str) -> _Namespace:
        entry = self._namespaces.get(namespace)
        if entry is not None and entry.synced is not None and entry.synced.done() and not entry.synced.exception():
            return entry  # the common case: listed and watching, no await
        if entry is None or entry.synced is None or (entry.synced.done() and entry.synced.exception() is not None):
            entry = self._namespaces[namespace] = _Namespace(synced=asyncio.get_running_loop().create_future())
            entry.task = asyncio.ensure_future(self._run(namespace, entry))
        assert entry.synced is not None
        await asyncio.shield(entry.synced)
        return entry

    async def _run(self, namespace: str, entry: _Namespace) -> None:
        assert entry.synced is not None
        first = True
        while True:
            try:
                items, version = await self.kube.list_versioned(self.kind, namespace)
            except Forbidden as exc:
                log.warning("may not list %s in %s (%s): reading each one directly instead", self.kind.plural,
                            namespace, exc)
                entry.direct = True
                _settle(entry.synced)
                return
            except NotFound:  # the kind is not served (e.g. no autoscaling/v2): none exist, none can appear
                _settle(entry.synced)
                return
            except ClientError as exc:
                if first:  # the callers waiting for the first list see why; the next caller lists again
                    entry.synced.set_exception(exc)
                    entry.synced.exception()  # retrieved: no "never retrieved" warning when nobody waits
                    return
                log.info("re-listing %s in %s failed, retrying: %s", self.kind.plural, namespace, exc)
                await asyncio.sleep(RELIST_PAUSE_SECONDS)
                continue
            entry.objects = {str((o.get("metadata") or {}).get("name")): o for o in items}
            self._forget_caught_up(namespace)
            first = False
            _settle(entry.synced)
            with contextlib.suppress(ClientError):
                await self._follow(namespace, entry, version)
            await asyncio.sleep(RELIST_PAUSE_SECONDS)

    async def _follow(self, namespace: str, entry: _Namespace, version: str) -> None:
        """Apply watch events until the stream fails (the caller re-lists); a stream the server ends after its
        timeout is resumed from the last version seen."""
        while True:
            async for type_, obj in self.kube.watch(self.kind, namespace, resource_version=version,
                                                    timeout_seconds=WATCH_TIMEOUT_SECONDS):
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if type_ == "BOOKMARK":
                    continue
                name = str((obj.get("metadata") or {}).get("name"))
                if type_ == "DELETED":
                    entry.objects.pop(name, None)
                    self._remembered.pop((namespace, name), None)
                else:
                    entry.objects[name] = obj
                    self._forget_caught_up(namespace, name)

    def _forget_caught_up(self, namespace: str, name: str | None = None) -> None:
        entry = self._namespaces.get(namespace)
        if entry is None:
            return
        keys = [(namespace, name)] if name is not None else [k for k in self._remembered if k[0] == namespace]
        for key in keys:
            ours = self._remembered.get(key)
            seen = entry.objects.get(key[1])
            if ours is not None and (seen is None or version_at_least(seen, ours) is not False):
                # gone, caught up, or not comparable: the watch's body is the newer word
                del self._remembered[key]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
