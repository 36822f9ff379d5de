"""The queue of incidents waiting for a namespace's remediation Lease, kept in the Lease's annotations.

When the Lease is free, the waiter first in line takes it: the lowest severity number first (a P1 never
waits behind a P4), then the oldest incident, then the identity (a total order, so every replica agrees).
The queue lives on the Lease itself so that all operator replicas see the same line without listing
incidents in namespaces they may not read. Each waiter refreshes its entry while it waits; an entry not
refreshed for a Lease duration (an incident that was deleted or stopped waiting) no longer counts.

Only arithmetic on the annotation's value lives here; reading and writing the Lease is
`services/incidents/lock.py`. Incidents waiting for approval or backing off are not in the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradesense_operator.domain.incident.lease import format_micro_time, parse_time

WAITERS_ANNOTATION = "ops.tradesense.io/waiters"


@dataclass(frozen=True)
class Waiter:
    """One incident waiting for the Lease: its holder identity, severity (P1..P4), creation and last poll."""

    identity: str
    severity: str
    since: datetime
    seen: datetime

    @property
    def rank(self) -> tuple[str, datetime, str]:
        return (self.severity, self.since, self.identity)


def parse_waiters(annotations: Mapping[str, str] | None) -> list[Waiter]:
    """The queue from the Lease's annotations; unreadable entries are dropped (they cannot be ranked)."""
    raw = (annotations or {}).get(WAITERS_ANNOTATION)
    try:
        entries = json.loads(raw) if raw else {}
    except ValueError:
        return []
    if not isinstance(entries, dict):
        return []
    waiters = []
    for identity, entry in entries.items():
        if not isinstance(entry, dict):
            continue
        since, seen = parse_time(entry.get("since")), parse_time(entry.get("seen"))
        severity = entry.get("severity")
        if since is None or seen is None or not isinstance(severity, str):
            continue
        waiters.append(Waiter(identity=str(identity), severity=severity, since=since, seen=seen))
    return waiters


def serialise_waiters(waiters: Iterable[Waiter]) -> str:
    """The annotation value, in queue order (so `kubectl get lease -o yaml` reads as the line)."""
    return json.dumps({
        w.identity: {"severity": w.severity, "since": format_micro_time(w.since), "seen": format_micro_time(w.seen)}
        for w in sorted(waiters, key=lambda w: w.rank)
    }, separators=(",", ":"))


def live(waiters: Iterable[Waiter], *, now: datetime, ttl_seconds: float) -> list[Waiter]:
    """Waiters that refreshed their entry within `ttl_seconds`, in queue order."""
    return sorted((w for w in waiters if now - w.seen < timedelta(seconds=ttl_seconds)), key=lambda w: w.rank)


def ahead_of(me: Waiter, waiters: Iterable[Waiter], *, now: datetime, ttl_seconds: float) -> Waiter | None:
    """The live waiter first in line if it ranks before `me`; None when `me` may take a free Lease."""
    others = [w for w in live(waiters, now=now, ttl_seconds=ttl_seconds) if w.identity != me.identity]
    first = others[0] if others else None
    return first if first is not None and first.rank < me.rank else None


def joined(waiters: Iterable[Waiter], me: Waiter, *, now: datetime, ttl_seconds: float) -> list[Waiter]:
    """The live queue with `me` in it (entry refreshed to `me.seen`); stale entries are dropped."""
    return [*(w for w in live(waiters, now=now, ttl_seconds=ttl_seconds) if w.identity != me.identity), me]


def left(waiters: Iterable[Waiter], identity: str) -> list[Waiter]:
    """The queue without `identity` (it took the Lease or stopped waiting)."""
    return [w for w in waiters if w.identity != identity]
