"""The faster formats against real PostgreSQL 15: plain-zstd and directory (pg_dump -Fd -j / pg_restore -j).

Covers: a .sql.zst is what `zstd -dc | psql` reads; a damaged, truncated or padded zstd file is detected;
a directory backup is one tree with a sha256 per file in the manifest, restores to identical tables from
the filesystem and from S3 (big tables split over several COPY sessions, all or none committing), and a
damaged or missing file is named by verification and refused by the
restore before anything is restored; a failed directory dump leaves nothing; retention counts and deletes
backups of every format alike (trees included) and the sweep removes partial and orphaned trees.
"""

from __future__ import annotations

import os
import subprocess
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore, S3Store
from tradesense_operator.domain.backups.manifest import files_digest
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, parallel_load, restore
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest, IntegrityError
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.retention import apply_retention, sweep_leftovers
from tradesense_operator.services.backups.zstd_codec import unzstd_chunks

from .conftest import child_killed_once_it_wrote, damage_tree_file, database_names, table_checksums


def restored_copy(source: PgTarget, suffix: str) -> PgTarget:
    copy = source.with_db(source.dbname + suffix)
    pgdump.create_database(source, copy.dbname)
    return copy


def test_zstd_backup_is_what_zstd_dc_psql_reads(source_db: PgTarget, store: FilesystemStore,
                                                 clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_ZSTD),
                                        clock=clock, workers=2, chunk_size=16 * 1024)
    path = store.root / manifest.file_name
    assert path.name.endswith(".sql.zst")
    assert manifest.compression_level == 1  # the format's default
    assert manifest.bytes < manifest.raw_bytes / 3
    copy = restored_copy(source_db, "_zstdcli")
    subprocess.run(f"zstd -dc {path} | psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d {copy.dbname} "
                   ">/dev/null", shell=True, check=True)
    assert table_checksums(copy) == table_checksums(source_db)


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_damaged_zstd_file_is_detected(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                       damage: str) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_ZSTD),
                                        clock=clock)
    assert dump_pipeline.verify_backup(store, manifest, clock=clock).verified
    path = store.root / manifest.file_name
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[-50:]
    else:
        data += b"\x00" * 8
    path.write_bytes(bytes(data))
    bad = dump_pipeline.verify_backup(store, manifest, clock=clock)
    assert not bad.verified
    assert bad.verification is not None
    assert bad.verification.integrity is False
    # even with a manifest rewritten to match, the content check itself finds it
    with pytest.raises(IntegrityError, match=r"zstd data is (corrupt|truncated)|trailing"):
        list(unzstd_chunks(iter([bytes(data)])))


def test_directory_backup_has_a_checksum_per_file_and_restores(source_db: PgTarget, store: FilesystemStore,
                                                               clock: ManualClock) -> None:
    request = BackupRequest(source_db, "tradesense", BackupFormat.DIRECTORY, record_counts=True)
    manifest = dump_pipeline.run_backup(store, request, clock=clock, workers=2)
    tree = store.root / manifest.file_name
    assert tree.is_dir()
    assert tree.name == "tradesense_20260105_020000.dir"
    on_disk = {p.name: p.stat().st_size for p in tree.iterdir()}
    assert "toc.dat" in on_disk
    assert {f.name: f.bytes for f in manifest.files} == on_disk  # every file pg_dump wrote, with its size
    assert manifest.sha256 == files_digest(manifest.files)
    assert manifest.bytes == sum(on_disk.values())
    assert [o.name for o in store.list_objects() if not o.name.endswith(".json")] == [tree.name]
    verified = dump_pipeline.verify_backup(store, manifest, clock=clock, test_restore_source=source_db)
    assert verified.verified, verified.verification
    assert database_names(source_db.dbname + "_verify") == set()
    copy = restored_copy(source_db, "_dir")
    dump_pipeline.restore_into(copy, store, verified, workers=2)
    assert table_checksums(copy) == table_checksums(source_db)


@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_damaged_directory_file_is_named_and_refused(source_db: PgTarget, store: FilesystemStore,
                                                      clock: ManualClock, damage: str) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.DIRECTORY),
                                        clock=clock)
    good = dump_pipeline.verify_backup(store, manifest, clock=clock)
    assert good.verified
    biggest = max(manifest.files, key=lambda f: f.bytes)
    damage_tree_file(store, manifest, biggest.name, damage, clock)
    with pytest.raises(RestoreRefused, match=biggest.name):  # the restore procedure's re-check before dropping
        restore.check_backup(store, good)
    copy = restored_copy(source_db, "_refused")
    with pytest.raises(IntegrityError, match=biggest.name):
        dump_pipeline.restore_into(copy, store, good)
    with psycopg.connect(host=copy.host, user=copy.user, dbname=copy.dbname) as conn:
        # checked before pg_restore ran: nothing was restored
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_killed_directory_dump_leaves_nothing(big_source_db: PgTarget, store: FilesystemStore,
                                              clock: ManualClock) -> None:
    with child_killed_once_it_wrote(store, "pg_dump", "*"), pytest.raises(BackupFailed, match="pg_dump failed"):
        dump_pipeline.run_backup(store, BackupRequest(big_source_db, "tradesense", BackupFormat.DIRECTORY),
                                 clock=clock, workers=2)
    assert dump_pipeline.list_backups(store) == []
    assert list(store.root.iterdir()) == []


