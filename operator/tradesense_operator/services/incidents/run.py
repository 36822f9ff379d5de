"""One iteration's view of an incident and the only way its status is written back.

Owns `IncidentRun` (what was read, what is being written), `StatusWriter` (phase changes and the
checkpoint write) and `Advance` (what one iteration tells its driver). Every module of the engine
writes status through `StatusWriter.commit`, so there is one place that decides how a status write
is made: guarded by the resourceVersion of the read it was computed from. On a Conflict the object
is re-read; if its status is still the one this iteration decided from (only metadata or spec moved),
the write is repeated on the new version, otherwise `StaleStatus` ends the iteration and the engine
decides again from what is stored. It must not decide what to do next: that is the engine's loop
and `domain.incident.machine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradesense_operator.api.v1alpha1.incident import (
    TIMELINE_LIMIT,
    IncidentPhase,
    IncidentTarget,
    StepStatus,
    TradeSenseIncidentStatus,
)
from tradesense_operator.clients.errors import ClientError, Conflict
from tradesense_operator.clients.kube import ObjectRef
from tradesense_operator.domain.incident.machine import is_terminal
from tradesense_operator.domain.incident.phases import with_phase
from tradesense_operator.services.incidents.events import IncidentEvents
from tradesense_operator.services.incidents.lock import NamespaceLock
from tradesense_operator.services.incidents.metrics import IncidentMetrics
from tradesense_operator.services.incidents.store import IncidentObject, IncidentStore, parse_status, status_patch
from tradesense_operator.services.runtime import Runtime

_MAX_RACES = 5


@dataclass(frozen=True)
class Advance:
    """Result of one `advance`: whether the incident is finished (or gone) and when to advance again."""

    finished: bool
    delay: float = 0.0
    phase: IncidentPhase | None = None
    waits_for: NamespaceLock | None = None  # waiting for this Lease: a release that makes us next ends the delay


class StaleStatus(Exception):
    """Someone else wrote this incident's status since it was read: this iteration's decision is void."""


@dataclass
class IncidentRun:
    """One iteration's view of an incident: what was read (`obj`, `saved`) and what is being written."""

    obj: IncidentObject
    status: TradeSenseIncidentStatus
    saved: TradeSenseIncidentStatus
    events: IncidentEvents
    version: str | None = None
    write_failed: bool = False  # a status write of this run was refused: repeating it at once is pointless

    @property
    def ref(self) -> ObjectRef:
        return self.obj.ref

    def set_step(self, index: int, step: StepStatus) -> None:
        steps = list(self.status.steps)
        steps[index] = step
        self.status = self.status.model_copy(update={"steps": steps})


class StatusWriter:
    """Phase changes and checkpoint writes of incident status, with the metrics derived from them."""

    def __init__(self, runtime: Runtime, store: IncidentStore, metrics: IncidentMetrics) -> None:
        self._runtime = runtime
        self._store = store
        self._metrics = metrics

    def now(self) -> datetime:
        return self._runtime.clock.now()

    def open(self, obj: IncidentObject) -> IncidentRun:
        """Start an iteration on a freshly read incident."""
        return IncidentRun(obj=obj, status=obj.status, saved=obj.status, version=obj.resource_version,
                           events=IncidentEvents(self._runtime.kube, self._runtime.clock, obj.ref, batched=True))

    def phase(self, run: IncidentRun, phase: IncidentPhase, reason: str, message: str) -> TradeSenseIncidentStatus:
        """`run.status` moved to `phase` (not yet written)."""
        return with_phase(run.status, phase=phase, reason=reason, message=message, now=self.now(),
                          generation=run.obj.generation)

    async def commit(self, run: IncidentRun, *, events_in_background: bool = False) -> None:
        """Persist the status when it changed or Events were posted since the last write (their timeline
        entries go into the same write). Idle polls write nothing, so they make no watch events.

        On success `run` continues from the write's answer (new resourceVersion, current spec): the next
        decision needs no GET. Staged Events (`IncidentEvents.stage`) are posted right after the write, or
        just before it when it is terminal: that write is the last thing an advance does (engine docstring).
        With `events_in_background` (a step's Running checkpoint) they are posted while the caller goes on.
        """
        pending = run.events.pending
        if not pending and run.status == run.saved:
            return
        status = run.status
        if pending:
            status = status.model_copy(update={"timeline": [*status.timeline, *pending][-TIMELINE_LIMIT:]})
        terminal = is_terminal(status.phase)
        if terminal:
            await run.events.flush()
        try:
            written = await self._save(run, status, with_timeline=bool(pending))
        except ClientError:
            run.write_failed = True
            raise
        run.events.pending = []
        self._metrics.committed(run.ref.uid or run.ref.name, str(run.obj.raw_spec.get("runbook", "")),
                                before=run.saved, after=status, target_namespace=target_namespace(run.obj.raw_spec))
        run.obj, run.version = written, written.resource_version
        run.status = run.saved = status
        if terminal:
            return
        if events_in_background:
            run.events.post_staged_soon()
        else:
            await run.events.flush()

    async def _save(self, run: IncidentRun, status: TradeSenseIncidentStatus, *, with_timeline: bool
                    ) -> IncidentObject:
        for _ in range(_MAX_RACES):
            try:
                return await self._store.save(run.ref, status, resource_version=run.version,
                                              with_timeline=with_timeline)
            except Conflict:
                fresh = await self._store.load(run.ref.namespace, run.ref.name)
                if fresh is None or fresh.ref.uid != run.ref.uid:
                    raise StaleStatus("the incident was deleted or re-created") from None
                if _wire(fresh.status) != _wire(run.saved):
                    raise StaleStatus("another writer changed the status") from None
                run.version = fresh.resource_version  # only metadata or spec moved: our decision stands
        raise StaleStatus(f"the incident kept changing ({_MAX_RACES} conflicts in a row)")


def _wire(status: TradeSenseIncidentStatus) -> dict[str, Any]:
    """The status as stored, for comparing what was read with what is there now."""
    wire: dict[str, Any] = status_patch(parse_status(status.to_api()))["status"]
    return wire


def target_namespace(raw_spec: Mapping[str, Any]) -> str:
    """spec.target.namespace of a raw (possibly invalid) spec, or its default."""
    target = raw_spec.get("target")
    namespace = target.get("namespace") if isinstance(target, Mapping) else None
    return str(namespace or IncidentTarget.model_fields["namespace"].default)
