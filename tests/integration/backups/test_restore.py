"""The restore procedure's database steps against real PostgreSQL 15.

Covers: the newest verified backup is chosen and unverified/mismatched ones are refused with the reason;
a full restore (safety backup, terminate, drop, recreate, restore, ANALYZE) brings back the exact data;
re-running after success is a no-op; re-running after a crash after the drop, or mid-restore, finishes
the restore; the safety backup is taken once per stamp; a live database is never dropped without one.
"""

from __future__ import annotations

import psycopg
import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, restore
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.backups.restore import RestoreRefused

from .conftest import table_checksums


def corrupt_data(target: PgTarget) -> None:
    with psycopg.connect(host=target.host, port=target.port, user=target.user, dbname=target.dbname,
                         autocommit=True) as conn:
        conn.execute("UPDATE trades SET quantity = quantity + 1 WHERE id % 3 = 0")
        conn.execute("DELETE FROM trades WHERE id % 7 = 0")


def verified_backup(store: FilesystemStore, source: PgTarget, clock: ManualClock,
                    fmt: BackupFormat = BackupFormat.PLAIN_GZIP) -> str:
    m = dump_pipeline.run_backup(store, BackupRequest(source, "tradesense", fmt), clock=clock)
    return dump_pipeline.verify_backup(store, m, clock=clock).id


def test_unverified_and_mismatched_backups_are_refused(source_db: PgTarget, store: FilesystemStore,
                                                       clock: ManualClock) -> None:
    unverified = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense"), clock=clock)
    with pytest.raises(RestoreRefused, match="none verified"):
        restore.find_clean_backup_sync(store, label="tradesense")
    with pytest.raises(RestoreRefused, match="not verified"):
        restore.find_clean_backup_sync(store, backup_id=unverified.id)
    clock.advance(60)
    good_id = verified_backup(store, source_db, clock)
    assert restore.find_clean_backup_sync(store, label="tradesense").id == good_id
    path = store.root / dump_pipeline.find_backup(store, good_id).file_name
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RestoreRefused, match="checksum"):
        restore.find_clean_backup_sync(store, label="tradesense")


@pytest.mark.parametrize("fmt", list(BackupFormat))
async def test_full_restore_brings_back_the_backed_up_data(source_db: PgTarget, store: FilesystemStore,
                                                           clock: ManualClock, fmt: BackupFormat) -> None:
    before = table_checksums(source_db)
    verified_backup(store, source_db, clock, fmt)
    corrupt_data(source_db)
    assert table_checksums(source_db) != before
    clock.advance(3600)
    chosen = await restore.find_clean_backup(store, label="tradesense")
    safety = await restore.take_safety_backup(store, source_db, stamp="inc-1/restore", label="tradesense", clock=clock)
    assert safety is not None
    assert safety.verified
    assert safety.kind == "safety"
    again = await restore.take_safety_backup(store, source_db, stamp="inc-1/restore", label="tradesense", clock=clock)
    assert again is not None
    assert again.id == safety.id
    # the safety backup holds the corrupted state and is never picked as the clean one
    assert (await restore.find_clean_backup(store, label="tradesense")).id == chosen.id
    session = psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname, autocommit=True)
    session.execute("SELECT 1")  # a straggling application connection
    report = await restore.restore_database(store, source_db, chosen, stamp="inc-1/restore",
                                            safety_backup_id=safety.id)
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # it was terminated
    session.close()
    assert not report.already_done
    assert report.table_counts == {"public.sessions": 25, "public.trades": 5000, "public.users": 200}
    assert table_checksums(source_db) == before
    rerun = await restore.restore_database(store, source_db, chosen, stamp="inc-1/restore", safety_backup_id=safety.id)
    assert rerun.already_done
    assert table_checksums(source_db) == before


def test_live_database_is_not_dropped_without_a_safety_backup(source_db: PgTarget, store: FilesystemStore,
                                                              clock: ManualClock) -> None:
    manifest = dump_pipeline.find_backup(store, verified_backup(store, source_db, clock))
    corrupt_data(source_db)
    corrupted = table_checksums(source_db)
    with pytest.raises(RestoreRefused, match="no safety backup"):
        restore.restore_database_sync(store, source_db, manifest, stamp="s", safety_backup_id=None)
    assert table_checksums(source_db) == corrupted


def test_rerun_after_crash_following_the_drop_restores(source_db: PgTarget, store: FilesystemStore,
                                                       clock: ManualClock) -> None:
    before = table_checksums(source_db)
    manifest = dump_pipeline.find_backup(store, verified_backup(store, source_db, clock))
    pgdump.drop_database(source_db, source_db.dbname)  # the crash happened right after DROP DATABASE
    safety = restore.take_safety_backup_sync(store, source_db, stamp="s2", label="tradesense", clock=clock)
    assert safety is None  # nothing left to save
    report = restore.restore_database_sync(store, source_db, manifest, stamp="s2", safety_backup_id=None)
    assert not report.already_done
    assert table_checksums(source_db) == before


def test_rerun_after_crash_mid_restore_redoes_it(source_db: PgTarget, store: FilesystemStore,
                                                 clock: ManualClock) -> None:
    before = table_checksums(source_db)
    manifest = dump_pipeline.find_backup(store, verified_backup(store, source_db, clock))
    # crash mid-restore: our own marker on a database holding part of the data
    pgdump.drop_database(source_db, source_db.dbname)
    pgdump.create_database(source_db, source_db.dbname,
                           comment=f"tradesense-operator restore restoring stamp=s3 backup={manifest.id}")
    with psycopg.connect(host=source_db.host, user=source_db.user, dbname=source_db.dbname, autocommit=True) as c:
        c.execute("CREATE TABLE users (id int)")
    report = restore.restore_database_sync(store, source_db, manifest, stamp="s3", safety_backup_id=None)
    assert not report.already_done
    assert table_checksums(source_db) == before
    assert pgdump.database_comment(source_db, source_db.dbname) == (
        f"tradesense-operator restore restored stamp=s3 backup={manifest.id}")
