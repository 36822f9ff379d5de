"""The S3 path against moto's server mode (a real HTTP S3 endpoint on loopback).

Covers: a multipart backup is listed only once complete, restores to identical tables and verifies;
an aborted upload leaves no object and no listing; corruption is detected; retention deletes manifest
and data; the credentials never appear in errors.
"""

from __future__ import annotations

from typing import Any

import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump, storage
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import S3Location, S3Store
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest
from tradesense_operator.services.backups.retention import apply_retention

from .conftest import KEY_ID, SECRET, table_checksums


@pytest.mark.parametrize("fmt", [BackupFormat.PLAIN_GZIP, BackupFormat.CUSTOM])
def test_s3_round_trip(source_db: PgTarget, s3_store: S3Store, clock: ManualClock, fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_backup(s3_store, BackupRequest(source_db, "tradesense", fmt, compression_level=0),
                                 clock=clock)
    assert s3_store.location(manifest.file_name).startswith("s3://")
    verified = dump_pipeline.verify_backup(s3_store, manifest, clock=clock)
    assert verified.verified
    assert [m.id for m in dump_pipeline.list_backups(s3_store)] == [manifest.id]
    copy = source_db.with_db(source_db.dbname + "_s3")
    pgdump.create_database(source_db, copy.dbname)
    dump_pipeline.restore_into(copy, s3_store, verified)
    assert table_checksums(copy) == table_checksums(source_db)


def test_multipart_upload_with_many_parts(source_db: PgTarget, s3_store: S3Store, clock: ManualClock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "S3_PART_SIZE", 32 * 1024)  # moto accepts small parts; real S3 needs 5 MiB
    manifest = dump_pipeline.run_backup(s3_store, BackupRequest(source_db, "tradesense", compression_level=1), clock=clock)
    assert manifest.bytes > 3 * 32 * 1024
    assert dump_pipeline.verify_backup(s3_store, manifest, clock=clock).verified


def test_failed_upload_leaves_nothing(big_source_db: PgTarget, s3_store: S3Store, s3_client: Any,
                                      clock: ManualClock) -> None:
    def boom(pid: int, raw: int) -> None:
        if raw > 256 * 1024:
            raise OSError(28, "simulated: no space left")

    with pytest.raises(BackupFailed):
        dump_pipeline.run_backup(s3_store, BackupRequest(big_source_db, "tradesense"), clock=clock, chunk_size=64 * 1024,
                          on_progress=boom)
    assert s3_store.list_objects() == []
    assert dump_pipeline.list_backups(s3_store) == []
    assert s3_client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


def test_s3_corruption_and_retention(source_db: PgTarget, s3_store: S3Store, s3_client: Any,
                                     clock: ManualClock) -> None:
    ids = []
    for _ in range(3):
        m = dump_pipeline.run_backup(s3_store, BackupRequest(source_db, "tradesense"), clock=clock)
        ids.append(dump_pipeline.verify_backup(s3_store, m, clock=clock).id)
        clock.advance(3600)
    deleted = apply_retention(s3_store, "tradesense", now=clock.now(), keep_last=2, max_age=None)
    assert [d.id for d in deleted] == [ids[0]]
    assert [m.id for m in dump_pipeline.list_backups(s3_store)] == [ids[2], ids[1]]
    assert not any(o.name.startswith(ids[0]) for o in s3_store.list_objects())
    newest = dump_pipeline.find_backup(s3_store, ids[2])
    key = "tradesense/prod/" + newest.file_name
    body = bytearray(s3_client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read())
    body[-20] ^= 0xFF
    s3_client.put_object(Bucket=s3_store.bucket, Key=key, Body=bytes(body))
    assert not dump_pipeline.verify_backup(s3_store, newest, clock=clock).verified


def test_credentials_not_in_repr_or_errors(s3_endpoint: str, secret_guard: Any) -> None:
    secret_guard.plant(SECRET)
    location = S3Location(bucket="does-not-exist", endpoint=s3_endpoint, access_key_id=KEY_ID,
                          secret_access_key=SECRET)
    assert SECRET not in repr(location)
    with pytest.raises(Exception, match="does-not-exist") as info:
        S3Store(location).list_objects()
    assert SECRET not in str(info.value)
