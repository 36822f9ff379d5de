"""Restores of plain dumps with their rows split over several COPY sessions, and the restore's session settings.

Against real PostgreSQL 15: a split plain restore (gzip and zstd) gives identical rows, constraints and
sequence values and really used several transactions; a checksum found wrong at the very end of the
stream commits no row; a failing session commits nothing; the restore sessions' settings
(maintenance_work_mem, synchronous_commit) apply to those sessions only, never to the restored database
or to other sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import dump_pipeline, parallel_load
from tradesense_operator.services.backups.dump_pipeline import BackupRequest, IntegrityError

from .conftest import table_checksums


def one_value(target: PgTarget, query: str) -> object:
    with psycopg.connect(host=target.host, port=target.port, user=target.user, dbname=target.dbname) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def empty_copy(source: PgTarget, suffix: str) -> PgTarget:
    copy = source.with_db(source.dbname + suffix)
    pgdump.create_database(source, copy.dbname)
    return copy


@pytest.fixture
def split_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plain dump counts as big, and rows go out in blocks of ~4 KiB (so both sessions get some)."""
    monkeypatch.setattr(dump_pipeline, "SPLIT_PLAIN_MIN_BYTES", 1)
    monkeypatch.setattr(parallel_load, "BLOCK", 4096)


@pytest.mark.usefixtures("split_everything")
@pytest.mark.parametrize("fmt", [BackupFormat.PLAIN_GZIP, BackupFormat.PLAIN_ZSTD])
def test_split_plain_restore_is_identical(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                          fmt: BackupFormat) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", fmt), clock=clock)
    copy = empty_copy(source_db, "_split")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert table_checksums(copy) == table_checksums(source_db)
    assert one_value(copy, "SELECT count(DISTINCT xmin::text) FROM trades") == 2  # two sessions' transactions
    constraints = "SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = 'trades'::regclass"
    for query in ("SELECT last_value FROM trades_id_seq", constraints):
        assert one_value(copy, query) == one_value(source_db, query)


@pytest.mark.usefixtures("split_everything")
def test_checksum_wrong_at_the_end_commits_no_row(source_db: PgTarget, store: FilesystemStore,
                                                  clock: ManualClock) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_ZSTD),
                                        clock=clock)
    copy = empty_copy(source_db, "_badsum")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        dump_pipeline.restore_into(copy, store, replace(manifest, sha256="0" * 64), workers=2)
    assert one_value(copy, "SELECT count(*) FROM trades") == 0  # the sessions saw every row, then rolled back
    assert one_value(copy, "SELECT count(*) FROM users") == 0


@pytest.mark.usefixtures("split_everything")
def test_a_failing_session_commits_nothing(source_db: PgTarget, store: FilesystemStore, clock: ManualClock,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_GZIP),
                                        clock=clock)
    copy = empty_copy(source_db, "_fail")
    original = pgdump.copy_in
    started: list[PgTarget] = []

    def second_session_fails(target: PgTarget, blocks: Iterable[tuple[str, bytes]], **kwargs: Any) -> None:
        started.append(target)
        if len(started) == 2:
            raise pgdump.ToolFailed("COPY", 1, "injected failure of one session")
        original(target, blocks, **kwargs)

    monkeypatch.setattr(pgdump, "copy_in", second_session_fails)
    with pytest.raises(pgdump.ToolFailed, match="injected failure"):
        dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert one_value(copy, "SELECT count(*) FROM trades") == 0  # the other session reached the barrier, rolled back
    assert one_value(copy, "SELECT count(*) FROM users") == 0


def test_restore_session_settings_stay_in_the_restore_sessions(source_db: PgTarget, store: FilesystemStore,
                                                             clock: ManualClock) -> None:
    session = dump_pipeline.restore_session(source_db)
    with session.connect() as conn:
        assert conn.execute("SHOW maintenance_work_mem").fetchone() == ("256MB",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        with source_db.connect() as other:  # a concurrent ordinary session keeps the server's values
            assert other.execute("SHOW synchronous_commit").fetchone() == ("on",)
            default_mem = other.execute("SHOW maintenance_work_mem").fetchone()
    assert default_mem != ("256MB",)
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.PLAIN_ZSTD),
                                        clock=clock)
    copy = empty_copy(source_db, "_settings")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert one_value(copy, "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                           "WHERE d.datname = current_database()") == 0  # nothing stored on the database
    assert one_value(copy, "SHOW synchronous_commit") == "on"  # a new session on the restored database
    assert (one_value(copy, "SHOW maintenance_work_mem"),) == default_mem
