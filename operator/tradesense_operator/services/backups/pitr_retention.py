"""Retention for the PITR archive: keep the newest N base backups and every WAL segment they need.

Deletion order: base backups beyond the count first, then only the segments older than the oldest
kept base backup's start (domain/backups/pitr.wal_deletions), so a crash between the two leaves extra
WAL, never a kept base backup without its WAL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.wal import DEFAULT_SEGMENT_SIZE
from tradesense_operator.services.backups import wal_archive

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PitrRetentionResult:
    """What was deleted."""

    base_backups: list[str]
    segments: list[int]


def apply_pitr_retention(
    store: BackupStore, label: str, *, keep_base_backups: int, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> PitrRetentionResult:
    """Delete base backups beyond the newest `keep_base_backups`, then the WAL none of the kept ones needs."""
    if keep_base_backups < 1:
        raise ValueError("spec.pointInTime.keepBaseBackups: must be at least 1")
    inv = wal_archive.list_inventory(store, label, segment_size)
    kept, dropped = inv.backups[:keep_base_backups], inv.backups[keep_base_backups:]  # newest first
    for backup in dropped:
        wal_archive.delete_backup(store, inv, backup.id)
        log.info("PITR retention deleted base backup %s", backup.id)
    deletions = pitr.wal_deletions(kept, inv.segments, segment_size)
    for seg in deletions:
        wal_archive.delete_segment(store, inv, seg)
    return PitrRetentionResult([b.id for b in dropped], [s.segno for s in deletions])
