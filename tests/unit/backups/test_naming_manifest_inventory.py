"""Backup ids/names, scratch DB names within 63 bytes, manifest round trip, bounded inventory, lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat, BackupRecord
from tradesense_operator.domain.backups.formats import effective_level
from tradesense_operator.domain.backups.inventory import LockState, bound_inventory, lock_state
from tradesense_operator.domain.backups.manifest import BackupManifest, ManifestError, StoredFile, Verification, files_digest
from tradesense_operator.domain.backups.naming import backup_id, file_name, is_temporary, scratch_database

T = datetime(2024, 1, 16, 2, 0, tzinfo=UTC)


def test_ids_follow_the_runbook_names() -> None:
    assert backup_id("backup", T) == "backup_20240116_020000"
    assert file_name(backup_id("postgres", T), BackupFormat.PLAIN_GZIP) == "postgres_20240116_010000.sql.gz".replace(
        "010000", "020000")
    assert file_name("x", BackupFormat.CUSTOM) == "x.dump"
    assert backup_id("backup", T, 2) == "backup_20240116_020000-2"
    assert is_temporary(".x.sql.gz.partial-ab12")
    assert not is_temporary("x.sql.gz")


def test_bad_label_rejected() -> None:
    with pytest.raises(ValueError, match="label"):
        backup_id("Bad Label", T)


def test_scratch_database_fits_postgres_limit() -> None:
    name = scratch_database("d" * 63, "tradesense-prod_20240116_020000-12")
    assert len(name) <= 63
    assert "_verify_" in name
    assert scratch_database("tradesense", "tradesense_20240116_020000") == "tradesense_verify_tradesense_20240116_020000"


def manifest(**over: object) -> BackupManifest:
    base: dict[str, object] = {
        "id": "a", "label": "a", "database": "db", "format": BackupFormat.CUSTOM, "file_name": "a.dump",
        "started_at": T, "finished_at": T + timedelta(seconds=5), "bytes": 10, "sha256": "00", "raw_bytes": 20,
        "duration_seconds": 5.0, "compression_level": 6, "table_counts": {"public.trades": 3},
    }
    base.update(over)
    return BackupManifest(**base)  # type: ignore[arg-type]


def test_manifest_round_trip_keeps_verification() -> None:
    m = manifest().with_verification(Verification(ok=True, integrity=True, verified_at=T, detail="ok"))
    back = BackupManifest.from_json(m.to_json())
    assert back == m
    assert back.verified


def test_broken_manifest_is_an_error() -> None:
    with pytest.raises(ManifestError):
        BackupManifest.from_json('{"id": "x"}')


def record(i: int, verified: bool = False) -> BackupRecord:
    return BackupRecord(id=f"r{i}", started_at=T + timedelta(hours=i), verified=verified)


def test_inventory_bounded_but_keeps_newest_verified() -> None:
    records = [record(0, verified=True)] + [record(i) for i in range(1, 10)]
    kept = bound_inventory(records, limit=3)
    assert [r.id for r in kept] == ["r9", "r8", "r0"]
    assert [r.id for r in bound_inventory(records[1:], limit=3)] == ["r9", "r8", "r7"]


def test_lock_states() -> None:
    assert lock_state(None, None, now=T, stale_after=timedelta(hours=1)) is LockState.FREE
    assert lock_state("b", T, now=T + timedelta(minutes=59), stale_after=timedelta(hours=1)) is LockState.HELD
    assert lock_state("b", T, now=T + timedelta(minutes=61), stale_after=timedelta(hours=1)) is LockState.STALE
    assert lock_state("b", None, now=T, stale_after=timedelta(hours=1)) is LockState.STALE


def test_new_formats_names_levels_and_file_list_round_trip() -> None:
    assert file_name("x", BackupFormat.PLAIN_ZSTD) == "x.sql.zst"
    assert file_name("x", BackupFormat.DIRECTORY) == "x.dir"
    assert file_name("x", BackupFormat.BINARY) == "x.bin"
    assert [effective_level(f, None) for f in BackupFormat] == [6, 6, 1, 1, 1]
    assert effective_level(BackupFormat.PLAIN_ZSTD, 19) == 19
    assert effective_level(BackupFormat.BINARY, 19) == 19  # zstd levels
    for fmt, level in ((BackupFormat.PLAIN_ZSTD, 0), (BackupFormat.PLAIN_GZIP, 10), (BackupFormat.DIRECTORY, 12),
                       (BackupFormat.BINARY, 0)):
        with pytest.raises(ValueError, match=fmt.value):
            effective_level(fmt, level)
    files = (StoredFile("toc.dat", 10, "a" * 64), StoredFile("3369.dat.gz", 99, "b" * 64))
    manifest = BackupManifest(
        id="x", label="x", database="db", format=BackupFormat.DIRECTORY, file_name="x.dir", started_at=T,
        finished_at=T, bytes=109, sha256=files_digest(files), raw_bytes=400, duration_seconds=1.0,
        compression_level=1, files=files,
    )
    assert BackupManifest.from_json(manifest.to_json()) == manifest
    assert files_digest(files) == files_digest(tuple(reversed(files)))  # order-independent
    assert files_digest(files) != files_digest((files[0], StoredFile("3369.dat.gz", 99, "c" * 64)))
