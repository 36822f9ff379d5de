"""The database half of the runbook's restore ("Restore Operations", "Data Corruption → restore").

The Kubernetes half (READ_ONLY, scale to 0 and back, smoke tests) is the incident engine's; these are
the steps between, each idempotent and safe to re-run after a crash:

1. `find_clean_backup` – newest verified backup (or a named one), checksum re-checked; unverified or
   mismatched backups are refused with the reason.
2. `take_safety_backup` – a backup of the current database, found again by its stamp on a re-run.
3. `terminate_connections` – end remaining sessions.
4. `restore_database` – drop, recreate, restore (dump_pipeline.restore_into: one transaction, or N sessions
   for directory and large plain backups), ANALYZE. Progress is a marker in
   `COMMENT ON DATABASE` on the target server ("restoring"/"restored" + stamp), so a re-run after a
   crash recognises its own half-restored database (or its absence after the drop) and finishes the job
   instead of failing or dropping a database it has already restored.

Must not touch the Kubernetes API (the incident engine does) nor restore an unverified backup.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.clock import Clock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupRequest, IntegrityError

log = logging.getLogger(__name__)

SAFETY_KIND = "safety"
SAFETY_LABEL_SUFFIX = "-safety"
MARKER_PREFIX = "tradesense-operator restore"


class RestoreRefused(Exception):
    """The restore must not proceed; the message is the reason an operator reads."""


@dataclass(frozen=True)
class RestoreReport:
    """What `restore_database` did."""

    backup_id: str
    database: str
    already_done: bool
    table_counts: dict[str, int] = field(default_factory=dict)


def _marker(state: str, stamp: str, backup_id: str) -> str:
    return f"{MARKER_PREFIX} {state} stamp={stamp} backup={backup_id}"


# -- synchronous core ---------------------------------------------------------------------------


def choose_backup(
    store: BackupStore, *, label: str | None = None, database: str | None = None, backup_id: str | None = None
) -> BackupManifest:
    """The backup to restore: `backup_id` if given, else the newest verified non-safety backup."""
    if backup_id is not None:
        try:
            chosen = dump_pipeline.find_backup(store, backup_id)
        except NotFound as exc:
            raise RestoreRefused(f"backup {backup_id} does not exist or is incomplete") from exc
        if not chosen.verified:
            why = chosen.verification.detail if chosen.verification else "it was never verified"
            raise RestoreRefused(f"backup {backup_id} is not verified: {why}")
        return chosen
    candidates = [
        m for m in dump_pipeline.list_backups(store, label=label)
        if m.kind != SAFETY_KIND and (database is None or m.database == database)
    ]
    verified = [m for m in candidates if m.verified]
    if not verified:
        raise RestoreRefused(
            f"no verified backup to restore ({len(candidates)} complete backup(s), none verified)"
            if candidates else "no complete backup to restore"
        )
    return verified[0]


def check_backup(store: BackupStore, manifest: BackupManifest) -> None:
    """Re-read and checksum the chosen file now; RestoreRefused on any mismatch."""
    try:
        dump_pipeline.check_integrity(store, manifest)
    except (IntegrityError, NotFound) as exc:
        raise RestoreRefused(f"backup {manifest.id} failed its checksum/integrity check: {exc}") from exc


def find_clean_backup_sync(
    store: BackupStore, *, label: str | None = None, database: str | None = None, backup_id: str | None = None
) -> BackupManifest:
    """choose_backup + check_backup."""
    manifest = choose_backup(store, label=label, database=database, backup_id=backup_id)
    check_backup(store, manifest)
    return manifest


def take_safety_backup_sync(
    store: BackupStore, target: PgTarget, *, stamp: str, label: str, clock: Clock, fmt: BackupFormat | None = None
) -> BackupManifest | None:
    """Back up the current database before it is replaced; the same stamp returns the same backup.

    None when the database does not exist (nothing to save, e.g. re-run after the drop). `fmt` defaults
    to the format of the policy's newest backup: the safety copy is on the restore's critical path, so a
    policy that chose a fast format gets a fast safety copy too.
    """
    for existing in dump_pipeline.list_backups(store, label=label + SAFETY_LABEL_SUFFIX):
        if existing.kind == SAFETY_KIND and existing.stamp == stamp:
            return existing
    if not pgdump.database_exists(target, target.dbname):
        return None
    if fmt is None:
        newest = dump_pipeline.list_backups(store, label=label)
        fmt = newest[0].format if newest else BackupFormat.PLAIN_GZIP
    request = BackupRequest(target, label + SAFETY_LABEL_SUFFIX, fmt, kind=SAFETY_KIND, stamp=stamp)
    return dump_pipeline.run_verified_backup(store, request, clock=clock, integrity=True)


def restore_database_sync(
    store: BackupStore,
    target: PgTarget,
    manifest: BackupManifest,
    *,
    stamp: str,
    safety_backup_id: str | None,
    workers: int | None = None,
) -> RestoreReport:
    """Drop, recreate, restore and ANALYZE `target.dbname` from `manifest`; resumable after a crash.

    `workers`: pg_restore -j for directory-format backups (default: the CPUs available).
    """
    name = target.dbname
    done = _marker("restored", stamp, manifest.id)
    in_progress = _marker("restoring", stamp, manifest.id)
    try:
        current = pgdump.database_comment(target, name)
        exists = True
    except NotFound:
        current, exists = None, False
    if current == done:
        return RestoreReport(manifest.id, name, already_done=True, table_counts=pgdump.table_counts(target))
    if exists and current != in_progress:
        if safety_backup_id is None:
            raise RestoreRefused(f"database {name} exists and no safety backup was taken; refusing to drop it")
        log.warning("dropping database %s to restore %s (safety backup %s)", name, manifest.id, safety_backup_id)
    if exists:
        pgdump.terminate_connections(target, name)
        pgdump.drop_database(target, name)
    pgdump.create_database(target, name, comment=in_progress)
    try:
        dump_pipeline.restore_into(target, store, manifest, workers=workers)
    except IntegrityError as exc:  # the file changed since it was checked; no row was committed
        raise RestoreRefused(f"backup {manifest.id} failed its checksum during the restore: {exc}") from exc
    pgdump.analyze(target)
    pgdump.set_database_comment(target, name, done)
    return RestoreReport(manifest.id, name, already_done=False, table_counts=pgdump.table_counts(target))


# -- async API for the incident engine ----------------------------------------------------------


async def find_clean_backup(
    store: BackupStore, *, label: str | None = None, database: str | None = None, backup_id: str | None = None
) -> BackupManifest:
    """Newest verified backup (or `backup_id`), checksum re-checked; RestoreRefused with the reason."""
    return await asyncio.to_thread(find_clean_backup_sync, store, label=label, database=database, backup_id=backup_id)


async def take_safety_backup(
    store: BackupStore, target: PgTarget, *, stamp: str, label: str, clock: Clock
) -> BackupManifest | None:
    """Safety backup of the current database (idempotent by stamp); None when the database is absent."""
    return await asyncio.to_thread(take_safety_backup_sync, store, target, stamp=stamp, label=label, clock=clock)


async def terminate_connections(target: PgTarget) -> int:
    """End every other session on the target database; returns how many."""
    return await asyncio.to_thread(pgdump.terminate_connections, target, target.dbname)


async def restore_database(
    store: BackupStore, target: PgTarget, manifest: BackupManifest, *, stamp: str, safety_backup_id: str | None
) -> RestoreReport:
    """Drop, recreate, restore, ANALYZE (resumable; see the module docstring)."""
    return await asyncio.to_thread(
        restore_database_sync, store, target, manifest, stamp=stamp, safety_backup_id=safety_backup_id
    )
