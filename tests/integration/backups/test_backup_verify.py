"""Backup and verification against real PostgreSQL 15.

Covers: every format's backups restore to identical per-table checksums; the .sql.gz is what
`gunzip -c | psql` (the runbook) reads; corruption and truncation are detected; a test restore compares
row counts and its scratch database is dropped even when the restore fails; a backup whose pg_dump is
killed mid-stream leaves neither a manifest nor a file behind.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess

import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, gzip_codec
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest

from .conftest import database_names, table_checksums


@pytest.mark.parametrize("fmt", list(BackupFormat))
def test_round_trip_restores_identical_tables(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                              fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", fmt, record_counts=True), clock=clock,
                                 workers=2, chunk_size=64 * 1024)
    assert manifest.table_counts == {"public.sessions": 25, "public.trades": 5000, "public.users": 200}
    assert [m.id for m in dump_pipeline.list_backups(store)] == [manifest.id] == ["tradesense_20260105_020000"]
    copy = source_db.with_db(source_db.dbname + "_copy")
    pgdump.create_database(source_db, copy.dbname)
    dump_pipeline.restore_into(copy, store, manifest)
    assert table_checksums(copy) == table_checksums(source_db)


def test_plain_backup_is_the_runbooks_sql_gz(source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "backup"), clock=clock, chunk_size=16 * 1024)
    path = store.root / manifest.file_name
    assert path.name.endswith(".sql.gz")
    text = gzip.decompress(path.read_bytes())  # several gzip members: gunzip reads them as one stream
    assert len(text) == manifest.raw_bytes
    assert b"CREATE TABLE public.trades" in text
    copy = source_db.dbname + "_psql"
    pgdump.create_database(source_db, copy)
    subprocess.run(f"gunzip -c {path} | psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d {copy} >/dev/null",
                   shell=True, check=True)
    assert table_checksums(source_db.with_db(copy)) == table_checksums(source_db)


@pytest.mark.parametrize("fmt", [BackupFormat.PLAIN_GZIP, BackupFormat.CUSTOM])
def test_corrupted_file_is_detected(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                    fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", fmt), clock=clock)
    good = dump_pipeline.verify_backup(store, manifest, clock=clock)
    assert good.verified
    assert good.verification is not None
    assert good.verification.integrity
    path = store.root / manifest.file_name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = dump_pipeline.verify_backup(store, manifest, clock=clock)
    assert not bad.verified
    assert bad.verification is not None
    assert bad.verification.integrity is False
    assert "sha256 mismatch" in bad.verification.detail or "corrupt" in bad.verification.detail
    assert not dump_pipeline.list_backups(store)[0].verified  # the failure is recorded in the stored manifest


def test_truncated_gzip_detected_even_with_matching_checksum(source_db: PgTarget, store: FilesystemStore,
                                                             clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense"), clock=clock)
    path = store.root / manifest.file_name
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(dump_pipeline.IntegrityError, match="truncated"):
        list(gzip_codec.gunzip_chunks(iter([path.read_bytes()])))


def test_test_restore_compares_counts_and_drops_scratch(source_db: PgTarget, store: FilesystemStore,
                                                        clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", record_counts=True), clock=clock)
    verified = dump_pipeline.verify_backup(store, manifest, clock=clock, test_restore_source=source_db)
    assert verified.verified
    assert verified.verification is not None
    assert verified.verification.test_restore
    assert "identical row counts" in verified.verification.detail
    assert database_names(source_db.dbname + "_verify") == set()


def test_scratch_database_dropped_when_test_restore_fails(source_db: PgTarget, store: FilesystemStore,
                                                          clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.CUSTOM,
                                                      record_counts=True), clock=clock)
    path = store.root / manifest.file_name
    path.write_bytes(path.read_bytes()[: manifest.bytes // 2])  # the restore dies half-way
    verified = dump_pipeline.verify_backup(store, manifest, clock=clock, integrity=False, test_restore_source=source_db)
    assert not verified.verified
    assert verified.verification is not None
    assert verified.verification.test_restore is False
    assert database_names(source_db.dbname + "_verify") == set()


def test_killed_pg_dump_leaves_no_success_and_no_file(big_source_db: PgTarget, store: FilesystemStore,
                                                      clock: ManualClock) -> None:
    def kill_dump(pid: int, raw: int) -> None:
        if raw >= 64 * 1024:
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(BackupFailed, match="pg_dump failed"):
        dump_pipeline.run_backup(store, BackupRequest(big_source_db, "tradesense"), clock=clock, chunk_size=64 * 1024,
                          on_progress=kill_dump)
    assert dump_pipeline.list_backups(store) == []
    assert list(store.root.iterdir()) == []
