"""kopf wiring for ScalingPolicy: watch events fill a book of policies; one loop evaluates the due ones in rounds.

Why one loop and not a daemon (or timer) per policy: a thousand per-object daemons each woke, GETted its
Deployment and wrote its status every polling interval, and kopf kept a task, a finalizer and a watch-event
round trip per policy. Here an `on.event` handler only records the policy in the book (services.scaling.book)
and wakes the loop; the loop sleeps until the earliest policy is due on the injected clock (never for a paused
or invalid policy whose status already says so) and starts every policy due at that moment together, so their
identical PromQL is asked once (clients.prometheus). A crossing costs each policy a status commit and a scale
write before its replicas change; its SuccessfulRescale Event, when other evaluations are running, waits until
none is (or EVENT_DELAY_SECONDS), so a thousand policies crossing together queue two requests each, not three.
Each evaluation runs as its own task: the loop never waits for a whole round, so a policy due again never
waits for the slowest write of the previous one. Deployments, HPAs and sibling policies are read from watch
caches (clients.watch_cache: one LIST + WATCH per namespace in use). An edit, a pause or a resume is a watch
event, so it is acted on at once. No handler changes the object, so kopf keeps no finalizer or diff base on
ScalingPolicies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf

from tradesense_operator.api.v1alpha1.common import GROUP, VERSION
from tradesense_operator.api.v1alpha1.scaling import PLURAL
from tradesense_operator.clients.errors import ClientError, Conflict, Unavailable
from tradesense_operator.clients.kube import DEPLOYMENTS, HPAS, SCALING_POLICIES
from tradesense_operator.clients.prometheus import PrometheusPool
from tradesense_operator.clients.watch_cache import WatchCache
from tradesense_operator.handlers.due_daemon import sleep_until
from tradesense_operator.services.runtime import Runtime
from tradesense_operator.services.scaling.book import Due, PolicyBook, key_of
from tradesense_operator.services.scaling.evaluation import ScalingService

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # after a transient API failure (real time)
MAX_CONCURRENT_EVALUATIONS = 64  # more would only queue in the client's connection pool, where a write can time out
#                                  (then be retried from a stale view: Conflict, re-read) — measured at 1,000 policies
SHARE_QUERIES_SECONDS = 0.5  # identical PromQL within this long is asked once (half the shortest polling interval)
EVENT_DELAY_SECONDS = 5.0  # a deferred SuccessfulRescale waits at most this long for the evaluations to drain
EVENTS_AT_ONCE = 16  # deferred Events posted concurrently


class _StopFlag(asyncio.Event):
    """An Event that is truthy once set (what `sleep_until` expects of a stop flag)."""

    def __bool__(self) -> bool:
        return self.is_set()


class Rounds:
    """The process' ScalingPolicy book, its caches and the loop that evaluates due policies."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.book = PolicyBook()
        self.wake = asyncio.Event()
        self.stop = _StopFlag()
        self.pool = PrometheusPool(share_seconds=SHARE_QUERIES_SECONDS)
        self.caches = {kind: WatchCache(runtime.kube, kind) for kind in (DEPLOYMENTS, HPAS, SCALING_POLICIES)}
        self.service = ScalingService(runtime.kube, self.pool, runtime.clock, runtime.settings.prometheus_url,
                                      metrics=runtime.metrics, caches=self.caches, schedule_event=self._schedule_event)
        self.task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_EVALUATIONS)
        self._deferred: list[Callable[[], Awaitable[None]]] = []
        self._deferred_since = 0.0  # loop time of the oldest deferred Event
        self._posting: set[asyncio.Task[None]] = set()

    async def _schedule_event(self, post: Callable[[], Awaitable[None]]) -> None:
        """Post now when this evaluation is the only one running (nothing to let ahead), else after the round."""
        if len(self._running) <= 1:
            await post()
            return
        if not self._deferred:
            self._deferred_since = asyncio.get_running_loop().time()
        self._deferred.append(post)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self.wake.set()  # its policy is no longer busy: the loop looks at its next due time
        if self._deferred and (not self._running
                               or asyncio.get_running_loop().time() - self._deferred_since >= EVENT_DELAY_SECONDS):
            posting = asyncio.create_task(self._post(self._take_deferred()), name="scaling events")
            self._posting.add(posting)
            posting.add_done_callback(self._posting.discard)

    def _take_deferred(self) -> list[Callable[[], Awaitable[None]]]:
        taken, self._deferred = self._deferred, []
        return taken

    @staticmethod
    async def _post(posts: list[Callable[[], Awaitable[None]]]) -> None:
        """Post deferred Events, EVENTS_AT_ONCE at a time (each logs its own failure: an Event is a courtesy)."""
        for start in range(0, len(posts), EVENTS_AT_ONCE):
            await asyncio.gather(*(post() for post in posts[start:start + EVENTS_AT_ONCE]))

    async def run(self) -> None:
        """Evaluate due policies until stopped."""
        loop = asyncio.get_running_loop()
        clock = self.runtime.clock
        while not self.stop.is_set():
            self.wake.clear()  # watch events and finished evaluations from here on are seen by the next look
            for item in self.book.due(clock.now(), loop.time()):
                # started together (their identical queries are asked once), not awaited together: a policy due
                # again, or newly due, never waits for the slowest write of the previous round
                task = asyncio.create_task(self._evaluate(item), name=f"scaling {item.key[0]}/{item.key[1]}")
                self._running.add(task)
                task.add_done_callback(self._finished)
            retry = self.book.next_retry()
            await sleep_until(clock, self.book.next_due(clock.now()), self.wake, self.stop,
                              timeout=None if retry is None else max(0.0, retry - loop.time()))

    async def _evaluate(self, item: Due) -> None:
        loop = asyncio.get_running_loop()
        where = f"{item.key[0]}/{item.key[1]}"
        try:
            async with self._slots:
                now = self.runtime.clock.now()
                outcome = await self.service.evaluate(item.body, item.previous)
        except (Unavailable, Conflict) as exc:
            log.info("ScalingPolicy %s: evaluation interrupted, retrying: %s", where, exc)
            self.book.failed(item.key, retry_at=loop.time() + RETRY_SECONDS)
            return
        except Exception as exc:  # one policy's failure must not end the loop for all of them
            # Not transient (e.g. Forbidden, or a bug): say so and try again a polling interval later, like a
            # per-policy timer would.
            if isinstance(exc, ClientError):
                log.warning("ScalingPolicy %s: evaluation failed: %s", where, exc)
            else:
                log.exception("ScalingPolicy %s: evaluation failed", where)
            interval = float((item.body.get("spec") or {}).get("pollingIntervalSeconds", 30))
            self.book.failed(item.key, retry_at=loop.time() + interval)
            return
        self.book.evaluated(item.key, now=now, decided_from=outcome.decided_from or item.body,
                            written=outcome.written, computed=outcome.status)
        if outcome.state == "Invalid":
            log.warning("ScalingPolicy %s not acted on: %s", where, outcome.message)
        elif outcome.state == "Scaled":
            log.info("ScalingPolicy %s scaled: %s", where, outcome.message)
        else:
            log.debug("ScalingPolicy %s %s: %s", where, outcome.state, outcome.message)

    async def close(self) -> None:
        """Stop the loop, post the Events still deferred (bounded: the API may be gone), close the watches and
        the Prometheus sessions."""
        self.stop.set()
        tasks = [*self._running, *([self.task] if self.task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pending = [*self._posting, asyncio.create_task(self._post(self._take_deferred()))]
        _, late = await asyncio.wait(pending, timeout=EVENT_DELAY_SECONDS)
        for task in late:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for cache in self.caches.values():
            await cache.close()
        self.pool.close()


@dataclass
class _Slot:
    """Holds the process' Rounds: set on the global memo at startup, shared by the per-object memos (shallow
    copies of it), filled with the first watch event (the Runtime may be built by a later startup handler)."""

    rounds: Rounds | None = None


async def prepare_rounds(memo: kopf.Memo, **_: Any) -> None:
    """Give the global memo the slot every per-object memo shares."""
    if not isinstance(getattr(memo, "scaling_rounds", None), _Slot):
        memo.scaling_rounds = _Slot()


def rounds_of(memo: kopf.Memo) -> Rounds:
    """The process' one book and loop, started with the first watch event."""
    slot: _Slot = memo.scaling_rounds
    if slot.rounds is None:
        slot.rounds = Rounds(memo.runtime)
        slot.rounds.task = asyncio.create_task(slot.rounds.run(), name="scaling-rounds")
    return slot.rounds


async def stop_rounds(memo: kopf.Memo, **_: Any) -> None:
    """Stop the loop and close its connections."""
    slot = getattr(memo, "scaling_rounds", None)
    if isinstance(slot, _Slot) and slot.rounds is not None:
        await slot.rounds.close()
        slot.rounds = None


async def observe(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002 - kopf's name
    """A watch event of a policy: record it and let the loop look again (cheap: nothing is read or written)."""
    rounds = rounds_of(memo)
    if type == "DELETED":
        rounds.book.forget(key_of(body))
    else:
        rounds.book.observe(dict(body))
    rounds.wake.set()


def register(registry: kopf.OperatorRegistry) -> None:
    """Add the ScalingPolicy handlers to `registry` (the default one on import; tests assemble their own)."""
    kopf.on.startup(registry=registry)(prepare_rounds)
    kopf.on.cleanup(registry=registry)(stop_rounds)
    kopf.on.event(GROUP, VERSION, PLURAL, id="scaling-book", registry=registry)(observe)


register(kopf.get_default_registry())
