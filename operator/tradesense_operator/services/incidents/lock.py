"""The per-namespace remediation lock: a coordination.k8s.io/v1 Lease named `tradesense-remediation`.

Only one incident changes a target namespace at a time. Writes are guarded by resourceVersion (a
create that finds the Lease, or a replace on a stale version, is a Conflict: someone else moved
first, so re-read and decide again). A holder that stops renewing (operator crash, deleted incident)
loses the Lease after its duration, and the next incident takes it over. While an action runs, the
Lease is renewed in the background (`fencing.py`), and the renew deadline (two thirds of the
duration) is when a holder that cannot renew must stop acting.

Incidents waiting for the Lease queue in its annotations (`domain/incident/lock_queue.py`): a holder's
release hands the Lease to the waiter first in line (severity, then age) in the same write, and a free
Lease goes to the first in line, not to whoever polls first. Waiters do not poll the Lease: a release by
an incident of this process wakes the waiter it was handed to at once (`Releases`, which carries the
written Lease, so that waiter takes it without a read), and every waiter re-checks after a third of the
Lease duration anyway — when it must refresh its queue entry — which is how a hand-over or release by
another replica (or an expired holder) is noticed. The Lease stays the only truth: what this process last
saw of it is only a guess that every write is guarded against by resourceVersion. This module must not decide
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
from tradesense_operator.clients.watch_cache import version_at_least
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
    parse_time,
)
from tradesense_operator.domain.incident.lock_queue import (
    WAITERS_ANNOTATION,
    Waiter,
    ahead_of,
    joined,
    left,
    live,
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
    """What this process knows of each namespace's Lease, and who of its waiters to wake when it changes.

    `seen` keeps the newest Lease body a lock of this process wrote or read (newest by resourceVersion): it
    is every lock's first guess instead of a GET. A guess is only ever acted on through a write guarded by
    its resourceVersion (a Conflict means someone else wrote since: read again), or to confirm a Lease that
    names us as holder and is not due for renewal (nobody else may write a held, unexpired Lease's holder).
    `released` wakes the waiter the Lease was handed to, or, when it was left free, the listener first in
    line (severity, then age, as the queue ranks); a waiter of another replica finds it at its re-check.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, dict[asyncio.Event, tuple[str, datetime, str]]] = {}
        self._seen: dict[str, dict[str, Any]] = {}
        self._here: dict[str, set[str]] = {}  # identities of this process holding or queued, per namespace
        self._turns: dict[str, asyncio.Lock] = {}

    def listen(self, namespace: str, rank: tuple[str, datetime, str]) -> asyncio.Event:
        """An event that is set when a release in `namespace` makes this listener the next to look;
        give it back with `stop`.

        Already set when the Lease as this process last saw it was handed to this listener: a release that
        came while its incident was still recording that it waits (between joining the queue and listening)
        must not leave it asleep until its re-check, a third of the Lease duration later.
        """
        event = asyncio.Event()
        self._listeners.setdefault(namespace, {})[event] = rank
        known = self._seen.get(namespace)
        if known is not None and (known.get("spec") or {}).get("holderIdentity") == rank[2]:
            event.set()
        return event

    def stop(self, namespace: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(namespace)
        if listeners is not None:
            listeners.pop(event, None)
            if not listeners:
                del self._listeners[namespace]

    def turn(self, namespace: str) -> asyncio.Lock:
        """Taken around every Lease read-decide-write of this process in `namespace`: its locks then start from
        each other's writes and never race each other into a Conflict (other replicas still can)."""
        return self._turns.setdefault(namespace, asyncio.Lock())

    def engage(self, namespace: str, identity: str) -> None:
        """`identity`, an incident of this process, holds or waits for the Lease of `namespace`."""
        self._here.setdefault(namespace, set()).add(identity)

    def disengage(self, namespace: str, identity: str) -> None:
        """`identity` released the Lease and left its queue (or this process forgets it)."""
        here = self._here.get(namespace)
        if here is not None:
            here.discard(identity)
            if not here:
                del self._here[namespace]

    def here(self, namespace: str) -> frozenset[str]:
        """Incidents of this process holding or waiting for the Lease of `namespace`: they are alive even when
        their queue entries are older than a Lease duration (they skip refreshes while a holder of this
        process has the Lease, see `NamespaceLock.acquire`)."""
        return frozenset(self._here.get(namespace, ()))

    def known(self, namespace: str) -> dict[str, Any] | None:
        """The newest Lease of `namespace` this process has seen (None when it knows none)."""
        return self._seen.get(namespace)

    def seen(self, namespace: str, lease: dict[str, Any] | None) -> None:
        """Remember a Lease as read or as a write answered it; None (read as absent) forgets it."""
        if lease is None:
            self._seen.pop(namespace, None)
            return
        prior = self._seen.get(namespace)
        if prior is None or version_at_least(lease, prior) is not False:
            self._seen[namespace] = lease  # at least as new, or not comparable: the later word counts

    def released(self, namespace: str, lease: dict[str, Any]) -> None:
        """Wake the waiter of this process the written `lease` was handed to, else (left free) the first in line."""
        listeners = self._listeners.get(namespace)
        if not listeners:
            return
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        if holder:
            for event, rank in listeners.items():
                if rank[2] == holder:
                    event.set()
            return  # handed to a waiter of another replica (or to nobody of ours): nobody here may take it
        min(listeners.items(), key=lambda item: item[1])[0].set()


class NamespaceLock:
    """Acquire, renew and release the remediation Lease of one target namespace for one incident."""

    def __init__(
        self, kube: KubeClient, clock: Clock, *, namespace: str, me: Holder, duration_seconds: int,
        severity: str = "P3", since: datetime | None = None, releases: Releases | None = None,
    ) -> None:
        self._releases = releases if releases is not None else Releases()
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
        self._written: dict[str, Any] | None = None   # the Lease as our last write returned it (first guess)

    @property
    def duration_seconds(self) -> int:
        return self._duration

    @property
    def engaged(self) -> bool:
        """True once this process acquired or queued for the Lease and has not released it since."""
        return not self._stepped_aside and (self._written is not None or self._confirmed_at is not None)

    def listen(self) -> asyncio.Event | None:
        """An event set when a release in this process makes us the next to look (None without `Releases`)."""
        rank = (self._severity, self._since or datetime.max.replace(tzinfo=UTC), self._me.identity)
        return self._releases.listen(self._namespace, rank)

    def stop_listening(self, event: asyncio.Event) -> None:
        self._releases.stop(self._namespace, event)

    def renew_deadline_passed(self) -> bool:
        """True once two thirds of the duration passed since the Lease was last proven ours."""
        if self._confirmed_at is None:
            return True
        return (self._clock.now() - self._confirmed_at).total_seconds() >= self._duration * 2 / 3

    async def acquire(self) -> LockResult:
        """Take or renew the Lease, or queue for it; cheap when recently renewed by this process (no API call).

        Starts from the Lease as this process last saw it (`Releases.known`) rather than a GET: a Lease
        handed to us by a release in this process is confirmed without any request, and joining the queue
        or taking a free Lease is one guarded write. A guess that would only let us wait is read again first.
        """
        now = self._clock.now()
        if self._renewed_at is not None and (now - self._renewed_at).total_seconds() < self._duration / 3:
            return LockResult(acquired=True)
        self._stepped_aside = False
        async with self._releases.turn(self._namespace):
            return await self._acquire()

    async def _acquire(self) -> LockResult:
        guess = self._known()
        for _ in range(_MAX_RACES):
            lease, fresh = (guess, False) if guess is not None else (await self._read(), True)
            guess = None
            try:
                result = await self._decide(lease, fresh=fresh)
            except (Conflict, NotFound):
                continue  # someone wrote (or removed) the Lease since we read it: decide again from a read
            if result is not None:
                return result
        lease = await self._read()
        holder = str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")
        return LockResult(acquired=holder == self._me.identity, holder=holder)

    async def _decide(self, lease: dict[str, Any] | None, *, fresh: bool) -> LockResult | None:
        """One decision on `lease` (read now if `fresh`, else a guess); None when it must be read again."""
        now = self._clock.now()
        if lease is None:
            self._wrote(await self._kube.create(LEASES, self._body(None, now), self._namespace))
            log.info("%s acquired the remediation lease in %s", self._me.identity, self._namespace)
            self._renewed_at = self._confirmed_at = now
            self._releases.engage(self._namespace, self._me.identity)
            return LockResult(acquired=True)
        spec = lease.get("spec") or {}
        state = lease_state(spec, me=self._me, now=now)
        waiters = parse_waiters((lease.get("metadata") or {}).get("annotations"))
        me = Waiter(identity=self._me.identity, severity=self._severity, since=self._since or now, seen=now)
        queued = any(w.identity == me.identity for w in waiters)
        waiting: LockResult | None = None
        if state is LeaseState.HELD:
            waiting = LockResult(acquired=False, holder=str(spec.get("holderIdentity")))
        elif state is not LeaseState.MINE:
            first = ahead_of(me, waiters, now=now, ttl_seconds=self._duration)
            waiting = LockResult(acquired=False, ahead=first.identity) if first is not None else None
        if waiting is not None:
            self._renewed_at = None
            self._releases.engage(self._namespace, me.identity)
            if queued and not fresh and state is LeaseState.HELD and spec.get("holderIdentity") in self._here():
                # Held, unexpired, by an incident of this process: only it can change the holder before the
                # Lease expires, and its release hands over to us or wakes us. No refresh, no read needed.
                return waiting
            if not await self._queue(lease, waiters, me, now) and not fresh:
                return None  # waiting on a guess alone could miss a release by another replica: read first
            return waiting
        if state is LeaseState.MINE and not needs_renewal(spec, now=now) and not queued:
            # Ours and not expired: nobody else may have taken it since, whether we read it or wrote it
            # (a hand-over by a release in this process). Proven ours as of its renewTime, not now.
            proven = now if fresh else (parse_time(spec.get("renewTime")) or now)
            self._renewed_at = self._confirmed_at = proven
            self._written = lease
            self._releases.engage(self._namespace, self._me.identity)
            return LockResult(acquired=True)
        if state is LeaseState.EXPIRED and spec.get("holderIdentity") != self._me.identity:
            log.warning("%s takes over the expired remediation lease of %s in %s",
                        self._me.identity, spec.get("holderIdentity"), self._namespace)
        self._wrote(await self._kube.replace(
            LEASES, LEASE_NAME, self._body(lease, now, waiters=left(waiters, me.identity) if queued else None),
            self._namespace))
        self._renewed_at = self._confirmed_at = now
        self._releases.engage(self._namespace, self._me.identity)
        return LockResult(acquired=True)

    async def release(self) -> None:
        """Give the Lease up if we hold it, and leave its queue (idempotent).

        With waiters queued, the Lease goes to the first live one in line in the same write (holderIdentity,
        fresh acquire/renew times, its queue entry removed): a waiter of this process is woken and finds it
        its own without a read; one of another replica finds it at its next re-check, well within the
        duration. Should the new holder never use it (its incident gone meanwhile), it expires after its
        duration like any holder's that stopped renewing, or its release hands it on.

        A Lease we may not read (403: a namespace outside the operator's RBAC, typically one that never got
        as far as being locked) is not ours to release: it is treated as not held, so cancel and delete of
        such an incident complete instead of retrying forever. Should we hold it after all (RBAC revoked
        mid-incident), it expires by itself after its duration.
        """
        self._renewed_at = self._confirmed_at = None
        async with self._releases.turn(self._namespace):
            await self._release()

    async def _release(self) -> None:
        guess, self._written = self._known(), None
        for _ in range(_MAX_RACES):
            try:
                # The last Lease we saw is the first guess (no GET): if anyone wrote since, the replace is a Conflict.
                lease, fresh = (guess, False) if guess is not None else (await self._read(), True)
            except Forbidden as exc:
                log.warning("%s cannot read the remediation lease in %s (%s): treated as not held",
                            self._me.identity, self._namespace, exc)
                return
            guess = None
            if lease is None:
                self._releases.disengage(self._namespace, self._me.identity)
                self._stepped_aside = True
                return
            spec = dict(lease.get("spec") or {})
            waiters = parse_waiters((lease.get("metadata") or {}).get("annotations"))
            queued = any(w.identity == self._me.identity for w in waiters)
            holding = spec.get("holderIdentity") == self._me.identity
            if not holding and not queued:
                if not fresh:
                    continue  # the guess may predate a hand-over to us: read it
                self._releases.disengage(self._namespace, self._me.identity)
                self._stepped_aside = True
                return
            now = self._clock.now()
            here = self._releases.here(self._namespace)
            others = left(waiters, self._me.identity)
            line = sorted({*live(others, now=now, ttl_seconds=self._duration),
                           *(w for w in others if w.identity in here)}, key=lambda w: w.rank)
            heir = line[0] if holding and line else None
            if heir is not None:
                spec = held_spec(heir.identity, now=now, duration_seconds=self._duration, previous=spec)
            elif holding:
                spec.pop("holderIdentity", None)
                spec["renewTime"] = format_micro_time(now)
            body = {**lease, "spec": spec}
            if queued or heir is not None:
                body = _with_waiters(body, left(line, heir.identity) if heir is not None
                                     else left(waiters, self._me.identity))
            try:
                written = await self._kube.replace(LEASES, LEASE_NAME, body, self._namespace)
            except Conflict:
                continue
            except (NotFound, Forbidden):
                self._releases.disengage(self._namespace, self._me.identity)
                return  # gone, or we may not write it: it expires by itself after its duration
            self._releases.seen(self._namespace, written)
            self._releases.disengage(self._namespace, self._me.identity)
            if heir is not None:
                log.info("%s handed the remediation lease in %s to %s", self._me.identity, self._namespace,
                         heir.identity)
            elif holding:
                log.info("%s released the remediation lease in %s", self._me.identity, self._namespace)
            self._releases.released(self._namespace, written)  # the next in line (if it is ours) looks now
            self._stepped_aside = True
            return

    async def step_aside(self) -> None:
        """`release` for an incident that stops needing the lock for a while (approval, backoff).

        After the first release this process remembers it, so a long wait polls without API calls.
        """
        if not self._stepped_aside:
            await self.release()

    def _here(self) -> frozenset[str]:
        return self._releases.here(self._namespace)

    def forget(self) -> None:
        """This process stops driving the incident (its daemon ended): it no longer counts as alive here."""
        self._releases.disengage(self._namespace, self._me.identity)

    def _known(self) -> dict[str, Any] | None:
        """The newest Lease this process saw: a guess to write against, never proof on its own."""
        known = self._releases.known(self._namespace)
        return known if known is not None else self._written

    async def _read(self) -> dict[str, Any] | None:
        lease = await self._kube.get_or_none(LEASES, LEASE_NAME, self._namespace)
        self._releases.seen(self._namespace, lease)
        return lease

    def _wrote(self, lease: dict[str, Any]) -> None:
        self._written = lease
        self._releases.seen(self._namespace, lease)

    async def _queue(self, lease: dict[str, Any], waiters: list[Waiter], me: Waiter, now: datetime) -> bool:
        """Join the queue, or refresh our entry once a third of the duration old (bounded Lease writes);
        False when our entry was fresh enough and nothing was written."""
        mine = next((w for w in waiters if w.identity == me.identity), None)
        if mine is not None and (now - mine.seen).total_seconds() < self._duration / 3:
            return False
        line = joined(waiters, me, now=now, ttl_seconds=self._duration)
        self._wrote(await self._kube.replace(LEASES, LEASE_NAME, _with_waiters(lease, line), self._namespace))
        return True

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
