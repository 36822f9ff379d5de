"""The `binary` format: per-table-chunk binary COPY streams in one snapshot, zstd, loaded by N sessions.

Why: on a small server the dump and the restore are the server's own row work. Binary COPY skips the
text formatting of numerics and timestamps on the way out and their parsing on the way in (measured on
the runbook schema: ~30 % less server CPU to dump, ~35 % less to load, docs/backups.md), and big
tables are cut into ctid page ranges so N sessions dump and load one table at once. The schema,
indexes and constraints come from `pg_dump -Fc` without the chunked tables' rows in the same snapshot and are
restored by pg_restore around the data (post-data with `-j N`, which also refreshes materialized views);
sequence values are read in the snapshot.

Owns writing, reading back and restoring a binary tree; the file checks are directory_format's (the
same per-file sha256 and manifest list). It must not choose backups, write manifests or drop databases.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, NamedTuple

import zstandard
from psycopg import sql

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.binary_toc import (
    SCHEMA_NAME,
    SEQUENCES_NAME,
    TOC_NAME,
    DataFile,
    TableOfContents,
    TocError,
    plan,
)
from tradesense_operator.domain.backups.manifest import BackupManifest, StoredFile, files_digest
from tradesense_operator.services.backups.directory_format import Scan, TreeDump, check_one, read_file, scan_local
from tradesense_operator.services.backups.errors import IntegrityError

BLOCK = 1 << 20
PIPE_BYTES = 1 << 20


class _Cancelled(Exception):
    """Another chunk of the dump, or another COPY session of the restore, failed; this one stops."""


def _query(entry: DataFile) -> str:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in entry.columns)
    query = sql.SQL("SELECT {} FROM ONLY {}.{}").format(columns, sql.Identifier(entry.schema),
                                                          sql.Identifier(entry.table)).as_string(None)
    where = entry.where()
    return f"{query} WHERE {where}" if where else query


def _compress_into(path: Path, stream: IO[bytes], level: int, failed: threading.Event) -> None:
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
    with path.open("wb") as out:
        while block := stream.read(BLOCK):
            if failed.is_set():
                raise _Cancelled
            out.write(compressor.compress(block))
        out.write(compressor.flush())


def _dump_file(target: PgTarget, directory: Path, entry: DataFile, *, snapshot: str, encoding: str, level: int,
               failed: threading.Event) -> None:
    """One chunk: psql's binary COPY → zstd (one frame, content checksum) → file."""
    process = pgdump.start_copy_out(target, _query(entry), snapshot=snapshot, encoding=encoding)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        _compress_into(directory / entry.name, process.stdout, level, failed)
        process.wait()
    except BaseException:
        process.kill()
        raise


def _raise_first_real(errors: list[BaseException | None]) -> None:
    """Raise the failure that stopped the others, not a `_Cancelled` that one of them raised because of it."""
    failures = [error for error in errors if error is not None]
    real = [error for error in failures if not isinstance(error, _Cancelled | threading.BrokenBarrierError)]
    if failures:
        raise (real or failures)[0]


def dump_tree(store: BackupStore, name: str, target: PgTarget, *, snapshot: str, level: int,
              workers: int) -> TreeDump:
    """Schema archive and every chunk (`workers` at a time) into the tree `name`, each file scanned, then commit.

    Each chunk is scanned (sha256, zstd frame and content checksum, binary COPY framing) by the thread
    that wrote it, right after writing it, while the other chunks are still dumping.
    """
    writer = store.open_tree(name)
    failed = threading.Event()
    try:
        with pgdump.snapshot_contents(target, snapshot) as contents:
            encoding = contents.encoding
            toc = plan([(s, t, tuple(c), pages) for s, t, c, pages in contents.tables], encoding=encoding,
                       workers=workers, large_objects=contents.large_objects)
            (writer.path / TOC_NAME).write_text(toc.to_json())
            (writer.path / SEQUENCES_NAME).write_text(contents.sequences_sql)

            def chunk(entry: DataFile) -> Scan:
                try:
                    _dump_file(target, writer.path, entry, snapshot=snapshot, encoding=encoding, level=level,
                               failed=failed)
                    return scan_local(writer.path / entry.name)
                except BaseException:
                    failed.set()
                    raise

            # the schema dump (mostly catalog queries) beside the `workers` chunk dumps, not in their place
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="schema-dump") as side, \
                    ThreadPoolExecutor(max_workers=workers, thread_name_prefix="binary-dump") as pool:
                schema = side.submit(pgdump.dump_schema, target, writer.path / SCHEMA_NAME, snapshot=snapshot,
                                     data_elsewhere=[(s, t) for s, t, _, _ in contents.tables])
                chunks = [pool.submit(chunk, entry) for entry in toc.files]
                schema.result()
                _raise_first_real([done.exception() for done in chunks])
                scans = [done.result() for done in chunks]
        scans += [scan_local(writer.path / name) for name in (TOC_NAME, SCHEMA_NAME, SEQUENCES_NAME)]
        writer.commit()
    except BaseException:
        failed.set()
        writer.abort()
        raise
    return TreeDump(tuple(sorted((s.file for s in scans), key=lambda f: f.name)), sum(s.raw_bytes for s in scans))


