"""Base backups for point-in-time recovery: pg_basebackup into staging, checksummed into the policy's store.

Owns the sequence (run, measure, store, record) only; the tool is clients/walstream, the object layout
services/backups/wal_archive. The WAL a base backup needs comes from the archive (`-X none`), so it
becomes restorable once the archiver has stored WAL through its end position.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tradesense_operator.clients import walstream
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.naming import backup_id
from tradesense_operator.domain.backups.pitr import BaseBackupInfo
from tradesense_operator.domain.backups.wal import Lsn
from tradesense_operator.domain.clock import Clock
from tradesense_operator.services.backups import wal_archive

DEFAULT_TIMEOUT = 6 * 3600.0


def unique_id(store: BackupStore, label: str, wanted: str) -> str:
    """`wanted`, or `wanted-2`, `-3`…: ids have one-second resolution, and two base backups in the same second
    (the first one taken at once meeting a scheduled one) must not overwrite each other."""
    candidate, n = wanted, 1
    while store.exists(wal_archive.base_object(label, candidate)):
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def take_base_backup(
    target: PgTarget, store: BackupStore, label: str, *, staging: Path, clock: Clock,
    timeout: float = DEFAULT_TIMEOUT,
) -> BaseBackupInfo:
    """Run pg_basebackup, store its tar with sha256 and metadata; the staging copy is removed either way."""
    started = clock.now()
    id_ = unique_id(store, label, backup_id(label, started) + "-base")
    staging.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="basebackup-", dir=staging))
    try:
        files = walstream.base_backup(target, workdir / "out", label=id_, timeout=timeout)
        finished = clock.now()
        info = BaseBackupInfo(id_, started, finished, Lsn.parse(files.start_lsn), Lsn.parse(files.end_lsn),
                              files.timeline)
        wal_archive.store_file(store, files.tar, wal_archive.base_object(label, id_), {
            "kind": "base", "id": id_, "started_at": started.isoformat(), "finished_at": finished.isoformat(),
            "start_lsn": files.start_lsn, "end_lsn": files.end_lsn, "timeline": files.timeline,
        })
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return info
