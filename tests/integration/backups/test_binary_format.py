"""The `binary` format against real PostgreSQL 15: binary COPY of table chunks in one snapshot, N load sessions.

Covers: the tree (toc.json, schema.dump, one zstd file per chunk, big tables cut into several) with a
sha256 per file; a restore gives identical rows, sequence values, constraints and indexes, also for
awkward types (unicode, generated columns, arrays, bytea, jsonb, NULLs) and large objects; every chunk sees the dump's
snapshot while the database is written; a damaged or missing file is named by verification and refused
by the restore with no row committed; a killed chunk dump leaves nothing; the test restore passes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psutil
import psycopg
import pytest

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import FilesystemStore
from tradesense_operator.domain.backups import binary_toc
from tradesense_operator.domain.clock import ManualClock
from tradesense_operator.services.backups import binary_format, dump_pipeline
from tradesense_operator.services.backups.dump_pipeline import BackupFailed, BackupRequest, IntegrityError

from .conftest import child_killed_once_it_wrote, damage_tree_file, table_checksums


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every table is cut into chunks of at most 8 pages (a few hundred rows): several per table, both sessions busy."""
    monkeypatch.setattr(binary_toc, "SPLIT_MIN_PAGES", 1)
    monkeypatch.setattr(binary_toc, "MAX_CHUNK_PAGES", 8)


def restored_copy(source: PgTarget, suffix: str) -> PgTarget:
    copy = source.with_db(source.dbname + suffix)
    pgdump.create_database(source, copy.dbname)
    return copy


def pg_restore_children() -> list[psutil.Process]:
    """pg_restore processes this test started that are still alive (a held post-data one must never be left)."""
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "pg_restore"]


def query(target: PgTarget, text: str) -> list[tuple[object, ...]]:
    with psycopg.connect(host=target.host, user=target.user, dbname=target.dbname, autocommit=True) as conn:
        cursor = conn.execute(text.encode())
        return cursor.fetchall() if cursor.description is not None else []


AWKWARD = """
CREATE TABLE awkward (id int PRIMARY KEY, name text, doubled int GENERATED ALWAYS AS (id * 2) STORED,
                      tags text[], blob bytea, doc jsonb, amount numeric, at timestamptz);
INSERT INTO awkward (id, name, tags, blob, doc, amount, at)
SELECT g, 'zürich ✓ ' || g, ARRAY['a', 'b' || g], decode(md5(g::text), 'hex'), jsonb_build_object('n', g),
       g / 7.0, timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, 500) g;
INSERT INTO awkward (id) VALUES (0);
CREATE SEQUENCE loose_seq START 40;
SELECT nextval('loose_seq'), nextval('loose_seq');
SELECT lo_from_bytea(4242, 'a large object');
"""
SNAPSHOT_OF = "SELECT id, name, doubled, tags, blob, doc, amount, at FROM awkward ORDER BY id"


