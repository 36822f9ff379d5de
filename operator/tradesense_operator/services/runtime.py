"""Everything a service needs from the outside world, built once per operator process.

Handlers receive it from kopf's `memo.runtime`; tests and the demo build their own (e.g. with a
ManualClock) and inject it through the memo, so no module-level globals exist.
Owns the wiring only; must not hold per-resource state or make decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tradesense_operator.clients.kube import KubeClient
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

    async def aclose(self) -> None:
        """Release connections."""
        await self.kube.close()