# -- restore ------------------------------------------------------------------------------------------


def _stored(store: BackupStore, manifest: BackupManifest, local: Path | None, name: str) -> Iterable[bytes]:
    if local is not None:
        return read_file(local / name)
    return store.read_chunks(f"{manifest.file_name}/{name}")


def _checked_rows(chunks: Iterable[bytes], expected: StoredFile, what: str) -> Iterator[bytes]:
    """Decompressed rows of one data file; IntegrityError (before the COPY ends) unless size and sha256 match."""
    digest = hashlib.sha256()
    size = 0
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if out := decompressor.decompress(chunk):
                yield out
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: {expected.name}: zstd data is corrupt: {exc}") from exc
    except (FileNotFoundError, NotFound) as exc:
        raise IntegrityError(f"{what}: {expected.name} is missing") from exc
    if size != expected.bytes or digest.hexdigest() != expected.sha256:
        raise IntegrityError(f"{what}: {expected.name}: size or sha256 does not match the manifest")
    if not decompressor.eof:
        raise IntegrityError(f"{what}: {expected.name}: zstd data is truncated")


def _load(target: PgTarget, toc: TableOfContents, data: dict[str, Iterable[bytes]], listed: dict[str, StoredFile],
          *, workers: int, what: str, tables_ready: Callable[[], object] = lambda: None) -> None:
    """Every data file through `workers` COPY sessions that take files as they free up; all commit, or none.

    A barrier before COMMIT: a failing session, or a file whose checksum is found wrong at its end,
    leaves every table empty. The sessions connect at once and call `tables_ready` (which waits for the
    pre-data section, or raises its error) before their first COPY.
    """
    pending: queue.SimpleQueue[DataFile] = queue.SimpleQueue()
    for entry in toc.files:
        pending.put(entry)
    sessions = max(1, min(workers, len(toc.files)))
    all_copied = threading.Barrier(sessions)
    failed = threading.Event()

    def streams() -> Iterator[tuple[str, Iterable[bytes]]]:
        tables_ready()
        while not failed.is_set():
            try:
                entry = pending.get_nowait()
            except queue.Empty:
                return
            statement = pgdump.copy_statement(entry.schema, entry.table, list(entry.columns))
            yield f"{statement} (FORMAT binary)", _checked_rows(data[entry.name], listed[entry.name], what)
        raise _Cancelled

    def session() -> None:
        try:
            pgdump.copy_streams(target, streams(), encoding=toc.encoding, before_commit=all_copied.wait)
        except BaseException:
            failed.set()
            all_copied.abort()
            raise

    with ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="binary-load") as pool:
        done = [pool.submit(session) for _ in range(sessions)]
    _raise_first_real([future.exception() for future in done])


