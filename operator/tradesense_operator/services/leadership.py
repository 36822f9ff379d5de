"""Leader election over a coordination.k8s.io/v1 Lease, with client-go's semantics.

Why a Lease and not kopf peering: kopf peering with several operators of the SAME priority does not let
one of them act — kopf pauses all of them (and only warns), so two replicas of one Deployment would both sit
idle; peering decides by priority, not by who came first. What we need is exactly one replica acting and the
other ready to take over, which is what a Lease gives, and what controller-runtime operators use, so
`kubectl get lease -n <operator ns>` shows who leads, like everywhere else. kopf itself runs standalone.

The rules (the same as client-go's leaderelection package):
- every write is guarded by the Lease's resourceVersion: of two candidates writing at once, one gets
  a Conflict and stays a follower;
- a follower takes over only after it has seen the SAME Lease record unchanged for leaseDuration on its
  own clock (observed time, not the holder's renewTime), so clock skew between nodes cannot shorten it;
- the leader renews every retry period; if it cannot renew within the renew deadline (shorter than the
  lease duration) it gives leadership up before anyone else may take it. Each renewal is bounded by that
  deadline, as client-go bounds it with a context timeout: an API server that merely answers slowly (a
  request still in flight at the deadline) counts as a failed renewal, never as "still leading". The
  process then exits (see `cli/run.py`) rather than keep acting on a stale belief that it leads.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tradesense_operator.clients.errors import ClientError, Conflict, NotFound
from tradesense_operator.clients.kube import LEASES, KubeClient
from tradesense_operator.domain.clock import Clock
from tradesense_operator.domain.incident.lease import format_micro_time, held_spec, new_lease

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "tradesense-operator-leader"
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ElectionTiming:
    """client-go's defaults: lease 15 s, renew deadline 10 s, retry period 2 s."""

    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("leader election needs 0 < retry period < renew deadline < lease duration "
                             f"(got {self.retry_seconds}, {self.renew_deadline_seconds}, {self.lease_seconds})")


