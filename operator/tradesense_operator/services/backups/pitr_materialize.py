"""A point in time as a verified logical backup, so the runbook's restore procedure can load it.

The restore-database and data-corruption runbooks restore a database on the running server (drop,
recreate, load: services/backups/restore). For a target time or LSN this module replays base backup +
WAL into a scratch instance (services/backups/pitr_restore), dumps the target database from it into the
policy's store as a `point-in-time` backup stamped with the incident, verifies it and stops the scratch
instance. The existing restore step then loads that backup like any other, with its safety backup,
crash-resumable markers and approval gates unchanged. A re-run with the same stamp finds the backup
again instead of replaying twice. This is `pointInTime.restore.mode: logical` (the default); the in-place
restore of the database's volume in a Job is services/backups/pitr_physical.
Must not touch the running database or the Kubernetes API; loading the backup is the restore step's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.backups.pitr import RestorePlan
from tradesense_operator.domain.backups.wal import Lsn, WalError
from tradesense_operator.domain.clock import Clock
from tradesense_operator.services.backups import dump_pipeline, pitr_restore
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.backups.restore import RestoreRefused

POINT_IN_TIME_KIND = "point-in-time"
LABEL_SUFFIX = "-pitr"
RUN_AS_ENV = "TRADESENSE_PITR_RUN_AS"
"""OS user the scratch server runs as when the operator runs as root (postgres refuses root)."""


def parse_target(target_time: str | None, target_lsn: str | None) -> tuple[datetime | None, Lsn | None]:
    """`targetTime` (RFC 3339, or "latest") and `targetLSN` as typed values; RestoreRefused when malformed."""
    try:
        when = None
        if target_time and target_time != "latest":
            when = datetime.fromisoformat(target_time.replace("Z", "+00:00"))
        return when, Lsn.parse(target_lsn) if target_lsn else None
    except (ValueError, WalError) as exc:
        raise RestoreRefused(f"invalid restore target: {exc}") from exc


def plan_sync(store: BackupStore, label: str, *, now: datetime, target_time: str | None,
              target_lsn: str | None) -> RestorePlan:
    when, lsn = parse_target(target_time, target_lsn)
    chosen, _ = pitr_restore.plan(store, label, now=now, target_time=when, target_lsn=lsn)
    return chosen


def materialize_sync(
    store: BackupStore, label: str, database: PgTarget, *, stamp: str, clock: Clock, target_time: str | None,
    target_lsn: str | None, timeout: float = 3600.0,
) -> tuple[BackupManifest, RestorePlan | None]:
    """The verified logical backup of `database.dbname` at the target (found again by `stamp` on a re-run)."""
    for existing in dump_pipeline.list_backups(store, label=label + LABEL_SUFFIX):
        if existing.kind == POINT_IN_TIME_KIND and existing.stamp == stamp and existing.verified:
            return existing, None
    when, lsn = parse_target(target_time, target_lsn)
    chosen, inv = pitr_restore.plan(store, label, now=clock.now(), target_time=when, target_lsn=lsn)
    workdir = Path(tempfile.mkdtemp(prefix="pitr-restore-"))
    try:
        prepared = pitr_restore.prepare_data_directory(store, chosen, inv, data_dir=workdir / "data",
                                                       wal_dir=workdir / "wal")
        server = pitr_restore.recover(prepared, workdir, run_as=os.environ.get(RUN_AS_ENV) or None, timeout=timeout,
                                       user=database.user)
        try:
            scratch = PgTarget(host=str(server.socket_dir), port=server.port, dbname=database.dbname,
                               user=database.user)
            manifest = dump_pipeline.run_backup(store, BackupRequest(
                scratch, label + LABEL_SUFFIX, kind=POINT_IN_TIME_KIND, stamp=stamp), clock=clock)
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verified = dump_pipeline.verify_backup(store, manifest, clock=clock)
    if not verified.verified:
        raise RestoreRefused(f"the point-in-time dump {manifest.id} failed verification: "
                             f"{verified.verification.detail if verified.verification else ''}")
    return verified, chosen