@pytest.mark.parametrize("fmt", [BackupFormat.PLAIN_ZSTD, BackupFormat.DIRECTORY, BackupFormat.BINARY])
def test_s3_round_trip_and_damage(source_db: PgTarget, s3_store: S3Store, s3_client: Any, clock: ManualClock,
                                  fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_backup(s3_store, BackupRequest(source_db, "tradesense", fmt), clock=clock)
    verified = dump_pipeline.verify_backup(s3_store, manifest, clock=clock)
    assert verified.verified, verified.verification
    assert [m.id for m in dump_pipeline.list_backups(s3_store)] == [manifest.id]
    copy = restored_copy(source_db, "_s3")
    dump_pipeline.restore_into(copy, s3_store, verified)
    assert table_checksums(copy) == table_checksums(source_db)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_store.bucket)["Contents"]]
    if fmt is not BackupFormat.PLAIN_ZSTD:
        members = {k.rsplit("/", 1)[1] for k in keys if f"/{manifest.file_name}/" in k}
        assert members == {f.name for f in manifest.files}
    victim = max((k for k in keys if manifest.file_name in k and not k.endswith(".json")),
                 key=lambda k: s3_client.head_object(Bucket=s3_store.bucket, Key=k)["ContentLength"])
    body = bytearray(s3_client.get_object(Bucket=s3_store.bucket, Key=victim)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    s3_client.put_object(Bucket=s3_store.bucket, Key=victim, Body=bytes(body))
    assert not dump_pipeline.verify_backup(s3_store, verified, clock=clock).verified
    assert apply_retention(s3_store, "tradesense", now=clock.now() + timedelta(days=9), keep_last=None,
                           max_age=timedelta(days=1)) == []  # the newest is never deleted
    assert s3_store.delete(manifest.file_name)
    assert not any(manifest.file_name in o["Key"] for o in
                   s3_client.list_objects_v2(Bucket=s3_store.bucket).get("Contents", []) if
                   not o["Key"].endswith(".json"))


def test_retention_counts_every_format_and_deletes_trees(source_db: PgTarget, store: FilesystemStore,
                                                         clock: ManualClock) -> None:
    ids = []
    for fmt in (BackupFormat.DIRECTORY, BackupFormat.PLAIN_ZSTD, BackupFormat.PLAIN_GZIP, BackupFormat.DIRECTORY):
        manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", fmt), clock=clock)
        ids.append(dump_pipeline.verify_backup(store, manifest, clock=clock).id)
        clock.advance(timedelta(hours=12))
    deleted = apply_retention(store, "tradesense", now=clock.now(), keep_last=2, max_age=None)
    assert [d.id for d in deleted] == ids[:2]
    assert sorted(m.id for m in dump_pipeline.list_backups(store)) == ids[2:]
    names = sorted(p.name for p in store.root.iterdir())
    assert names == sorted([f"{ids[2]}.sql.gz", f"{ids[2]}.sql.gz.manifest.json", f"{ids[3]}.dir",
                            f"{ids[3]}.dir.manifest.json"])


def test_sweep_removes_partial_and_orphaned_trees_once_old(source_db: PgTarget, store: FilesystemStore,
                                                          clock: ManualClock) -> None:
    kept = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.DIRECTORY),
                                    clock=clock)
    partial = store.root / ".tradesense_20200101_000000.dir.partial-abcd"
    orphan = store.root / "tradesense_20200101_000001.dir"
    for tree in (partial, orphan):
        tree.mkdir()
        (tree / "toc.dat").write_bytes(b"half")
    assert sweep_leftovers(store, "tradesense", older_than=time.time() - 3600) == []
    old = time.time() - 7200
    for tree in (partial, orphan):
        os.utime(tree, (old, old))
    assert sorted(sweep_leftovers(store, "tradesense", older_than=time.time() - 3600)) == sorted(
        [partial.name, orphan.name])
    assert not partial.exists()
    assert not orphan.exists()
    assert [m.id for m in dump_pipeline.list_backups(store)] == [kept.id]


def test_big_tables_load_split_over_several_sessions(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_load, "SPLIT_MIN_BYTES", 1)  # every table counts as big
    monkeypatch.setattr(parallel_load, "BLOCK", 4096)  # many blocks per table, dealt to both sessions
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.DIRECTORY),
                                        clock=clock)
    copy = restored_copy(source_db, "_split")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert table_checksums(copy) == table_checksums(source_db)
    with psycopg.connect(host=copy.host, user=copy.user, dbname=copy.dbname) as conn:  # post-data ran after the load
        constraints = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'trades'::regclass "
                                   "ORDER BY 1").fetchall()
    assert ("trades_pkey",) in constraints
    assert ("trades_user_id_fkey",) in constraints


def test_a_failing_split_session_commits_nothing(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_load, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(parallel_load, "BLOCK", 4096)
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.DIRECTORY,
                                                             compression_level=0), clock=clock)
    tree = store.root / manifest.file_name
    listing = pgdump.archive_listing(tree)
    trades = next(e for e in parallel_load.table_data_entries(listing) if e.table == "trades")
    data = tree / f"{trades.dump_id}.dat"
    rows = data.read_bytes().split(b"\n")
    row = rows[len(rows) // 2].split(b"\t")
    row[4] = b"-1"  # quantity > 0 is violated half-way through the table
    rows[len(rows) // 2] = b"\t".join(row)
    data.write_bytes(b"\n".join(rows))
    copy = restored_copy(source_db, "_fail")
    with pytest.raises(pgdump.ToolFailed, match=r"quantity|check constraint"):
        parallel_load.restore_split(copy, tree, workers=2)
    with psycopg.connect(host=copy.host, user=copy.user, dbname=copy.dbname) as conn:
        assert conn.execute("SELECT count(*) FROM trades").fetchone() == (0,)  # neither session committed