def _toc(store: BackupStore, manifest: BackupManifest, local: Path | None,
         listed: dict[str, StoredFile]) -> TableOfContents:
    missing = {TOC_NAME, SCHEMA_NAME, SEQUENCES_NAME} - listed.keys()
    if missing:
        raise IntegrityError(f"{manifest.id}: the manifest lists no {', '.join(sorted(missing))}")
    text = bytearray()
    check_one(store, manifest, listed[TOC_NAME], local, into=None, content=True, sink=text.extend)
    try:
        toc = TableOfContents.from_json(text.decode())
    except (TocError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{manifest.id}: {exc}") from exc
    unlisted = {entry.name for entry in toc.files} - listed.keys()
    extra = listed.keys() - {entry.name for entry in toc.files} - {TOC_NAME, SCHEMA_NAME, SEQUENCES_NAME}
    if unlisted or extra:
        raise IntegrityError(f"{manifest.id}: {TOC_NAME} and the manifest disagree on the files "
                             f"({', '.join(sorted(unlisted | extra))})")
    return toc


class _HeldRestore(NamedTuple):
    process: pgdump.ToolProcess
    listing: str


def _start_post_data(target: PgTarget, schema: Path, *, jobs: int) -> _HeldRestore:
    """`pg_restore --section=post-data -j N` started now but held before it connects: it reads its list of entries
    (`-L`, every entry of the archive; --section picks post-data) from stdin, and only the end of stdin
    (`_release`) lets it go on.

    Why: starting pg_restore (exec, reading the archive) and listing the archive take ~20-40 ms each that
    would otherwise sit between the load's commit and the first index build, with the cores idle. It must
    not touch the database before the load has committed (a materialized view would be refreshed from empty
    tables, an index built on them), hence the gate.
    """
    listing = pgdump.archive_listing(schema)
    args = ["--no-password", "--exit-on-error", "--section=post-data", f"--jobs={jobs}", "--use-list=/dev/stdin",
            "-d", target.dbname, str(schema)]
    return _HeldRestore(pgdump.ToolProcess("pg_restore", args, target, stdin=True, stdout=False), listing)


def _release(held: _HeldRestore) -> None:
    """Give the held pg_restore its list and let it run."""
    try:
        held.process.stdin.write(held.listing.encode())
        held.process.stdin.close()
    except BrokenPipeError:
        pass  # it exited early; wait() reports why


def _stop(held: Future[_HeldRestore]) -> None:
    """Kill the held pg_restore once it is started (a failed start left nothing to stop)."""
    try:
        started = held.result()
    except Exception:  # noqa: BLE001  (the error that stops the restore is raised by the caller)
        return
    started.process.kill()


def restore_tree(target: PgTarget, store: BackupStore, manifest: BackupManifest, *, workers: int) -> None:
    """pre-data, every chunk checked while N sessions load it, sequence values, post-data with `-j N`.

    Not one transaction (like `directory`): a failure leaves a partly restored database (tables present,
    no rows) for the caller to drop or redo. What does not depend on the previous step overlaps it: the
    load sessions connect while pre-data runs, the post-data pg_restore starts (held before connecting)
    during the load, and the sequence values are set beside post-data.
    """
    if files_digest(manifest.files) != manifest.sha256:
        raise IntegrityError(f"{manifest.id}: the manifest's file list does not match its sha256")
    listed = {f.name: f for f in manifest.files}
    try:
        local = store.local_tree(manifest.file_name)
        toc = _toc(store, manifest, local, listed)
        absent = sorted(e.name for e in toc.files if local is not None and not (local / e.name).is_file())
        if absent:  # found before anything is restored; from S3 a missing object fails its COPY
            raise IntegrityError(f"{manifest.id}: {', '.join(absent)} is missing")
        with tempfile.TemporaryDirectory(prefix=f"tso-restore-{manifest.id}-") as staging:
            for name in (SCHEMA_NAME, SEQUENCES_NAME):
                check_one(store, manifest, listed[name], local, into=Path(staging), content=True)
            schema = Path(staging) / SCHEMA_NAME
            data = {entry.name: _stored(store, manifest, local, entry.name) for entry in toc.files}
            _restore_checked(target, schema, toc, sequences=(Path(staging) / SEQUENCES_NAME).read_text(),
                             data=data, listed=listed, workers=workers, what=manifest.id)
    except NotFound as exc:
        raise IntegrityError(f"{manifest.id}: a file is missing: {exc}") from exc


def _restore_checked(target: PgTarget, schema: Path, toc: TableOfContents, *, sequences: str,
                     data: dict[str, Iterable[bytes]], listed: dict[str, StoredFile], workers: int,
                     what: str) -> None:
    """The steps of restore_tree once its files are checked: pre-data, load, large objects, post-data, sequences."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-side") as side:
        pre_data = side.submit(pgdump.restore_directory_section, target, schema, section="pre-data")
        # queued behind pre-data on the one side thread: started while the sessions load, not beside pre-data
        held = side.submit(_start_post_data, target, schema, jobs=workers)
        try:
            _load(target, toc, data, listed, workers=workers, what=what, tables_ready=pre_data.result)
            post_data = held.result()
            # large objects, and the rows of extension configuration tables (which the chunks do not carry)
            if toc.large_objects or pgdump.archive_has_table_data(post_data.listing):
                pgdump.restore_directory_section(target, schema, section="data")
            _release(post_data)
        except BaseException:
            _stop(held)
            raise
        values = side.submit(pgdump.run_script, target, sequences) if sequences else None
        post_data.process.wait()
        if values is not None:
            values.result()
