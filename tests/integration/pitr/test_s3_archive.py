"""The WAL archive on S3 (moto's server mode on a loopback port, the logical backups' S3 fixture): a real
PostgreSQL 15 streams WAL into S3 and takes base backups there, each object checksummed and listed like
on the filesystem; retention keeps exactly what the kept base backup needs; the physical restore Job's
command restores to T from S3 (every row committed before T, none begun after); a corrupted segment in
the bucket is detected and refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backups.conftest import KEY_ID, SECRET, s3_client, s3_endpoint, s3_store  # noqa: F401
from tests.integration.pitr.conftest import (
    LABEL,
    RUN_AS,
    Writer,
    archive_with_base,
    corrupted_after_target,
    ids,
)
from tradesense_operator.clients.pginstance import LocalServer, chown_tree
from tradesense_operator.clients.storage import S3Store
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.wal import segment_of
from tradesense_operator.services.backups import pitr_restore, wal_archive
from tradesense_operator.services.backups.pitr_retention import apply_pitr_retention
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

pytestmark = pytest.mark.slow


@pytest.fixture
def store(s3_store: S3Store) -> S3Store:  # noqa: F811  (the archiver fixture's store, here the bucket)
    return s3_store


def backup_cli(s3: S3Store, endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`tradesense-operator backup …` against the bucket, credentials from the environment (as in the Job)."""
    flags = ["--s3-bucket", s3.bucket, "--s3-prefix", "tradesense/prod/", "--s3-endpoint", endpoint]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    return subprocess.run([sys.executable, "-m", "tradesense_operator", "backup", args[0], *flags, *args[1:]],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def test_archive_base_backups_retention_and_restore_on_s3(
    source: ThrowawayPostgres, store: S3Store, archiver: WalArchiver, writer: Writer, tmp_path: Path, *,
    s3_endpoint: str, s3_client: Any, restore_dir: Path,  # noqa: F811
) -> None:
    first = archive_with_base(source, store, archiver, tmp_path, switches=2)
    kept, target = corrupted_after_target(source, store, archiver, writer, tmp_path / "bb")

    inv = wal_archive.list_inventory(store, LABEL)
    assert [b.id for b in inv.backups] == [kept.id, first.id]
    assert inv.segments
    assert all(len(inv.checksums[inv.object_of(s)]) == 64 for s in inv.segments)
    assert wal_archive.corrupt_segments(store, inv) == []  # every object re-read against its sha256
    assert pitr.find_gaps(inv.segments) == []
    listing = backup_cli(store, s3_endpoint, "list", "--label", LABEL, "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [r["id"] for r in rows if r["kind"] == "base"] == [kept.id, first.id]
    assert [r["gaps"] for r in rows if r["kind"] == "wal"] == [[]]

    deleted = apply_pitr_retention(store, LABEL, keep_base_backups=1)
    assert deleted.base_backups == [first.id]
    assert deleted.segments
    inv = wal_archive.list_inventory(store, LABEL)
    assert [b.id for b in inv.backups] == [kept.id]
    assert min(s.segno for s in inv.segments) == segment_of(kept.start_lsn)
    assert pitr.find_gaps(inv.segments) == []

    data_dir, wal_dir = restore_dir / "volume" / "pgdata", restore_dir / "volume" / "wal"
    done = backup_cli(store, s3_endpoint, "restore", "--label", LABEL, "--target-time", target.isoformat(),
                      "--data-dir", str(data_dir), "--wal-dir", str(wal_dir), "--in-place", "--stamp", "s3-restore",
                      "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"]["baseBackup"] == kept.id
    if RUN_AS:
        chown_tree(restore_dir, RUN_AS)
    server = LocalServer(data_dir, restore_dir, run_as=RUN_AS)
    server.start()
    try:
        server.wait_recovered(timeout=120)
        writer.assert_restored_to(target, ids(server.dsn()))
    finally:
        server.stop()

    damaged = inv.segments[0]
    s3_client.put_object(Bucket=store.bucket, Key="tradesense/prod/" + inv.object_of(damaged), Body=b"garbage")
    assert [s.segno for s in wal_archive.corrupt_segments(store, inv)] == [damaged.segno]
    plan, _ = pitr_restore.plan(store, LABEL, now=target, target_time=target)
    with pytest.raises(RestoreRefused, match="corrupt archive"):
        pitr_restore.prepare_data_directory(store, plan, inv, data_dir=tmp_path / "again", wal_dir=tmp_path / "w")
