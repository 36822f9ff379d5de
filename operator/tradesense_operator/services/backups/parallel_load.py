"""Restore a directory archive with its big tables loaded by several COPY sessions at once.

Owns the restore order and the split load; it must not check files (directory_format does, first).
`pg_restore -j N` runs one COPY per table, so a database dominated by one table restores its data on one
core whatever N is. Here a table whose data file is large is cut at row boundaries (text-format COPY
rows end at an unescaped newline) into blocks dealt round-robin to N sessions, each one COPY in its
own transaction; the rest of the data goes to `pg_restore -j N -L` without those entries, between
pg_restore's pre-data (tables) and post-data (indexes, constraints, also in parallel) sections.
A failure anywhere stops every session without committing: the sessions commit only once all of them
have copied their share (a barrier before COMMIT).
"""

from __future__ import annotations

import queue
import tempfile
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.domain.backups.archive_toc import TableData, table_data_entries, without_entries

SPLIT_MIN_BYTES = 8 << 20
"""A table whose data file is at least this big (as stored) is loaded by several sessions."""
BLOCK = 1 << 20
END_OF_DATA = b"\\.\n"


class _Aborted(Exception):
    """Another part of the split load failed; this session must not commit."""


def _cut_at_end(block: bytes) -> tuple[bytes, bool]:
    """Whole-row `block` up to pg_dump's end-of-data line; True when that line was in it."""
    if block.startswith(END_OF_DATA):
        return b"", True
    at = block.find(b"\n" + END_OF_DATA)
    return (block[: at + 1], True) if at >= 0 else (block, False)


def _rows(path: Path) -> Iterator[bytes]:
    """Decompressed data of one table in blocks of whole rows, without pg_dump's end-of-data marker."""
    gunzip = zlib.decompressobj(31) if path.suffix == ".gz" else None
    carry = b""
    with path.open("rb") as handle:
        while chunk := handle.read(BLOCK):
            data = carry + (gunzip.decompress(chunk) if gunzip is not None else chunk)
            cut = data.rfind(b"\n") + 1
            block, ended = _cut_at_end(data[:cut])
            carry = data[cut:]
            if block:
                yield block
            if ended:
                return
    block, _ = _cut_at_end(carry)
    if block.strip():
        yield block


def _drain(q: queue.Queue[bytes | None]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _end(q: queue.Queue[bytes | None], failed: threading.Event) -> None:
    """Queue the end marker; once anything failed, drop what the session has not read yet."""
    while True:
        if failed.is_set():
            _drain(q)
        try:
            q.put(None, timeout=0.2)
        except queue.Full:
            continue
        return


def _load_split(target: PgTarget, path: Path, entry: TableData, *, workers: int, encoding: str) -> None:
    """Deal the table's rows round-robin to `workers` COPY sessions; all commit, or the error is raised."""
    columns = pgdump.copy_columns(target, entry.schema, entry.table)
    queues: list[queue.Queue[bytes | None]] = [queue.Queue(maxsize=4) for _ in range(workers)]
    failed = threading.Event()

    def blocks(q: queue.Queue[bytes | None]) -> Iterator[bytes]:
        while (item := q.get()) is not None:
            yield item
        if failed.is_set():
            raise _Aborted

    all_copied = threading.Barrier(workers)  # nobody commits before every session's COPY succeeded

    def session(q: queue.Queue[bytes | None]) -> None:
        try:
            pgdump.copy_in(target, entry.schema, entry.table, columns, blocks(q), encoding=encoding,
                           before_commit=all_copied.wait)
        except BaseException:
            failed.set()
            all_copied.abort()
            raise

    def put(q: queue.Queue[bytes | None], block: bytes) -> None:
        while not failed.is_set():
            try:
                q.put(block, timeout=0.2)
            except queue.Full:
                continue
            return
        raise _Aborted

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
        sessions = [pool.submit(session, q) for q in queues]
        try:
            for number, block in enumerate(_rows(path)):
                put(queues[number % workers], block)
        except _Aborted:
            pass  # a session failed; its error is raised below
        except BaseException:
            failed.set()
            all_copied.abort()
            raise
        finally:
            for q in queues:  # end every session: normally (all rows sent) or aborted (failed is set)
                _end(q, failed)
        errors = [error for done in sessions if (error := done.exception()) is not None]
    real = [error for error in errors if not isinstance(error, _Aborted | threading.BrokenBarrierError)]
    if real:
        raise real[0]
    if errors:
        raise pgdump.ToolFailed("COPY", 1, f"{entry.schema}.{entry.table}: split load aborted")


def restore_split(target: PgTarget, directory: Path, *, workers: int) -> None:
    """pre-data; small tables with `pg_restore -j`; big ones split over `workers` sessions; post-data."""
    listing = pgdump.archive_listing(directory)
    big: list[tuple[TableData, Path]] = []
    if workers > 1:
        for entry in table_data_entries(listing):
            for name in entry.data_files():
                path = directory / name
                if path.is_file() and path.stat().st_size >= SPLIT_MIN_BYTES:
                    big.append((entry, path))
    if not big:
        pgdump.restore_directory(target, directory, jobs=workers)
        return
    encoding = pgdump.archive_client_encoding(directory)
    pgdump.restore_directory_section(target, directory, section="pre-data")
    with tempfile.NamedTemporaryFile("w", prefix="tso-toc-", suffix=".list") as rest:
        rest.write(without_entries(listing, {entry.dump_id for entry, _ in big}))
        rest.flush()
        pgdump.restore_directory_section(target, directory, section="data", jobs=workers, listing=Path(rest.name))
    for entry, path in big:
        _load_split(target, path, entry, workers=workers, encoding=encoding)
    pgdump.restore_directory_section(target, directory, section="post-data", jobs=workers)
