"""The per-namespace remediation lock: a coordination.k8s.io/v1 Lease named `tradesense-remediation`.

Only one incident changes a target namespace at a time. Writes are guarded by resourceVersion (a
create that finds the Lease, or a replace on a stale version, is a Conflict: someone else moved
first, so re-read and decide again). A holder that stops renewing (operator crash, deleted incident)
loses the Lease after its duration, and the next incident takes it over. While an action runs, the
Lease is renewed in the background (`fencing.py`), and the renew deadline (two thirds of the
duration) is when a holder that cannot renew must stop acting.

Incidents waiting for the Lease queue in its annotations (`domain/incident/lock_queue.py`): a free
Lease goes to the waiter first in line (severity, then age), not to whoever polls first. Waiters do not
poll the Lease: a release by an incident of this process wakes the waiters of this process at once
(`Releases`), and every waiter re-checks after a third of the Lease duration anyway — when it must
refresh its queue entry — which is how a release by another replica (or an expired holder) is noticed.
The Lease stays the only truth; the in-process notice only says "look now". This module must not decide
when an incident needs the lock; the engine does (not while it awaits approval or backs off).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradesense_operator.clients.errors import Conflict, Forbidden, NotFound
from tradesense_operator.clients.kube import LEASES, KubeClient
from tradesense_operator.domain.clock import Clock
from tradesense_operator.domain.incident.lease import (
    LEASE_NAME,
    Holder,
    LeaseState,
    format_micro_time,
    held_spec,
    lease_state,
    needs_renewal,
    new_lease,
)
from tradesense_operator.domain.incident.lock_queue import (
    WAITERS_ANNOTATION,
    Waiter,
    ahead_of,
    joined,
    left,
    parse_waiters,
    serialise_waiters,
)

log = logging.getLogger(__name__)
_MAX_RACES = 3


@dataclass(frozen=True)
class LockResult:
    """Whether we hold the lock; when not, who does (a holderIdentity) or who is ahead of us in line."""

    acquired: bool
    holder: str = ""
    ahead: str = ""


class Releases:
    """In-process notice that a namespace's Lease was released (or its queue changed), for the waiters of
    this process. Only the listener first in line (severity, then age, as the queue ranks) is woken: it is
    the one that may take the Lease; the others would read it only to wait again. Should it not take it
    (a waiter of another replica is first), the others still re-check at their fallback time."""

    def __init__(self) -> None:
        self._listeners: dict[str, dict[asyncio.Event, tuple[str, datetime, str]]] = {}

    def listen(self, namespace: str, rank: tuple[str, datetime, str]) -> asyncio.Event:
        """An event that is set when a release in `namespace` finds this listener first; give it back with `stop`."""
        event = asyncio.Event()
        self._listeners.setdefault(namespace, {})[event] = rank
        return event

    def stop(self, namespace: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(namespace)
        if listeners is not None:
            listeners.pop(event, None)
            if not listeners:
                del self._listeners[namespace]

    def released(self, namespace: str) -> None:
        """Wake the waiter of this process first in line for `namespace`."""
        listeners = self._listeners.get(namespace)
        if listeners:
            min(listeners.items(), key=lambda item: item[1])[0].set()


class NamespaceLock:
    """Acquire, renew and release the remediation Lease of one target namespace for one incident."""

    def __init__(
        self, kube: KubeClient, clock: Clock, *, namespace: str, me: Holder, duration_seconds: int,
        severity: str = "P3", since: datetime | None = None, releases: Releases | None = None,
    ) -> None:
        self._releases = releases
        self._kube = kube
        self._clock = clock
        self._namespace = namespace
        self._me = me
        self._duration = duration_seconds
        self._severity = severity
        self._since = since
        self._renewed_at: datetime | None = None
        self._confirmed_at: datetime | None = None   # last time the Lease was proven ours
        self._stepped_aside = False                   # released (or found not ours) since the last acquire
        self._written: dict[str, Any] | None = None   # the Lease as our last acquire wrote it (release starts there)

    @property
    def duration_seconds(self) -> int:
        return self._duration

    def listen(self) -> asyncio.Event | None:
        """An event set when a release in this process makes us the next to look (None without `Releases`)."""
        if self._releases is None:
            return None
        rank = (self._severity, self._since or datetime.max.replace(tzinfo=UTC), self._me.identity)
        return self._releases.listen(self._namespace, rank)

    def stop_listening(self, event: asyncio.Event) -> None:
        if self._releases is not None:
            self._releases.stop(self._namespace, event)

    def renew_deadline_passed(self) -> bool:
        """True once two thirds of the duration passed since the Lease was last proven ours."""
        if self._confirmed_at is None:
            return True
        return (self._clock.now() - self._confirmed_at).total_seconds() >= self._duration * 2 / 3

    async def acquire(self) -> LockResult:
        """Take or renew the Lease, or queue for it; cheap when recently renewed by this process (no API call)."""
        now = self._clock.now()
        if self._renewed_at is not None and (now - self._renewed_at).total_seconds() < self._duration / 3:
            return LockResult(acquired=True)
        self._stepped_aside = False
        for _ in range(_MAX_RACES):
            lease = await self._kube.get_or_none(LEASES, LEASE_NAME, self._namespace)
            now = self._clock.now()
            try:
                if lease is None:
                    self._written = await self._kube.create(LEASES, self._body(None, now), self._namespace)
                    log.info("%s acquired the remediation lease in %s", self._me.identity, self._namespace)
                    self._renewed_at = self._confirmed_at = now
                    return LockResult(acquired=True)
                spec = lease.get("spec") or {}
                state = lease_state(spec, me=self._me, now=now)
                waiters = parse_waiters((lease.get("metadata") or {}).get("annotations"))
                me = Waiter(identity=self._me.identity, severity=self._severity, since=self._since or now, seen=now)
                if state is LeaseState.HELD:
                    self._renewed_at = None
                    await self._queue(lease, waiters, me, now)
                    return LockResult(acquired=False, holder=str(spec.get("holderIdentity")))
                if state is not LeaseState.MINE:
                    first = ahead_of(me, waiters, now=now, ttl_seconds=self._duration)
                    if first is not None:
                        self._renewed_at = None
                        await self._queue(lease, waiters, me, now)
                        return LockResult(acquired=False, ahead=first.identity)
                queued = any(w.identity == me.identity for w in waiters)
                if state is LeaseState.MINE and not needs_renewal(spec, now=now) and not queued:
                    self._renewed_at = self._confirmed_at = now
                    return LockResult(acquired=True)
                if state is LeaseState.EXPIRED and spec.get("holderIdentity") != self._me.identity:
                    log.warning("%s takes over the expired remediation lease of %s in %s",
                                self._me.identity, spec.get("holderIdentity"), self._namespace)
                self._written = await self._kube.replace(
                    LEASES, LEASE_NAME, self._body(lease, now, waiters=left(waiters, me.identity) if queued else None),
                    self._namespace)
                self._renewed_at = self._confirmed_at = now
                return LockResult(acquired=True)
            except Conflict:
                continue  # someone wrote the Lease between our read and write: decide again
        lease = await self._kube.get_or_none(LEASES, LEASE_NAME, self._namespace)
        holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
        return LockResult(acquired=holder == self._me.identity, holder=holder)

    async def release(self) -> None:
        """Give the Lease up if we hold it, and leave its queue (idempotent); the next waiter can start at once.

        A Lease we may not read (403: a namespace outside the operator's RBAC, typically one that never got
        as far as being locked) is not ours to release: it is treated as not held, so cancel and delete of
        such an incident complete instead of retrying forever. Should we hold it after all (RBAC revoked
        mid-incident), it expires by itself after its duration.
        """
        self._renewed_at = self._confirmed_at = None
        written, self._written = self._written, None
        for _ in range(_MAX_RACES):
            try:
                # Our own last write is the first guess (no GET): if anyone wrote since, the replace is a Conflict.
                lease = written or await self._kube.get_or_none(LEASES, LEASE_NAME, self._namespace)
                written = None
            except Forbidden as exc:
                log.warning("%s cannot read the remediation lease in %s (%s): treated as not held",
                            self._me.identity, self._namespace, exc)
                return
            if lease is None:
                self._stepped_aside = True
                return
            spec = dict(lease.get("spec") or {})
            waiters = parse_waiters((lease.get("metadata") or {}).get("annotations"))
            queued = any(w.identity == self._me.identity for w in waiters)
            holding = spec.get("holderIdentity") == self._me.identity
            if not holding and not queued:
                self._stepped_aside = True
                return
            if holding:
                spec.pop("holderIdentity", None)
                spec["renewTime"] = format_micro_time(self._clock.now())
            body = {**lease, "spec": spec}
            if queued:
                body = _with_waiters(body, left(waiters, self._me.identity))
            try:
                await self._kube.replace(LEASES, LEASE_NAME, body, self._namespace)
            except Conflict:
                continue
            except (NotFound, Forbidden):
                return  # gone, or we may not write it: it expires by itself after its duration
            if holding:
                log.info("%s released the remediation lease in %s", self._me.identity, self._namespace)
            if self._releases is not None:
                self._releases.released(self._namespace)  # the next in line (if it is ours) looks now
            self._stepped_aside = True
            return

    async def step_aside(self) -> None:
        """`release` for an incident that stops needing the lock for a while (approval, backoff).

        After the first release this process remembers it, so a long wait polls without API calls.
        """
        if not self._stepped_aside:
            await self.release()

    async def _queue(self, lease: dict[str, Any], waiters: list[Waiter], me: Waiter, now: datetime) -> None:
        """Join the queue, or refresh our entry once a third of the duration old (bounded Lease writes)."""
        mine = next((w for w in waiters if w.identity == me.identity), None)
        if mine is not None and (now - mine.seen).total_seconds() < self._duration / 3:
            return
        line = joined(waiters, me, now=now, ttl_seconds=self._duration)
        await self._kube.replace(LEASES, LEASE_NAME, _with_waiters(lease, line), self._namespace)

    def _body(self, lease: dict[str, Any] | None, now: datetime, *, waiters: list[Waiter] | None = None
              ) -> dict[str, Any]:
        previous = (lease or {}).get("spec") or {}
        spec = held_spec(self._me, now=now, duration_seconds=self._duration, previous=previous)
        if lease is None:
            return new_lease(LEASE_NAME, self._namespace, spec,
                             labels={"app.kubernetes.io/managed-by": "tradesense-operator"})
        # resourceVersion stays in metadata: the replace fails with Conflict if the Lease moved on.
        body = {**lease, "spec": spec}
        return body if waiters is None else _with_waiters(body, waiters)


def _with_waiters(lease: dict[str, Any], waiters: list[Waiter]) -> dict[str, Any]:
    """The Lease with its queue annotation set to `waiters` (removed when empty)."""
    metadata = dict(lease.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    if waiters:
        annotations[WAITERS_ANNOTATION] = serialise_waiters(waiters)
    else:
        annotations.pop(WAITERS_ANNOTATION, None)
    metadata["annotations"] = annotations
    return {**lease, "metadata": metadata}
