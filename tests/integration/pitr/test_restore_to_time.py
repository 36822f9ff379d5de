"""Restore to a point in time on real PostgreSQL 15: rows are written continuously, a time T is noted, a
table is corrupted; the restore to T has every row committed before T and none begun after it. Also
"latest" after a corruption-free run, and the plan's refusal of a target outside the window."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.pitr.conftest import (
    LABEL,
    RUN_AS,
    Writer,
    corrupted_after_target,
    ids,
    target_of,
    tick_until,
)
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import pitr_restore
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.wal_archiver import WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres


def test_restore_to_time_before_corruption(source: ThrowawayPostgres, store: FilesystemStore, archiver: WalArchiver,
                                           writer: Writer, tmp_path: Path, *, restore_dir: Path) -> None:
    base, target = corrupted_after_target(source, store, archiver, writer, tmp_path / "bb")
    report = archiver.tick()
    assert report.window is not None
    assert report.window.earliest == base.finished_at
    assert report.health.gaps == ()

    plan, inv = pitr_restore.plan(store, LABEL, now=datetime.now(UTC), target_time=target)
    assert plan.base_backup.id == base.id
    assert plan.loss_after == target
    prepared = pitr_restore.prepare_data_directory(store, plan, inv, data_dir=restore_dir / "data",
                                                   wal_dir=restore_dir / "wal")
    server = pitr_restore.recover(prepared, restore_dir, run_as=RUN_AS, timeout=120)
    try:
        restored = ids(server.dsn())
        writer.assert_restored_to(target, restored)
        assert pitr_restore.verify(server, "postgres")["public.trades"] == len(restored)
    finally:
        server.stop()


def test_target_outside_window_is_refused(source: ThrowawayPostgres, store: FilesystemStore,
                                          archiver: WalArchiver, tmp_path: Path) -> None:
    archiver.tick()
    base = take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    tick_until(archiver, lambda r: r.window is not None)
    with pytest.raises(RestoreRefused, match="not restorable"):
        pitr_restore.plan(store, LABEL, now=datetime.now(UTC), target_time=base.started_at - timedelta(hours=1))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tradesense_operator", "backup", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_cli_lists_window_plans_and_restores_latest(source: ThrowawayPostgres, store: FilesystemStore,
                                                    archiver: WalArchiver, tmp_path: Path, restore_dir: Path) -> None:
    archiver.tick()
    base = take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    with source.connect() as conn:
        conn.execute("INSERT INTO trades (note) SELECT 'ok' FROM generate_series(1, 300)")
    tick_until(archiver, lambda r: r.health.lag_bytes == 0 and r.window is not None)
    listing = cli("list", "--storage-path", str(store.root), "--label", LABEL, "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [r["kind"] for r in rows] == ["base", "wal"]
    assert rows[0]["id"] == base.id
    assert rows[1]["gaps"] == []
    plan = cli("restore", "--storage-path", str(store.root), "--label", LABEL, "--latest", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["plan"]["baseBackup"] == base.id
    refused = cli("restore", "--storage-path", str(store.root), "--label", LABEL, "--dry-run",
                  "--target-time", "2000-01-01T00:00:00Z")
    assert refused.returncode == 1
    assert "not restorable" in refused.stderr
    run_as = ["--run-as", RUN_AS] if RUN_AS else []
    done = cli("restore", "--storage-path", str(store.root), "--label", LABEL, "--latest", "--yes", "--recover",
               "--data-dir", str(restore_dir / "data"), "--dbname", "postgres", *run_as)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables"] == {"public.trades": 300}
