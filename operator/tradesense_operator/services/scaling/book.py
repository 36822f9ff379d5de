"""Every ScalingPolicy the operator watches, with what it needs to evaluate them in rounds.

Why a book and not one task per policy: a thousand per-object daemons each woke, read and wrote on their own
timer; here one loop asks the book which policies are due and starts them together, so their Prometheus
queries are shared and nothing at all runs for a paused policy. A policy handed out is busy until its
outcome is recorded, so the loop never waits for a whole round (one slow write must not hold back others).
For each policy the book keeps:
- the freshest view: the watched body, or the body our own last status write returned until the watch has
  caught up with it (deciding from the older watched body would act twice);
- the status the last evaluation computed (it is not written every round, see services.scaling.evaluation),
  valid only while the stored object is the one it was computed from — anyone else's write drops it;
- when the policy was last evaluated (injected clock) and, after a transient failure, when to retry (real
  time: a failing API is not a reason to wait for the injected clock).

Owns that bookkeeping; must not evaluate, read or write anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicyStatus
from tradesense_operator.clients.watch_cache import version_at_least
from tradesense_operator.services.scaling.evaluation import next_evaluation

Key = tuple[str, str]
AT_ONCE = datetime.min.replace(tzinfo=UTC)  # `next_evaluation` asked "as of the dawn of time": due at once


def key_of(body: Mapping[str, Any]) -> Key:
    """(namespace, name) of a policy body."""
    meta = body.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def _version(body: Mapping[str, Any] | None) -> str | None:
    value = ((body or {}).get("metadata") or {}).get("resourceVersion")
    return None if value is None else str(value)


@dataclass
class Entry:
    """One policy's view and memory."""

    view: Mapping[str, Any]
    written: Mapping[str, Any] | None = None
    computed: ScalingPolicyStatus | None = None
    computed_at: str | None = None  # resourceVersion the computed status belongs to
    last_evaluated: datetime | None = None
    retry_at: float | None = None  # loop time
    busy: bool = False  # being evaluated: not due again until that evaluation is recorded
    due_at: datetime | None = AT_ONCE
    """When it is next due (None: not until edited); recomputed on change only (the loop asks every round)."""

    def reschedule(self) -> None:
        self.due_at = next_evaluation(self.view, AT_ONCE, self.last_evaluated)


@dataclass(frozen=True)
class Due:
    """A policy to evaluate now: the body to decide from and the status computed from that same body."""

    key: Key
    body: Mapping[str, Any]
    previous: ScalingPolicyStatus | None


class PolicyBook:
    """The watched ScalingPolicies and when each is next due."""

    def __init__(self) -> None:
        self._entries: dict[Key, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def observe(self, body: Mapping[str, Any]) -> None:
        """A watch event (or the initial listing) of a policy."""
        key = key_of(body)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = entry = Entry(view=body)
            entry.reschedule()
            return
        if entry.written is not None:
            if version_at_least(body, entry.written) is False:
                return  # older than our own write: the view we have is newer
            entry.written = None
        entry.view = body
        entry.retry_at = None  # someone changed it: look again now rather than after the retry pause
        entry.reschedule()

    def forget(self, key: Key) -> None:
        """The policy was deleted."""
        self._entries.pop(key, None)

    def due(self, now: datetime, loop_time: float) -> list[Due]:
        """The policies to evaluate now; each is marked busy until `evaluated` or `failed` records the outcome."""
        found = []
        for key, entry in self._entries.items():
            if entry.busy:
                continue
            if entry.retry_at is not None:
                if loop_time < entry.retry_at:
                    continue
            elif entry.due_at is None or entry.due_at > now:
                continue
            previous = entry.computed if entry.computed_at == _version(entry.view) else None
            found.append(Due(key, entry.view, previous))
            entry.busy = True
        return found

    def next_due(self, now: datetime) -> datetime | None:
        """The earliest time (injected clock) a policy becomes due; None: none until a watch event."""
        times = [e.due_at for e in self._entries.values()
                 if not e.busy and e.retry_at is None and e.due_at is not None]
        return max(min(times), now) if times else None

    def next_retry(self) -> float | None:
        """The earliest loop time a failed evaluation is retried."""
        return min((e.retry_at for e in self._entries.values() if not e.busy and e.retry_at is not None),
                   default=None)

    def evaluated(self, key: Key, *, now: datetime, decided_from: Mapping[str, Any],
                  written: Mapping[str, Any] | None, computed: ScalingPolicyStatus | None) -> None:
        """Record an evaluation: what it decided from, what it wrote and what it computed."""
        entry = self._entries.get(key)
        if entry is None:
            return  # deleted meanwhile
        entry.last_evaluated, entry.retry_at, entry.busy = now, None, False
        if written is not None:
            if version_at_least(entry.view, written) is not True:  # the watch has not shown our write yet
                entry.view, entry.written = written, written
        elif version_at_least(entry.view, decided_from) is False:
            entry.view = decided_from  # re-read after a Conflict: newer than what the watch showed yet
        basis = written if written is not None else decided_from
        entry.computed, entry.computed_at = computed, _version(basis)
        entry.reschedule()

    def failed(self, key: Key, *, retry_at: float) -> None:
        """A transient failure: evaluate again at `retry_at` (loop time) unless the policy changes first."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.retry_at, entry.busy = retry_at, False
