"""Apply retention to a store and sweep leftovers of crashed runs.

Deletion order matters: the manifest goes first, so a crash mid-deletion leaves an orphan data file
(no longer a backup, swept later) rather than a manifest pointing at nothing.
Must not decide what to keep: domain.backups.retention selects, this module only deletes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.manifest import MANIFEST_SUFFIX
from tradesense_operator.domain.backups.naming import EXTENSIONS, is_temporary
from tradesense_operator.domain.backups.retention import RetentionDecision, RetentionItem, select_deletions
from tradesense_operator.services.backups.dump_pipeline import list_backups

log = logging.getLogger(__name__)


def apply_retention(
    store: BackupStore, label: str, *, now: datetime, keep_last: int | None, max_age: timedelta | None
) -> list[RetentionDecision]:
    """Delete what the policy allows among `label`'s complete backups; returns what was deleted and why."""
    backups = {m.id: m for m in list_backups(store, label=label)}
    items = [RetentionItem(m.id, m.finished_at, m.verified) for m in backups.values()]
    decisions = select_deletions(items, now=now, keep_last=keep_last, max_age=max_age)
    for decision in decisions:
        manifest = backups[decision.id]
        store.delete(manifest.manifest_name)
        store.delete(manifest.file_name)
        log.info("retention deleted backup %s (%s)", decision.id, decision.reason)
    return decisions


def sweep_leftovers(store: BackupStore, label: str, *, older_than: float) -> list[str]:
    """Remove temporary files and orphaned data files of `label` last modified before `older_than` (epoch).

    Only call this while no backup of the policy runs (the lock is free or broken): a running backup's
    temporary file is young, but a long dump's could be older than any threshold.
    """
    objects = store.list_objects()
    manifests = {o.name[: -len(MANIFEST_SUFFIX)] for o in objects if o.name.endswith(MANIFEST_SUFFIX)}
    removed: list[str] = []
    for obj in objects:
        base = obj.name.lstrip(".")
        if not base.startswith(label + "_") or obj.modified_at >= older_than:
            continue
        orphan = obj.name.endswith(tuple(EXTENSIONS.values())) and obj.name not in manifests
        if (is_temporary(obj.name) or orphan) and store.delete(obj.name):
            removed.append(obj.name)
    return removed