@pytest.mark.usefixtures("small_chunks")
def test_binary_backup_is_a_checksummed_tree_and_restores_identically(
        source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    query(source_db, AWKWARD)
    request = BackupRequest(source_db, "tradesense", BackupFormat.BINARY, record_counts=True)
    manifest = dump_pipeline.run_verified_backup(store, request, clock=clock, integrity=True,
                                                 test_restore_source=source_db, workers=2)
    assert manifest.verified, manifest.verification
    tree = store.root / manifest.file_name
    assert tree.name == "tradesense_20260105_020000.bin"
    on_disk = {p.name: p.stat().st_size for p in tree.iterdir()}
    assert {f.name: f.bytes for f in manifest.files} == on_disk
    toc = json.loads((tree / "toc.json").read_text())
    trades_chunks = [f for f in toc["files"] if f["table"] == "trades"]
    assert len(trades_chunks) >= 2  # the big table is cut, so both sessions dump and load it
    assert len(trades_chunks) % 2 == 0
    assert {f["name"] for f in toc["files"]} | {"toc.json", "schema.dump", "sequences.sql"} == set(on_disk)
    assert next(f for f in toc["files"] if f["table"] == "awkward")["columns"] == [
        "id", "name", "tags", "blob", "doc", "amount", "at"]  # the generated column is recomputed, not copied

    copy = restored_copy(source_db, "_bin")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert table_checksums(copy) == table_checksums(source_db)
    assert query(copy, SNAPSHOT_OF) == query(source_db, SNAPSHOT_OF)
    assert query(copy, "SELECT nextval('loose_seq'), nextval('trades_id_seq')") == query(
        source_db, "SELECT nextval('loose_seq'), nextval('trades_id_seq')")
    assert query(copy, "SELECT lo_get(4242)") == [(b"a large object",)]
    constraints = {str(r[0]) for r in query(copy, "SELECT conname FROM pg_constraint WHERE conrelid = "
                                                  "'trades'::regclass")}
    assert {"trades_pkey", "trades_user_id_fkey", "trades_side_check"} <= constraints


@pytest.mark.usefixtures("small_chunks")
def test_every_chunk_sees_the_snapshot_while_the_database_is_written(
        big_source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    stop = threading.Event()
    written = [0]

    def write() -> None:
        with psycopg.connect(host=big_source_db.host, user=big_source_db.user, dbname=big_source_db.dbname,
                             autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO trades (user_id, symbol, side, quantity, price, entry_date) "
                             "SELECT 1, 'AAPL', 'buy', 1, 1, now() FROM generate_series(1, 50)")
                conn.execute("DELETE FROM trades WHERE id IN (SELECT id FROM trades ORDER BY id LIMIT 20)")
                written[0] += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        request = BackupRequest(big_source_db, "tradesense", BackupFormat.BINARY, record_counts=True)
        manifest = dump_pipeline.run_verified_backup(store, request, clock=clock, integrity=True,
                                                     test_restore_source=big_source_db, workers=2)
    finally:
        stop.set()
        writer.join()
    assert written[0] > 0
    assert manifest.verification is not None
    assert manifest.verification.test_restore is True, manifest.verification  # restored counts = snapshot's


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_damaged_chunk_is_named_and_nothing_is_committed(source_db: PgTarget, store: FilesystemStore,
                                                         clock: ManualClock, damage: str) -> None:
    manifest = dump_pipeline.run_verified_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY),
                                                 clock=clock, integrity=True, workers=2)
    assert manifest.verified
    chunks = sorted((f for f in manifest.files if f.name.endswith(".copy.zst")), key=lambda f: f.name)
    victim = chunks[-1]  # the smallest chunk: planned last, so other sessions have loaded rows by then
    damage_tree_file(store, manifest, victim.name, damage, clock)
    copy = restored_copy(source_db, "_damaged")
    with pytest.raises(IntegrityError, match=victim.name if damage == "flip" else "missing"):
        dump_pipeline.restore_into(copy, store, manifest, workers=2)
    counts = pgdump.table_counts(copy)
    if damage == "flip":  # found at the end of that file's COPY: the schema is there, no session committed a row
        assert "public.trades" in counts
        assert set(counts.values()) == {0}
        # the post-data pg_restore, started and held during the load, was stopped before it built anything
        assert query(copy, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'") == []
    else:  # found before anything is restored
        assert counts == {}
    assert pg_restore_children() == []


def test_failed_pre_data_stops_the_waiting_sessions_and_the_held_post_data(
        source_db: PgTarget, store: FilesystemStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The COPY sessions connect while pre-data runs and the post-data pg_restore is started before the load:
    a pre-data failure is the error raised, no session copies anything and nothing is left running."""
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY),
                                        clock=clock, workers=2)
    real = pgdump.restore_directory_section

    def failing_pre_data(target: PgTarget, directory: Path, *, section: str, jobs: int = 1,
                         listing: Path | None = None) -> None:
        if section == "pre-data":
            raise pgdump.ToolFailed("pg_restore", 1, "pre-data refused")
        real(target, directory, section=section, jobs=jobs, listing=listing)

    monkeypatch.setattr(pgdump, "restore_directory_section", failing_pre_data)
    copy = restored_copy(source_db, "_no_pre_data")
    with pytest.raises(pgdump.ToolFailed, match="pre-data refused"):
        dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert pgdump.table_counts(copy) == {}
    assert pg_restore_children() == []


def test_killed_chunk_dump_leaves_nothing(big_source_db: PgTarget, store: FilesystemStore,
                                          clock: ManualClock) -> None:
    with child_killed_once_it_wrote(store, "psql", "*.copy.zst"), pytest.raises(BackupFailed, match="psql failed"):
        dump_pipeline.run_backup(store, BackupRequest(big_source_db, "tradesense", BackupFormat.BINARY),
                                 clock=clock, workers=2)
    assert dump_pipeline.list_backups(store) == []
    assert list(store.root.iterdir()) == []


@pytest.mark.usefixtures("small_chunks")
def test_a_failed_chunk_dump_is_the_error_raised_not_the_chunk_it_stopped(
        source_db: PgTarget, store: FilesystemStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk 0 is stopped because chunk 1 failed; the failure reported is chunk 1's, whatever the order of files."""
    zero_started = threading.Event()

    def dump_file(target: PgTarget, directory: Path, entry: binary_toc.DataFile, *, snapshot: str, encoding: str,
                  level: int, failed: threading.Event) -> None:
        if entry.name == "0.copy.zst":
            zero_started.set()
            assert failed.wait(timeout=60)
            raise binary_format._Cancelled  # what a chunk raises when another failed
        assert zero_started.wait(timeout=60)
        raise pgdump.ToolFailed("psql", -9, "")

    monkeypatch.setattr(binary_format, "_dump_file", dump_file)
    with pytest.raises(BackupFailed, match="psql failed"):
        dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY), clock=clock,
                                 workers=2)
    assert list(store.root.iterdir()) == []


