"""Integrity verification during the backup (run_verified_backup) against real PostgreSQL 15.

The content is checked on a thread while it is written and the stored object is re-read for its
sha256 afterwards: a good backup of every format is recorded as verified in its one manifest and
restores to identical tables; bytes that do not decompress (damaged before they were hashed, so the
sha256 matches them) and stored bytes that differ from the hashed ones are both caught; a test restore
keeps the integrity outcome beside its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump, storage
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, gzip_codec, zstd_codec
from tradesense_operator.services.backups.dump_pipeline import BackupRequest

from .conftest import database_names, table_checksums


def stored_manifest(store: FilesystemStore, manifest: BackupManifest) -> BackupManifest:
    return BackupManifest.from_json((store.root / manifest.manifest_name).read_text())


@pytest.mark.parametrize("fmt", list(BackupFormat))
def test_verified_while_writing_and_restores(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                             fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_verified_backup(store, BackupRequest(source_db, "tradesense", fmt), clock=clock,
                                                 integrity=True, workers=2)
    assert manifest.verified, manifest.verification
    assert manifest.verification is not None
    assert manifest.verification.integrity is True
    assert manifest.verification.test_restore is None
    assert stored_manifest(store, manifest) == manifest  # the outcome is in the stored manifest
    dump_pipeline.check_integrity(store, manifest)  # a full re-check agrees
    copy = source_db.with_db(source_db.dbname + "_copy")
    pgdump.create_database(source_db, copy.dbname)
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert table_checksums(copy) == table_checksums(source_db)


def flip_first_output(encoder: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder's first sizeable output gets one byte flipped, before it is hashed and written."""
    flipped: list[bool] = []

    def damaging(produce: Callable[..., Iterator[bytes]]) -> Callable[..., Iterator[bytes]]:
        def wrapper(*args: object) -> Iterator[bytes]:
            for chunk in produce(*args):
                if not flipped and len(chunk) > 100:
                    flipped.append(True)
                    damaged = bytearray(chunk)
                    damaged[len(damaged) // 2] ^= 0xFF
                    chunk = bytes(damaged)  # noqa: PLW2901
                yield chunk

        return wrapper

    monkeypatch.setattr(encoder, "feed", damaging(encoder.feed))  # type: ignore[attr-defined]
    monkeypatch.setattr(encoder, "finish", damaging(encoder.finish))  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", [BackupFormat.PLAIN_GZIP, BackupFormat.PLAIN_ZSTD])
def test_bytes_damaged_before_hashing_fail_the_content_check(source_db: PgTarget, store: FilesystemStore,
                                                             clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
                                                             fmt: BackupFormat) -> None:
    flip_first_output(gzip_codec.GzipMembers if fmt is BackupFormat.PLAIN_GZIP else zstd_codec.ZstdStream,
                      monkeypatch)
    manifest = dump_pipeline.run_verified_backup(store, BackupRequest(source_db, "tradesense", fmt), clock=clock,
                                                 integrity=True, workers=2)
    assert not manifest.verified
    assert manifest.verification is not None
    assert manifest.verification.integrity is False
    assert "corrupt" in manifest.verification.detail
    assert not dump_pipeline.list_backups(store)[0].verified  # recorded, and restores refuse unverified backups


def test_stored_bytes_that_differ_from_the_hashed_ones_are_caught(source_db: PgTarget, store: FilesystemStore,
                                                                 clock: ManualClock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write = storage._FileWriter.write  # a storage layer that loses a bit between write and read

    def lossy(self: storage._FileWriter, data: bytes | memoryview) -> None:
        damaged = bytearray(data)
        damaged[0] ^= 0x01
        write(self, bytes(damaged))

    monkeypatch.setattr(storage._FileWriter, "write", lossy)
    manifest = dump_pipeline.run_verified_backup(store, BackupRequest(source_db, "tradesense",
                                                                      BackupFormat.PLAIN_ZSTD),
                                                 clock=clock, integrity=True, workers=2)
    assert not manifest.verified
    assert manifest.verification is not None
    assert "sha256 mismatch" in manifest.verification.detail


def test_test_restore_keeps_the_integrity_outcome(source_db: PgTarget, store: FilesystemStore,
                                                 clock: ManualClock) -> None:
    request = BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_ZSTD, record_counts=True)
    manifest = dump_pipeline.run_verified_backup(store, request, clock=clock, integrity=True,
                                                 test_restore_source=source_db)
    assert manifest.verified, manifest.verification
    assert manifest.verification is not None
    assert (manifest.verification.integrity, manifest.verification.test_restore) == (True, True)
    assert "content intact" in manifest.verification.detail
    assert "identical row counts" in manifest.verification.detail
    assert database_names(source_db.dbname + "_verify") == set()
    assert stored_manifest(store, manifest) == manifest
