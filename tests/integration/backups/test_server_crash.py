"""A PostgreSQL server that dies mid-dump (a throwaway instance, SIGKILLed) leaves no backup behind.

Covers: pg_dump sees the connection drop, the run fails with the reason, no manifest and no file remain,
so retention and restore cannot mistake the partial dump for a backup.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest
from tradesense_operator.services.backups.restore import RestoreRefused, find_clean_backup_sync
from tradesense_sandbox import schema
from tradesense_sandbox.servers.postgres import ThrowawayPostgres


def test_server_killed_mid_dump_leaves_no_backup(throwaway_pg: ThrowawayPostgres, tmp_path: Path,
                                                 clock: ManualClock) -> None:
    throwaway_pg.create_database("tradesense")
    with throwaway_pg.connect("tradesense") as conn:
        schema.load_schema(conn)
        schema.populate(conn, users=500, trades=120_000, seed=3)
    target = PgTarget(host=throwaway_pg.host, port=throwaway_pg.port, user="postgres", dbname="tradesense")
    store = FilesystemStore(tmp_path / "bk")

    def crash(pid: int, raw: int) -> None:
        if raw >= 256 * 1024 and throwaway_pg.pid is not None:
            throwaway_pg.kill()

    with pytest.raises(BackupFailed, match="pg_dump failed"):
        dump_pipeline.run_backup(store, BackupRequest(target, "tradesense"), clock=clock, chunk_size=64 * 1024,
                          on_progress=crash)
    assert dump_pipeline.list_backups(store) == []
    assert list(store.root.iterdir()) == []
    with pytest.raises(RestoreRefused):
        find_clean_backup_sync(store, label="tradesense")