def test_columns_whose_binary_form_names_type_oids_are_refused_at_backup(source_db: PgTarget, store: FilesystemStore,
                                                                          clock: ManualClock) -> None:
    query(source_db, "CREATE TYPE mood AS ENUM ('calm', 'wild'); "
                     "CREATE TABLE moods (id int PRIMARY KEY, now mood, history mood[])")
    with pytest.raises(BackupFailed, match=r"cannot carry public\.moods\.history \(mood\[\]\).*directory format"):
        dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY), clock=clock)
    assert list(store.root.iterdir()) == []  # nothing left behind
    query(source_db, "DROP TABLE moods")
    # a domain is sent as its base type: over an array of enums (or over a composite) it names OIDs too
    query(source_db, "CREATE DOMAIN mood_list AS mood[]; CREATE TABLE mood_lists (id int PRIMARY KEY, list mood_list)")
    with pytest.raises(BackupFailed, match=r"cannot carry public\.mood_lists\.list \(mood_list\)"):
        dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY), clock=clock)
    query(source_db, "DROP TABLE mood_lists; CREATE TYPE pair AS (a int, b int); CREATE DOMAIN tidy_pair AS pair; "
                     "CREATE TABLE pairs (id int PRIMARY KEY, p tidy_pair)")
    with pytest.raises(BackupFailed, match=r"cannot carry public\.pairs\.p \(tidy_pair\)"):
        dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY), clock=clock)
    query(source_db, "DROP TABLE pairs")  # a plain enum column travels as its label
    query(source_db, "CREATE TABLE moods (id int PRIMARY KEY, now mood)")
    query(source_db, "INSERT INTO moods VALUES (1, 'wild')")
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY),
                                        clock=clock)
    copy = restored_copy(source_db, "_enum")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    assert query(copy, "SELECT id, now::text FROM moods") == [(1, "wild")]


def test_materialized_views_come_back_populated_and_odd_table_names_keep_their_rows(
        source_db: PgTarget, store: FilesystemStore, clock: ManualClock) -> None:
    """The schema dump leaves out only the chunked tables' rows: a materialized view's REFRESH stays in it (a
    blanket `--exclude-table-data=*` dropped it, and the view came back unpopulated), and a table whose name
    holds pattern characters is excluded by exactly its name."""
    query(source_db, """
        CREATE TABLE "odd*.name" (id int PRIMARY KEY, v text);
        INSERT INTO "odd*.name" SELECT g, 'v' || g FROM generate_series(1, 50) g;
        CREATE MATERIALIZED VIEW volume_by_user AS SELECT user_id, count(*) AS n FROM trades GROUP BY user_id;
        CREATE MATERIALIZED VIEW never_filled AS SELECT 1 AS one WITH NO DATA;
    """)
    manifest = dump_pipeline.run_backup(store, BackupRequest(source_db, "tradesense", BackupFormat.BINARY),
                                        clock=clock, workers=2)
    copy = restored_copy(source_db, "_mv")
    dump_pipeline.restore_into(copy, store, manifest, workers=2)
    by_user = "SELECT user_id, n FROM volume_by_user ORDER BY user_id"
    assert query(copy, by_user) == query(source_db, by_user) != []
    populated = "SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY relname"
    assert query(copy, populated) == [("never_filled", False), ("volume_by_user", True)]
    assert query(copy, 'SELECT count(*), max(v) FROM "odd*.name"') == [(50, "v9")]
    assert table_checksums(copy) == table_checksums(source_db)
