"""A per-object kopf daemon that acts only when the object is due, instead of a fixed timer tick.

Why: a fixed tick costs work (and API requests) on every object every interval, even on a suspended
BackupPolicy that has nothing to do for days. (ScalingPolicies, due every few seconds by the thousand, are
evaluated in rounds by one loop instead: handlers/scaling.py, which shares `sleep_until`.) Here each object's daemon
asks its kind when it is next due (a pure function of the object and the injected clock) and sleeps
until then — or until the object changes (a watch event wakes it through `wake_on_event`), or the
injected clock moves (a test's ManualClock says so, no polling), or the daemon is stopped. A paused
object is due "never": its daemon costs nothing until someone edits it.

Owns the sleeping and the choice of the freshest view of the object. Must not decide what is due or
do the work: the kind's handler module passes `due_at` and `act`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import kopf

from tradesense_operator.clients.watch_cache import version_at_least
from tradesense_operator.domain.clock import Clock, ObservableClock

MAX_NAP_SECONDS = 300.0  # re-read the clock at least this often while waiting for a due time (wall-clock jumps)
ECHO_WAIT_SECONDS = 30.0  # opaque resourceVersions: trust the live body after this long even if our write's own
#                            watch event never came


@dataclass(frozen=True)
class Acted:
    """What one pass did: the object as the API returned it after our write, and whether to retry soon."""

    written: Mapping[str, Any] | None = None
    retry_in: float | None = None
    """Real seconds before the next pass unless someone else changes the object (a transient failure, or a
    state whose end is not a watch event of this object); None: only `due_at` decides."""


class Stopped(Protocol):
    """Truthy once stopping; `wait()` returns then (kopf.DaemonStopped, or the scaling loop's stop flag)."""

    def __bool__(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


DueAt = Callable[[Mapping[str, Any], datetime], datetime | None]
Act = Callable[[Mapping[str, Any]], Awaitable[Acted]]


def wakeup(memo: kopf.Memo, key: str = "due_wakeup") -> asyncio.Event:
    """The per-object event that cuts a daemon's sleep short (kopf shares the per-object memo between handlers)."""
    event = getattr(memo, key, None)
    if not isinstance(event, asyncio.Event):
        event = asyncio.Event()
        setattr(memo, key, event)
    return event


async def wake_on_event(memo: kopf.Memo, **_: Any) -> None:
    """A watch event of the object: let its daemon decide again (cheap: no request unless it is due)."""
    wakeup(memo).set()


def not_our_echo(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """`when=` filter of `wake_on_event`: skip the watch event of the daemon's own last write (the daemon
    already decides from what that write returned), so kopf does not even invoke the handler for it."""
    return bool(_resource_version(body) != getattr(memo, "due_written_version", None))


def _resource_version(body: Mapping[str, Any]) -> str | None:
    value = (body.get("metadata") or {}).get("resourceVersion")
    return str(value) if value is not None else None


def _caught_up(body: Mapping[str, Any], written: Mapping[str, Any]) -> bool | None:
    """Whether the live body is at least as new as our write; None when that cannot be told yet (opaque,
    non-numeric resourceVersions: the caller then trusts the live body after ECHO_WAIT_SECONDS)."""
    return version_at_least(body, written)


def _comparable(written: Mapping[str, Any]) -> bool:
    """Whether a later body can be told newer or older than `written` (numeric resourceVersions: etcd, the
    emulated API). Then the daemon need not wake to re-check: any later change by someone else is a watch event
    that passes `not_our_echo` and wakes it, and until then `written` is the object."""
    return str((written.get("metadata") or {}).get("resourceVersion") or "").isdigit()


async def sleep_until(clock: Clock, due: datetime | None, wake: asyncio.Event, stopped: Stopped, *,
                      timeout: float | None = None) -> None:
    """Return when `clock` reaches `due` (None: never), `wake` is set, the daemon stops, or `timeout` real
    seconds pass. Clears `wake`."""
    loop = asyncio.get_running_loop()
    moved = asyncio.Event()

    def on_move() -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody waits any more
            loop.call_soon_threadsafe(moved.set)

    unsubscribe = clock.subscribe(on_move) if isinstance(clock, ObservableClock) else None
    give_up = None if timeout is None else loop.time() + timeout
    try:
        while not stopped and not wake.is_set():
            now = clock.now()
            if due is not None and now >= due:
                return
            naps = [MAX_NAP_SECONDS, (due - now).total_seconds()] if due is not None else []
            if give_up is not None:
                if loop.time() >= give_up:
                    return
                naps.append(give_up - loop.time())
            moved.clear()
            waiters = [asyncio.ensure_future(stopped.wait()), asyncio.ensure_future(wake.wait()),
                       asyncio.ensure_future(moved.wait())]
            try:
                await asyncio.wait(waiters, timeout=min(naps) if naps else None, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
    finally:
        if unsubscribe is not None:
            unsubscribe()
        wake.clear()


async def serve(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, *, clock: Clock, due_at: DueAt,
                act: Act) -> None:
    """Act on the object whenever `due_at` says it is due, until the daemon stops.

    The live `body` lags behind our own writes until their watch events arrive; deciding from it right
    after a pass would act twice (it may even show an older change by someone else, such as kopf's
    finalizer). So the object as the pass's last write returned it is the view until the live body has
    caught up with that write (`_caught_up`); from then on the live body is as new or newer. (Where that
    cannot be told, the live body is trusted after ECHO_WAIT_SECONDS.)
    """
    loop = asyncio.get_running_loop()
    wake = wakeup(memo)
    written: Mapping[str, Any] | None = None
    echo_deadline = 0.0
    after_pass: str | None = None
    retry_at: float | None = None
    while not stopped:
        if written is not None:
            caught_up = _caught_up(body, written)
            if caught_up or (caught_up is None and loop.time() > echo_deadline):
                written = None
        view: Mapping[str, Any] = body if written is None else written
        changed_since = written is None and _resource_version(body) != after_pass
        if retry_at is not None and not changed_since and loop.time() < retry_at:
            await sleep_until(clock, None, wake, stopped, timeout=retry_at - loop.time())
            continue
        now = clock.now()
        due = due_at(view, now)
        if due is None or due > now:
            # No timed re-check after our own write unless versions are opaque: 2,000 idle policies all waking
            # 30 s after their last write was the idle benchmark's CPU (bench/scale.py --idle-profile).
            echo_wait = written is not None and not _comparable(written)
            await sleep_until(clock, due, wake, stopped, timeout=ECHO_WAIT_SECONDS if echo_wait else None)
            continue
        wake.clear()  # changes from here on are seen by the next decision
        acted = await act(view)
        written = acted.written
        memo.due_written_version = None if written is None else _resource_version(written)
        echo_deadline = loop.time() + ECHO_WAIT_SECONDS
        after_pass = _resource_version(written if written is not None else body)
        retry_at = None if acted.retry_in is None else loop.time() + acted.retry_in
