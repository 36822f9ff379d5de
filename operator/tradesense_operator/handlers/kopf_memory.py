"""kopf keeps the last body of every object of a kind that has a daemon or timer; keep it only while one runs.

kopf's per-object memory holds a live `Body` for the kind's daemons and timers (`DaemonsMemory.live_fresh_body`)
and sets it on every watch event of every object of such a kind, whether a daemon runs for it or not. For
incidents that is every incident in the cluster: a finished one (no daemon, the filter excludes it) keeps its
whole last body (plan, steps, conditions, timeline, managedFields — ~15-20 KB of Python objects) until it is
deleted, so the operator's memory grows with the incidents kept for the record. kopf itself drops the body
when a daemon exits for good; this does the same after each spawning cycle that leaves no daemon or timer
running for the object. The next cycle that spawns one sets a fresh body first (kopf's own order), so a
daemon always gets a live body; a daemon still stopping keeps it until its next cycle after the exit.

Owns: that one release. Must not change what kopf spawns, stops or passes to handlers.
"""

from __future__ import annotations

import functools
from collections.abc import Collection

import kopf
from kopf._cogs.aiokits.aiotoggles import ToggleSet
from kopf._core.intents.causes import SpawningCause
from kopf._core.reactor import processing
from kopf._core.reactor.inventory import ResourceMemory

_INSTALLED = "_tradesense_releases_idle_bodies"


def release_idle_bodies() -> None:
    """Wrap kopf's spawning step so that an object with nothing running keeps no body (idempotent)."""
    original = processing.process_spawning_cause
    if getattr(original, _INSTALLED, False):
        return

    @functools.wraps(original)
    async def process_spawning_cause(
        registry: kopf.OperatorRegistry, settings: kopf.OperatorSettings, memory: ResourceMemory,
        cause: SpawningCause, operator_paused: ToggleSet | None,
    ) -> Collection[float]:
        try:
            return await original(registry=registry, settings=settings, memory=memory, cause=cause,
                                  operator_paused=operator_paused)
        finally:
            if not memory.daemons_memory.running_daemons:
                memory.daemons_memory.live_fresh_body = None

    setattr(process_spawning_cause, _INSTALLED, True)
    processing.process_spawning_cause = process_spawning_cause
