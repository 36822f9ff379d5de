"""Bounded histories kept in the ScalingPolicy's status (they must survive operator restarts).

Recommendations: only those inside the longest stabilization window matter, and within it an entry is
redundant when a later one is >= it (it can never be the window's max) and a later one is <= it (never
the min): dropping such entries is exact, so the list holds at most about 2 × (maxReplicas − minReplicas)
entries whatever the polling interval. Scale events: only those inside the longest policy period matter;
beyond the cap the two oldest same-direction events are merged at the later timestamp, which can only
overstate recent changes — rate limits get stricter, never looser.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tradesense_operator.api.v1alpha1.scaling import Recommendation, ScaleEvent

MAX_RECOMMENDATIONS = 500
MAX_SCALE_EVENTS = 500


def prune_recommendations(
    history: Sequence[Recommendation], window_seconds: int, now: datetime, cap: int = MAX_RECOMMENDATIONS
) -> list[Recommendation]:
    """Entries that can still affect a stabilization window, oldest first, at most `cap`."""
    cutoff = now - timedelta(seconds=window_seconds)
    live = sorted((r for r in history if r.timestamp > cutoff), key=lambda r: r.timestamp)
    kept: list[Recommendation] = []
    later_max: int | None = None
    later_min: int | None = None
    for rec in reversed(live):
        dominated = later_max is not None and later_min is not None and later_max >= rec.replicas >= later_min
        if not dominated:
            kept.append(rec)
        later_max = rec.replicas if later_max is None else max(later_max, rec.replicas)
        later_min = rec.replicas if later_min is None else min(later_min, rec.replicas)
    kept.reverse()
    return kept[-cap:]


def prune_scale_events(
    events: Sequence[ScaleEvent], period_seconds: int, now: datetime, cap: int = MAX_SCALE_EVENTS
) -> list[ScaleEvent]:
    """Events inside the longest policy period, oldest first, merged conservatively beyond `cap`."""
    cutoff = now - timedelta(seconds=period_seconds)
    live = sorted((e for e in events if e.timestamp > cutoff), key=lambda e: e.timestamp)
    while len(live) > cap:
        first = live[0]
        up = first.to_replicas > first.from_replicas
        partner = next(
            (i for i in range(1, len(live)) if (live[i].to_replicas > live[i].from_replicas) == up), None
        )
        if partner is None:
            live.pop(0)  # every later event goes the other way: the oldest is the least relevant one
            continue
        other = live[partner]
        change = (first.to_replicas - first.from_replicas) + (other.to_replicas - other.from_replicas)
        # Only the difference is used by the rate policies; shift both ends when `from` would go below zero.
        start = other.to_replicas - change
        end = other.to_replicas
        if min(start, end) < 0:
            start, end = start - min(start, end), end - min(start, end)
        merged = ScaleEvent(timestamp=other.timestamp, from_replicas=start, to_replicas=end)
        live[partner] = merged
        live.pop(0)
    return live
