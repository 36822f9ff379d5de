"""The bounded `status.backups[]` inventory and the active-backup lock.

Status must stay small (etcd objects are limited to ~1.5 MiB and every watch event carries them), so the
inventory keeps the newest entries and always the newest verified one, which restores look for.
Pure: decides on the records and times it is given; must not read a clock or write status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from tradesense_operator.api.v1alpha1.backup import BackupRecord

DEFAULT_INVENTORY_LIMIT = 50


def bound_inventory(records: Sequence[BackupRecord], limit: int = DEFAULT_INVENTORY_LIMIT) -> list[BackupRecord]:
    """Newest first, at most `limit`, always including the newest verified record."""
    if limit < 1:
        raise ValueError("inventory limit must be at least 1")
    ordered = sorted(records, key=lambda r: (r.started_at, r.id), reverse=True)
    kept = ordered[:limit]
    newest_verified = next((r for r in ordered if r.verified), None)
    if newest_verified is not None and newest_verified not in kept:
        kept = [*kept[: limit - 1], newest_verified]
    return kept


class LockState(StrEnum):
    """State of the one-backup-at-a-time lock (`status.activeBackup`)."""

    FREE = "Free"
    HELD = "Held"
    STALE = "Stale"


def lock_state(
    active_backup: str | None, started_at: datetime | None, *, now: datetime, stale_after: timedelta
) -> LockState:
    """Held while a backup runs; stale once it has run longer than any backup may (its runner crashed)."""
    if not active_backup:
        return LockState.FREE
    if started_at is None or now - started_at > stale_after:
        return LockState.STALE
    return LockState.HELD
