"""The archiver under faults, on real PostgreSQL 15: pg_receivewal killed mid-segment (the slot holds the
WAL: no gap), the server restarting, storage full, a corrupted segment, a segment lost from the archive
(gap detected, window shrinks, restore refuses), retention keeping what kept base backups need, and the
scheduled test restore of the newest base backup plus WAL."""

from __future__ import annotations

import errno
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.pitr.conftest import LABEL, RUN_AS, archive_with_base, target_of, tick_until, write_and_switch
from tradesense_operator.clients.errors import Unavailable
from tradesense_operator.clients.storage import BackupWriter, FilesystemStore
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.wal import segment_of
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups import pitr_restore, wal_archive
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.pitr_retention import apply_pitr_retention
from tradesense_operator.services.backups.restore import RestoreRefused
from tradesense_operator.services.backups.wal_archiver import ArchiverReport, WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

pytestmark = pytest.mark.slow


def condition(report: ArchiverReport) -> tuple[bool, str, str]:
    return pitr.archiving_condition(report.health, warning_seconds=60, warning_bytes=1 << 30)


def streaming(report: ArchiverReport) -> bool:
    return condition(report)[1] == "Streaming" and report.health.lag_bytes == 0


def test_archiver_killed_mid_segment_restarts_without_gap(source: ThrowawayPostgres, store: FilesystemStore,
                                                          archiver: WalArchiver, tmp_path: Path) -> None:
    archive_with_base(source, store, archiver, tmp_path, switches=2)
    tick_until(archiver, streaming)
    with source.connect() as conn:
        conn.execute("INSERT INTO trades (note) SELECT 'ok' FROM generate_series(1, 500)")  # mid-segment
    assert archiver.receiver is not None
    os.killpg(archiver.receiver.pid, signal.SIGKILL)
    archiver.receiver.proc.wait()
    write_and_switch(source, switches=3)  # written while nothing streams: the slot keeps it
    report = archiver.tick()
    assert archiver.restarts == 1
    assert "killed by signal 9" in report.health.detail
    report = tick_until(archiver, streaming)
    assert report.gaps == []
    assert report.window is not None
    assert len(pitr.contiguous_runs(wal_archive.list_inventory(store, LABEL).segments)) == 1


def test_server_restart_is_reported_then_archiving_resumes(source: ThrowawayPostgres, store: FilesystemStore,
                                                           archiver: WalArchiver, tmp_path: Path) -> None:
    archiver.tick()
    take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    tick_until(archiver, streaming)
    source.stop()
    report = archiver.tick()
    assert condition(report)[:2] == (False, "Stopped")
    source.start()
    write_and_switch(source, switches=2)
    report = tick_until(archiver, streaming)
    assert condition(report)[0] is True
    assert report.gaps == []


class FullStore(FilesystemStore):
    """A store whose device is full: every write fails the way a full PVC does."""

    full = True

    def open_writer(self, name: str) -> BackupWriter:
        if self.full:
            raise Unavailable(f"writing {name}: No space left on device") from OSError(errno.ENOSPC, "No space")
        return super().open_writer(name)


def test_storage_full_is_reported_and_catches_up_without_gap(source: ThrowawayPostgres, tmp_path: Path) -> None:
    store = FullStore(tmp_path / "store")
    store.full = False
    arch = WalArchiver(target=target_of(source), store=store, label=LABEL, staging=tmp_path / "staging",
                       slot="full_slot", clock=SystemClock())
    try:
        arch.tick()
        take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
        tick_until(arch, streaming)
        store.full = True
        write_and_switch(source, switches=2)
        report = tick_until(arch, lambda r: condition(r)[1] == "StorageFull")
        assert condition(report)[:2] == (False, "StorageFull")
        store.full = False
        report = tick_until(arch, streaming)
        assert report.gaps == []
    finally:
        arch.stop()


def test_corrupt_segment_is_reported_and_restore_refuses(source: ThrowawayPostgres, store: FilesystemStore,
                                                         archiver: WalArchiver, tmp_path: Path,
                                                         restore_dir: Path) -> None:
    archive_with_base(source, store, archiver, tmp_path, switches=3)
    tick_until(archiver, streaming)
    inv = wal_archive.list_inventory(store, LABEL)
    victim = [s for s in inv.segments if not s.partial][-1]
    path = tmp_path / "store" / inv.object_of(victim)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert archiver.check_archive() == [victim.segno]
    report = archiver.tick()
    assert condition(report)[:2] == (False, "CorruptSegment")
    chosen, inv = pitr_restore.plan(store, LABEL, now=datetime.now(UTC), target_time=report.window.latest
                                    if report.window else None)
    with pytest.raises(RestoreRefused, match="corrupt"):
        pitr_restore.prepare_data_directory(store, chosen, inv, data_dir=restore_dir / "data",
                                            wal_dir=restore_dir / "wal")


def test_gap_shrinks_window_and_latest_restore_refuses(source: ThrowawayPostgres, store: FilesystemStore,
                                                        archiver: WalArchiver, tmp_path: Path) -> None:
    first = archive_with_base(source, store, archiver, tmp_path, switches=3)
    report = tick_until(archiver, streaming)
    assert report.window is not None
    assert report.window.base_backup_id == first.id
    inv = wal_archive.list_inventory(store, LABEL)
    lost = [s for s in inv.segments if not s.partial][-2]
    wal_archive.delete_segment(store, inv, lost)
    write_and_switch(source, switches=1)
    report = tick_until(archiver, lambda r: r.health.lag_bytes == 0)
    assert condition(report)[:2] == (False, "Gap")
    assert [(g.first, g.last) for g in report.gaps] == [(lost.segno, lost.segno)]
    with pytest.raises(RestoreRefused, match="gap"):
        pitr_restore.plan(store, LABEL, now=datetime.now(UTC))
    second = take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    write_and_switch(source, switches=1)
    report = tick_until(archiver, lambda r: r.window is not None and r.window.base_backup_id == second.id)
    assert report.window is not None
    assert report.window.earliest == second.finished_at  # the window after the gap starts at the new backup


def test_retention_keeps_segments_of_kept_base_backups(source: ThrowawayPostgres, store: FilesystemStore,
                                                       archiver: WalArchiver, tmp_path: Path,
                                                       restore_dir: Path) -> None:
    archive_with_base(source, store, archiver, tmp_path, switches=3)
    kept = take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    write_and_switch(source, switches=2)
    tick_until(archiver, streaming)
    result = apply_pitr_retention(store, LABEL, keep_base_backups=1)
    assert len(result.base_backups) == 1
    assert result.segments
    inv = wal_archive.list_inventory(store, LABEL)
    floor = min(s.segno for s in inv.segments)
    assert floor == segment_of(kept.start_lsn)
    trial = pitr_restore.trial_restore_latest(store, LABEL, now=datetime.now(UTC), workdir=restore_dir,
                                              dbname="postgres", run_as=RUN_AS, timeout=120)
    assert trial.ok, trial.detail
    assert trial.plan is not None
    assert trial.plan.base_backup.id == kept.id
    with source.connect() as conn:
        row = conn.execute("SELECT count(*) FROM trades").fetchone()
    assert trial.table_counts == {"public.trades": row[0] if row else -1}
