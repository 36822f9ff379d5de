"""Events on the incident for every step transition, and the same story kept in `status.timeline`.

`kubectl describe tsi` reads like the runbook while the Events live; a real cluster drops Events after
about an hour, so every Event posted here is also added to the incident's own bounded timeline (the
newest TIMELINE_LIMIT entries), which outlives them. Inside the engine (`batched=True`) the entries wait
in `pending` and go into the engine's next status write (`run.StatusWriter.commit`), so an Event costs
one request, not two; that write is guarded by resourceVersion like every other. An Event about a transition
that is staged, not yet written (a step's result, which rides with the next step's Running checkpoint), is
`stage`d: its entry goes into that write and the Event itself is posted right after it (`flush`), so whoever
reads the status on seeing the Event finds the transition there. Before a step's action the staged Events
are posted in the background (`post_staged_soon`), so that the namespace Lease is not held for their round
trips; they stay in order (every later post waits for them) and the engine waits for them before its
advance sleeps or ends (`settle`). Outside it (an
unreadable status, which the engine will not write) an entry is appended at once with a JSON patch.
Both are best effort: status checkpoints are the record the engine resumes from, so a failed Event or
timeline write is logged and never stops a remediation.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Literal

from tradesense_operator.api.v1alpha1.incident import TIMELINE_LIMIT, TIMELINE_MESSAGE_LIMIT, TimelineEntry
from tradesense_operator.clients.errors import ClientError, Conflict, Invalid
from tradesense_operator.clients.kube import INCIDENTS, KubeClient, ObjectRef
from tradesense_operator.domain.clock import Clock

log = logging.getLogger(__name__)

_BACKGROUND: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks


def timeline_entry(type_: Literal["Normal", "Warning"], reason: str, message: str, now: datetime) -> TimelineEntry:
    """One timeline entry (message shortened to the schema's bound)."""
    if len(message) > TIMELINE_MESSAGE_LIMIT:
        message = message[: TIMELINE_MESSAGE_LIMIT - 1] + "…"
    return TimelineEntry(time=now, type=type_, reason=reason, message=message)


class IncidentEvents:
    """Posts core/v1 Events about one incident and appends each to its status timeline."""

    def __init__(self, kube: KubeClient, clock: Clock, ref: ObjectRef, *, batched: bool = False) -> None:
        self._kube = kube
        self._clock = clock
        self._ref = ref
        self._batched = batched
        self._length: int | None = None  # entries in status.timeline, once known
        self.pending: list[TimelineEntry] = []  # batched: entries the next status write adds
        self._staged: list[tuple[Literal["Normal", "Warning"], str, str, datetime]] = []  # posted after that write
        self._posting: asyncio.Task[None] | None = None  # staged Events being posted in the background

    async def normal(self, reason: str, message: str) -> None:
        """A routine transition (StepStarted, StepSucceeded, IncidentSucceeded …)."""
        await self._post("Normal", reason, message)

    async def warning(self, reason: str, message: str) -> None:
        """Something a human should look at (StepFailed, Blocked, Escalated …)."""
        await self._post("Warning", reason, message)

    def stage(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        """An Event about what the next status write records (batched only): its timeline entry goes into that
        write, the Event is posted by `flush` once the write is done."""
        log.info("%s/%s %s: %s", self._ref.namespace, self._ref.name, reason, message)  # in the step's log context
        now = self._clock.now()
        self.pending.append(timeline_entry(type_, reason, message, now))
        self._staged.append((type_, reason, message, now))

    async def flush(self) -> None:
        """Post the staged Events (their transitions are written, or about to be by a terminal write)."""
        await self.settle()
        staged, self._staged = self._staged, []
        for type_, reason, message, now in staged:
            await self._create(type_, reason, message, now)

    def post_staged_soon(self) -> None:
        """`flush` in the background (their transitions are written): the caller goes on at once."""
        if not self._staged:
            return
        staged, self._staged = self._staged, []
        self._posting = asyncio.ensure_future(self._post_after(self._posting, staged))
        _BACKGROUND.add(self._posting)
        self._posting.add_done_callback(_BACKGROUND.discard)

    async def settle(self) -> None:
        """Wait until the Events being posted in the background are posted."""
        while self._posting is not None:
            posting = self._posting
            await asyncio.shield(posting)
            if self._posting is posting:
                self._posting = None

    async def _post_after(self, previous: asyncio.Task[None] | None,
                          staged: list[tuple[Literal["Normal", "Warning"], str, str, datetime]]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        for type_, reason, message, now in staged:
            await self._create(type_, reason, message, now)

    async def _create(self, type_: Literal["Normal", "Warning"], reason: str, message: str, now: datetime) -> None:
        try:
            await self._kube.create_event(self._ref, type_=type_, reason=reason, message=message, now=now)
        except ClientError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, self._ref.namespace, self._ref.name, exc)

    async def _post(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        await self.flush()  # Events keep the order of the transitions they describe
        log.info("%s/%s %s: %s", self._ref.namespace, self._ref.name, reason, message)
        now = self._clock.now()
        await self._create(type_, reason, message, now)
        entry = timeline_entry(type_, reason, message, now)
        if self._batched:
            self.pending.append(entry)
            return
        try:
            await self._append(entry.to_api())
        except ClientError as exc:
            log.warning("could not add %s to the timeline of %s/%s: %s",
                        reason, self._ref.namespace, self._ref.name, exc)

    async def _append(self, entry: dict[str, Any]) -> None:
        """Append (dropping the oldest beyond the limit); the first append of a run learns the length by reading."""
        if self._length is not None:
            ops: list[dict[str, Any]] = [{"op": "add", "path": "/status/timeline/-", "value": entry}]
            if self._length >= TIMELINE_LIMIT:
                ops.insert(0, {"op": "remove", "path": "/status/timeline/0"})
            try:
                await self._kube.patch(INCIDENTS, self._ref.name, ops, self._ref.namespace,
                                       patch_type="json", subresource="status")
            except Invalid:
                self._length = None  # no timeline yet, or shorter than we thought: rewrite it below
            else:
                self._length = min(self._length + 1, TIMELINE_LIMIT)
                return
        for attempt in range(3):
            body = await self._kube.get(INCIDENTS, self._ref.name, self._ref.namespace)
            timeline = [*((body.get("status") or {}).get("timeline") or []), entry][-TIMELINE_LIMIT:]
            patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                     "status": {"timeline": timeline}}
            try:
                await self._kube.patch(INCIDENTS, self._ref.name, patch, self._ref.namespace, subresource="status")
            except Conflict:
                if attempt == 2:
                    raise
                continue
            self._length = len(timeline)
            return
