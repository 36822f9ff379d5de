"""Restart-storm guard: at most N restarts of one Deployment within a sliding hour.

The history lives in an annotation on the Deployment itself (see the service), so it survives
operator restarts and is shared by every incident that touches that Deployment. Each record carries
the restarting step's idempotency stamp: a step resumed after a crash finds its own record and is
neither counted twice nor blocked by itself.

Pure: the verdict and the annotation format; must not read or write the Deployment (the service does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction

HISTORY_ANNOTATION = "ops.tradesense.io/restart-history"
WINDOW = timedelta(hours=1)
RESTART_ACTIONS = frozenset({StepAction.ROLLOUT_RESTART, StepAction.DELETE_PODS})
DEPLOYMENT_PREFIX = "deployment/"
PODS_PREFIX = "pods/"


@dataclass(frozen=True)
class RestartRecord:
    """One restart of the Deployment: when, and by which incident step (its stamp)."""

    at: datetime
    stamp: str


@dataclass(frozen=True)
class StormVerdict:
    """Whether a restart may happen now; when not, why and when it will be allowed."""

    allowed: bool
    recent: int
    limit: int
    next_allowed_at: datetime | None = None
    already_recorded: bool = False

    def message(self, deployment: str) -> str:
        """The reason shown on the incident when the guard blocks."""
        when = self.next_allowed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.next_allowed_at else "later"
        return (
            f"restart-storm guard: deployment/{deployment} was restarted {self.recent} times in the last hour "
            f"(limit {self.limit}); the next restart is allowed at {when}"
        )


def restarted_deployment(step: PlannedStep) -> str | None:
    """The Deployment a step restarts, or None when the step is not a restart of one workload.

    The catalogue names targets `deployment/<name>` for rollout restarts and `pods/<label>=<name>` for
    pod deletion, where the label value is the workload's name (the runbook's `app=<name>` convention).
    """
    if step.action not in RESTART_ACTIONS:
        return None
    target = step.target.strip()
    if target.startswith(DEPLOYMENT_PREFIX):
        return target[len(DEPLOYMENT_PREFIX):] or None
    if target.startswith(PODS_PREFIX):
        _, _, value = target[len(PODS_PREFIX):].partition("=")
        return value or None
    return None


def parse_history(raw: str | None) -> list[RestartRecord]:
    """Records from the annotation value; malformed entries are dropped, never fatal.

    A hand-edited or truncated annotation must not wedge every future incident, and dropping a
    record can only let one more restart through, which the next records will count again.
    """
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    records: list[RestartRecord] = []
    if not isinstance(data, list):
        return records
    for item in data:
        if not isinstance(item, dict):
            continue
        at, stamp = item.get("at"), item.get("by")
        if not isinstance(at, str) or not isinstance(stamp, str):
            continue
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            continue
        if when.tzinfo is None:
            continue
        records.append(RestartRecord(at=when, stamp=stamp))
    return records


def serialise_history(records: Sequence[RestartRecord]) -> str:
    """Annotation value: a compact JSON list, oldest first."""
    ordered = sorted(records, key=lambda r: r.at)
    return json.dumps(
        [{"at": r.at.strftime("%Y-%m-%dT%H:%M:%SZ"), "by": r.stamp} for r in ordered], separators=(",", ":")
    )


def within_window(records: Sequence[RestartRecord], now: datetime, window: timedelta = WINDOW) -> list[RestartRecord]:
    """Records younger than the window (a restart exactly one window old no longer counts)."""
    return [r for r in records if now - r.at < window]


def check_restart(
    records: Sequence[RestartRecord], *, stamp: str, now: datetime, limit: int, window: timedelta = WINDOW
) -> StormVerdict:
    """May the step with this stamp restart the Deployment now?"""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    recent = within_window(records, now, window)
    if any(r.stamp == stamp for r in recent):
        return StormVerdict(allowed=True, recent=len(recent), limit=limit, already_recorded=True)
    if len(recent) < limit:
        return StormVerdict(allowed=True, recent=len(recent), limit=limit)
    ordered = sorted(recent, key=lambda r: r.at)
    # Allowed again when enough of the oldest records age out to leave room for one more.
    freeing = ordered[len(ordered) - limit]
    return StormVerdict(allowed=False, recent=len(recent), limit=limit, next_allowed_at=freeing.at + window)


def record_restart(
    records: Sequence[RestartRecord], *, stamp: str, now: datetime, window: timedelta = WINDOW
) -> list[RestartRecord]:
    """History with this restart added (once per stamp) and records outside the window pruned."""
    recent = within_window(records, now, window)
    if any(r.stamp == stamp for r in recent):
        return recent
    return [*recent, RestartRecord(at=now, stamp=stamp)]
