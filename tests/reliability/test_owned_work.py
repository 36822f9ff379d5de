"""Work never outlives its attempt (issue 12): a restore or safety backup that is cancelled or times out mid-way
is really stopped before the cancellation goes on — no session of it is left in pg_stat_activity, no psql or
pg_dump child and no worker thread remain, nothing keeps writing — and the database is left in the documented
resumable state (`restoring` marker, no restored rows), from which the next attempt restores it completely.

Real PostgreSQL (a test database on the shared server). The backup store answers slowly (a store on a slow
network), so the work is reliably caught mid-way; the cancellation is triggered as soon as the work's own
session is seen in pg_stat_activity.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.services import PgDatabase
from tests.support.waiting import eventually
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import READ_CHUNK, BackupWriter, FilesystemStore
from tradesense_operator.domain.backups.manifest import BackupManifest
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, restore
from tradesense_operator.services.backups.dump_pipeline import BackupRequest
from tradesense_operator.services.backups.owned_work import application_name, run_owned
from tradesense_sandbox.schema import fingerprint

STAMP = "incident-uid/restore"


class SlowStore(FilesystemStore):
    """A filesystem store whose reads and writes crawl (4 KiB per 100 ms), like object storage over a bad link.

    The restore of the test backup is then slow enough that a 5 s timeout lands in the middle of it (the test
    asserts the `restoring` marker after the stop, which a timeout before or after the restore would not leave).
    """

    def read_chunks(self, name: str, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        for chunk in super().read_chunks(name, 4096):
            time.sleep(0.1)
            yield chunk

    def open_writer(self, name: str) -> BackupWriter:
        inner = super().open_writer(name)

        class Crawling:
            def write(self, data: bytes | memoryview) -> None:
                time.sleep(0.05)
                inner.write(data)

            def __getattr__(self, attr: str) -> object:
                return getattr(inner, attr)

        return Crawling()  # type: ignore[return-value]


def sessions(target: PgTarget, name: str) -> int:
    with target.admin().connect() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()
    return int(row[0]) if row else 0


def tool_children() -> list[str]:
    """psql / pg_dump / pg_restore processes that are children of this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == os.getpid() and comm in ("psql", "pg_dump", "pg_restore"):
            found.append(f"{comm}[{entry.name}]")
    return found


def owned_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("owned-")]


def restoring(target: PgTarget) -> bool:
    try:
        comment = pgdump.database_comment(target, target.dbname)
    except NotFound:  # between DROP and CREATE
        return False
    return (comment or "").startswith(f"tradesense-operator restore restoring stamp={STAMP}")


def restored_rows(target: PgTarget) -> int | None:
    """Rows in trades, None while the table does not exist (the restore's transaction not committed)."""
    with target.connect() as conn:
        row = conn.execute("SELECT to_regclass('public.trades') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        counted = conn.execute("SELECT count(*) FROM trades").fetchone()
        return int(counted[0]) if counted else 0


@pytest.fixture
def database(pg_database_factory: Callable[..., PgDatabase]) -> PgDatabase:
    return pg_database_factory(users=100, trades=20_000, seed=3)


@pytest.fixture
def backed_up(database: PgDatabase, tmp_path: Path) -> tuple[PgTarget, SlowStore, BackupManifest, str]:
    """(target, slow store, verified backup, safety backup id) with the database damaged since the backup."""
    target = PgTarget(host="127.0.0.1", port=5432, user="postgres", dbname=database.name, sslmode="disable")
    clock = ManualClock()
    fast = FilesystemStore(tmp_path / "store")
    manifest = dump_pipeline.verify_backup(fast, dump_pipeline.run_backup(fast, BackupRequest(target, "db"),
                                                                        clock=clock), clock=clock)
    with target.connect() as conn:
        conn.execute("DELETE FROM trades WHERE id % 2 = 0")
    safety = restore.take_safety_backup_sync(fast, target, stamp="incident-uid/safety-backup", label="db",
                                             clock=clock)
    assert safety is not None
    return target, SlowStore(tmp_path / "store"), manifest, safety.id


@pytest.mark.parametrize("how", ["cancel", pytest.param("timeout", marks=pytest.mark.slow)])
async def test_a_restore_stopped_mid_way_leaves_nothing_running_and_resumes(
    backed_up: tuple[PgTarget, SlowStore, BackupManifest, str], database: PgDatabase, how: str
) -> None:
    target, slow, manifest, safety_id = backed_up
    with database.connect() as conn:
        expected = fingerprint(conn)
    app = application_name(STAMP)

    def work(owned: PgTarget) -> object:
        return restore.restore_database_sync(slow, owned, manifest, stamp=STAMP, safety_backup_id=safety_id)

    running = asyncio.ensure_future(run_owned(work, target, tag=STAMP, what="restore"))
    if how == "cancel":
        await eventually(lambda: restoring(target) and sessions(target, app) > 0,
                         what="the restore's session streaming data")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    else:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(running, timeout=5.0)

    # the moment the cancellation is through, nothing of the work is left
    assert sessions(target, app) == 0
    assert tool_children() == []
    assert owned_threads() == []
    comment = pgdump.database_comment(target, target.dbname)
    assert comment == f"tradesense-operator restore restoring stamp={STAMP} backup={manifest.id}"  # resumable
    assert restored_rows(target) is None  # the restore's one transaction was rolled back
    await asyncio.sleep(0.5)
    assert restored_rows(target) is None  # ... and nothing writes afterwards
    assert sessions(target, app) == 0

    # the next attempt (same stamp) finishes the job from that state
    report = await run_owned(
        lambda owned: restore.restore_database_sync(FilesystemStore(slow.root), owned, manifest, stamp=STAMP,
                                                    safety_backup_id=safety_id),
        target, tag=STAMP, what="restore")
    assert not report.already_done
    with database.connect() as conn:
        expected_after_restore = fingerprint(conn)
    assert expected_after_restore != expected  # the damaged rows are back
    assert restored_rows(target) == 20_000


@pytest.mark.slow
async def test_a_safety_backup_stopped_mid_dump_leaves_no_backup_and_no_pg_dump(
    backed_up: tuple[PgTarget, SlowStore, BackupManifest, str],
) -> None:
    target, slow, _, _ = backed_up
    stamp = "other-incident/safety-backup"
    app = application_name(f"{stamp}/owned")

    running = asyncio.ensure_future(run_owned(
        lambda owned: restore.take_safety_backup_sync(slow, owned, stamp=stamp, label="db", clock=ManualClock()),
        target, tag=f"{stamp}/owned", what="safety backup"))
    await eventually(lambda: sessions(target, app) > 0, what="pg_dump's session")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert sessions(target, app) == 0
    assert tool_children() == []
    assert owned_threads() == []
    assert [m for m in dump_pipeline.list_backups(slow, label="db-safety") if m.stamp == stamp] == []
