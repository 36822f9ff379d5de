"""Everything a service needs from the outside world, built once per operator process.

Handlers receive it from kopf's `memo.runtime`; tests and the demo build their own (e.g. with a
ManualClock) and inject it through the memo, so no module-level globals exist.
Owns the wiring (and the process's shared watch caches) only; must not hold per-resource state or make decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradesense_operator.clients.kube import KubeClient, ResourceKind
from tradesense_operator.clients.watch_cache import WatchCache
from tradesense_operator.config import Settings
from tradesense_operator.domain.clock import Clock, SystemClock
from tradesense_operator.observability.metrics import OperatorMetrics


@dataclass
class Runtime:
    """Injected dependencies of the services."""

    kube: KubeClient
    settings: Settings = field(default_factory=Settings)
    clock: Clock = field(default_factory=SystemClock)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    _caches: dict[ResourceKind, WatchCache] = field(default_factory=dict, init=False, repr=False)

    def watch_cache(self, kind: ResourceKind) -> WatchCache:
        """The process's one watch cache of `kind` (namespaced kinds per namespace; a cluster-scoped kind under
        namespace ""), created on first use: reads that may lag by a watch's latency cost no request each."""
        cache = self._caches.get(kind)
        if cache is None:
            cache = self._caches[kind] = WatchCache(self.kube, kind)
        return cache

    async def aclose(self) -> None:
        """Stop the watches, release connections."""
        for cache in self._caches.values():
            await cache.close()
        self._caches.clear()
        await self.kube.close()
