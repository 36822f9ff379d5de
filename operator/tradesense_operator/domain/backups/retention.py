"""Which backups retention deletes.

Rules, in order: only complete successful backups (those with a manifest) are considered; the newest
`keepLast` are kept; anything older than `maxAge` is deleted; the newest verified backup is never deleted,
and neither is the newest backup of all, so retention can never leave a policy with nothing to restore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetentionItem:
    """What retention needs to know about one stored backup."""

    id: str
    finished_at: datetime
    verified: bool


@dataclass(frozen=True)
class RetentionDecision:
    """A deletion and why."""

    id: str
    reason: str


def select_deletions(
    backups: Sequence[RetentionItem],
    *,
    now: datetime,
    keep_last: int | None,
    max_age: timedelta | None,
) -> list[RetentionDecision]:
    """Backups to delete, oldest first, each with the rule that selected it."""
    if keep_last is not None and keep_last < 1:
        raise ValueError("spec.retention.keepLast: must be at least 1")
    ordered = sorted(backups, key=lambda b: (b.finished_at, b.id), reverse=True)
    protected: set[str] = set()
    if ordered:
        protected.add(ordered[0].id)
    newest_verified = next((b for b in ordered if b.verified), None)
    if newest_verified is not None:
        protected.add(newest_verified.id)
    decisions: list[RetentionDecision] = []
    for index, item in enumerate(ordered):
        if item.id in protected:
            continue
        if keep_last is not None and index >= keep_last:
            decisions.append(RetentionDecision(item.id, f"beyond keepLast={keep_last}"))
        elif max_age is not None and now - item.finished_at > max_age:
            decisions.append(RetentionDecision(item.id, f"older than maxAge ({_human(max_age)})"))
    decisions.reverse()
    return decisions


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