class LeaderElector:
    """Acquire, keep and release one Lease for one identity."""

    def __init__(
        self,
        kube: KubeClient,
        clock: Clock,
        *,
        namespace: str,
        identity: str,
        name: str = DEFAULT_LEASE_NAME,
        timing: ElectionTiming | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        self._kube = kube
        self._clock = clock
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or ElectionTiming()
        self._sleep = sleep
        self._jitter = jitter
        self._observed: Mapping[str, Any] | None = None   # the Lease spec last seen
        self._observed_at: datetime | None = None          # when it was first seen in that form (our clock)
        self._renewed_at: datetime | None = None           # our last successful write as leader

    # -- one round ------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt: True when we hold the Lease afterwards. Never raises for API trouble."""
        try:
            return await self._try()
        except Conflict:
            return False  # someone else wrote between our read and our write
        except ClientError as exc:
            log.warning("leader election: cannot reach the Lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def _try(self) -> bool:
        now = self._clock.now()
        lease = await self._kube.get_or_none(LEASES, self.name, self.namespace)
        if lease is None:
            await self._kube.create(LEASES, self._body(None, now), self.namespace)
            self._won(now)
            return True
        spec = dict(lease.get("spec") or {})
        if spec != self._observed:
            self._observed, self._observed_at = spec, now
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and not self._expired(spec, now):
            return False
        await self._kube.replace(LEASES, self.name, self._body(lease, now), self.namespace)
        if holder != self.identity:
            log.info("leader election: %s took the Lease %s/%s%s", self.identity, self.namespace, self.name,
                     f" over from {holder}" if holder else "")
        self._won(now)
        return True

    def _expired(self, spec: Mapping[str, Any], now: datetime) -> bool:
        duration = spec.get("leaseDurationSeconds")
        if not isinstance(duration, int) or duration <= 0:
            duration = int(self.timing.lease_seconds)
        assert self._observed_at is not None  # set by _try before this is asked
        return now >= self._observed_at + timedelta(seconds=duration)

    def _won(self, now: datetime) -> None:
        self._renewed_at = now
        self._observed_at = now
        # What we wrote is what we will read back next round: do not count that as a change by others.
        self._observed = None

    def _body(self, lease: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        previous = (lease or {}).get("spec") or {}
        spec = held_spec(self.identity, now=now, duration_seconds=max(int(self.timing.lease_seconds), 1),
                         previous=previous)
        if lease is None:
            return new_lease(self.name, self.namespace, spec, labels={"app.kubernetes.io/name": "tradesense-operator"})
        return {**lease, "spec": spec}  # metadata.resourceVersion kept: a stale write is a Conflict

    # -- loops ----------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Block until we lead (retrying every retry period, jittered like client-go)."""
        announced = False
        while not await self.try_acquire_or_renew():
            if not announced:
                log.info("leader election: %s waits for the Lease %s/%s", self.identity, self.namespace, self.name)
                announced = True
            await self._sleep(self.timing.retry_seconds * (1.0 + 0.2 * self._jitter()))
        log.info("leader election: %s leads (Lease %s/%s)", self.identity, self.namespace, self.name)

    async def keep(self) -> None:
        """Renew every retry period; return when a renewal has not succeeded within the renew deadline."""
        while True:
            await self._sleep(self.timing.retry_seconds)
            if not await self._renew_within_deadline():
                return

    def _deadline_left(self) -> float:
        """Seconds until the renew deadline, counted from our last successful renewal."""
        now = self._clock.now()
        last = self._renewed_at or now
        return self.timing.renew_deadline_seconds - (now - last).total_seconds()

    async def _renew_within_deadline(self) -> bool:
        """One renewal round, bounded by the renew deadline; False when leadership must be given up."""
        try:
            renewed: bool | None = await self._bounded(self.try_acquire_or_renew())
        except TimeoutError:
            renewed = None
        if renewed is None:
            log.error("leader election: %s got no answer renewing the Lease %s/%s within the renew deadline "
                      "(%.0fs): leadership lost", self.identity, self.namespace, self.name,
                      self.timing.renew_deadline_seconds)
            return False
        if renewed:
            return True
        if self._deadline_left() <= 0:
            log.error("leader election: %s could not renew the Lease %s/%s for %.0fs: leadership lost",
                      self.identity, self.namespace, self.name, self.timing.renew_deadline_seconds)
            return False
        try:
            taken = await self._bounded(self._held_by_other())
        except TimeoutError:
            return False
        if taken:
            log.error("leader election: %s lost the Lease %s/%s to another holder",
                      self.identity, self.namespace, self.name)
            return False
        return True

    async def _bounded(self, call: Awaitable[bool]) -> bool:
        """`call` cancelled (TimeoutError) when the renew deadline passes before it answers."""
        left = self._deadline_left()
        if left <= 0:
            if asyncio.iscoroutine(call):
                call.close()
            raise TimeoutError
        return await asyncio.wait_for(call, timeout=left)

    async def _held_by_other(self) -> bool:
        try:
            lease = await self._kube.get_or_none(LEASES, self.name, self.namespace)
        except ClientError:
            return False
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
        return bool(holder) and holder != self.identity

    async def release(self) -> None:
        """Give the Lease up on a clean shutdown so a follower need not wait for it to expire."""
        try:
            lease = await self._kube.get_or_none(LEASES, self.name, self.namespace)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1,
                    "renewTime": format_micro_time(self._clock.now())}
            await self._kube.replace(LEASES, self.name, {**lease, "spec": spec}, self.namespace)
            log.info("leader election: %s released the Lease %s/%s", self.identity, self.namespace, self.name)
        except (Conflict, NotFound):
            return  # someone else moved first: nothing of ours to release
        except ClientError as exc:
            log.warning("leader election: could not release the Lease %s/%s: %s", self.namespace, self.name, exc)


async def lead(elector: LeaderElector, work: Callable[[], Awaitable[None]], *, on_lost: Callable[[], None]) -> bool:
    """Wait for leadership, then run `work()` while renewing.

    Returns True when `work` ended by itself (the Lease is released), False when leadership was lost:
    then `on_lost()` is called first — the CLI exits the process there, so nothing acts on a lost
    Lease — and `work` is cancelled as a fallback for callers whose `on_lost` returns.
    """
    await elector.acquire()
    worker = asyncio.ensure_future(work())
    keeper = asyncio.ensure_future(elector.keep())
    try:
        done, _ = await asyncio.wait({worker, keeper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        worker.cancel()
        keeper.cancel()
        raise
    if keeper in done and worker not in done:
        on_lost()
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        return False
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    await elector.release()
    worker.result()  # re-raise the work's own failure
    return True
