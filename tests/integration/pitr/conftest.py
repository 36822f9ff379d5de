"""Point-in-time recovery fixtures: a throwaway PostgreSQL streaming into a filesystem archive.

The throwaway server has PostgreSQL's defaults that PITR needs (wal_level replica, max_wal_senders,
pg_hba admitting replication from loopback); restores run in a fresh directory the server's OS user owns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore, FilesystemStore
from tradesense_operator.domain.backups.pitr import BaseBackupInfo
from tradesense_operator.domain.clock import SystemClock
from tradesense_operator.services.backups.base_backup import take_base_backup
from tradesense_operator.services.backups.wal_archiver import ArchiverReport, WalArchiver
from tradesense_sandbox.servers.postgres import ThrowawayPostgres

LABEL = "pol"
SLOT = "tso_archiver"
RUN_AS = "postgres" if os.geteuid() == 0 else None


@pytest.fixture
def source(throwaway_pg_factory: Callable[..., ThrowawayPostgres]) -> ThrowawayPostgres:
    server = throwaway_pg_factory(settings={"wal_level": "replica", "max_wal_senders": "5"})
    with server.connect() as conn:
        conn.execute("CREATE TABLE trades (id bigserial PRIMARY KEY, note text NOT NULL, "
                     "at timestamptz NOT NULL DEFAULT clock_timestamp())")
    return server


def target_of(server: ThrowawayPostgres) -> PgTarget:
    return PgTarget(host=server.host, port=server.port, dbname="postgres", user=server.user)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "store")


@pytest.fixture
def archiver(source: ThrowawayPostgres, store: FilesystemStore, tmp_path: Path) -> Iterator[WalArchiver]:
    arch = WalArchiver(target=target_of(source), store=store, label=LABEL, staging=tmp_path / "staging",
                       slot=SLOT, clock=SystemClock())
    yield arch
    arch.stop()


@pytest.fixture
def restore_dir() -> Iterator[Path]:
    """Outside pytest's root-only tmp tree: the restored server's OS user must reach it."""
    path = Path(tempfile.mkdtemp(prefix="tso-pitr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def tick_until(arch: WalArchiver, done: Callable[[ArchiverReport], bool], timeout: float = 30.0) -> ArchiverReport:
    deadline = time.monotonic() + timeout
    while True:
        report = arch.tick()
        if done(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


@dataclass
class Writer:
    """Commits one row at a time; remembers, per row, when the INSERT started and when its commit returned."""

    server: ThrowawayPostgres
    rows: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    server_db: str = "postgres"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def assert_restored_to(self, target: datetime, restored: set[int]) -> None:
        """Every row committed before `target` is in `restored`, none begun after it (both sides non-empty)."""
        committed_before = {i for i, _, done in self.rows if done < target}
        begun_after = {i for i, began, _ in self.rows if began > target}
        assert committed_before
        assert begun_after
        assert committed_before <= restored
        assert not (begun_after & restored)

    def run(self) -> None:
        with self.server.connect(self.server_db) as conn:
            while not self.stop.is_set():
                began = datetime.now(UTC)
                row = conn.execute("INSERT INTO trades (note) VALUES ('ok') RETURNING id").fetchone()
                assert row is not None
                self.rows.append((int(row[0]), began, datetime.now(UTC)))
                time.sleep(0.005)


@pytest.fixture
def writer(source: ThrowawayPostgres) -> Iterator[Writer]:
    w = Writer(source)
    yield w
    w.finish()


def ids(server_dsn: str) -> set[int]:
    with psycopg.connect(server_dsn) as conn:
        return {int(r[0]) for r in conn.execute("SELECT id FROM trades WHERE note = 'ok'").fetchall()}  # type: ignore[arg-type]


def write_and_switch(server: ThrowawayPostgres, rows: int = 50, switches: int = 1) -> None:
    """Commit rows and finish the current segment(s), as a busy server would."""
    with server.connect() as conn:
        for _ in range(switches):
            conn.execute("INSERT INTO trades (note) SELECT 'ok' FROM generate_series(1, %s)", (rows,))
            conn.execute("SELECT pg_switch_wal()")


def archive_with_base(source: ThrowawayPostgres, store: BackupStore, archiver: WalArchiver, tmp_path: Path,
                      *, switches: int) -> BaseBackupInfo:
    """Start streaming, take a base backup, fill `switches` segments after it."""
    archiver.tick()
    base = take_base_backup(target_of(source), store, LABEL, staging=tmp_path / "bb", clock=SystemClock())
    write_and_switch(source, switches=switches)
    return base


def corrupted_after_target(
    source: ThrowawayPostgres, store: BackupStore, archiver: WalArchiver, writer: Writer, staging: Path,
) -> tuple[BaseBackupInfo, datetime]:
    """Base backup, rows written continuously around a noted time T, then every row corrupted; (base, T)
    once the archive's window reaches past T."""
    archiver.tick()
    base = take_base_backup(target_of(source), store, LABEL, staging=staging, clock=SystemClock())
    writer.start()
    time.sleep(1.0)
    target = datetime.now(UTC)
    time.sleep(1.0)
    writer.finish()
    with source.connect(writer.server_db) as conn:
        conn.execute("UPDATE trades SET note = 'corrupt'")  # the incident: every row damaged
    tick_until(archiver, lambda r: r.window is not None and r.window.latest > target)
    return base, target
