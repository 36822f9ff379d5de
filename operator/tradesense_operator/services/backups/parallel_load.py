"""Restore a dump with its big tables loaded by several COPY sessions at once (directory archives, plain SQL).

Owns the restore order and the split load; it must not check files (directory_format and the checksummed
stream do).
`pg_restore -j N` runs one COPY per table, so a database dominated by one table restores its data on one
core whatever N is. Here a table whose data file is large is cut at row boundaries (text-format COPY
rows end at an unescaped newline) into blocks dealt round-robin to N sessions, each one COPY in its
own transaction; the rest of the data goes to `pg_restore -j N -L` without those entries, between
pg_restore's pre-data (tables) and post-data (indexes, constraints, also in parallel) sections.
A failure anywhere stops every session without committing: the sessions commit only once all of them
have copied their share (a barrier before COMMIT). A plain dump is cut the same way as it streams
(domain.backups.plain_sql): its script before the first COPY runs through psql, the rows of every COPY
block go to the N sessions, the rest of the script runs after they committed.
"""

from __future__ import annotations

import itertools
import queue
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.domain.backups.archive_toc import TableData, table_data_entries, without_entries
from tradesense_operator.domain.backups.plain_sql import (
    Piece,
    TruncatedDump,
    psql_restrict_lines,
    session_settings,
    split_plain_sql,
)
from tradesense_operator.services.backups.errors import IntegrityError

SPLIT_MIN_BYTES = 8 << 20
"""A table whose data file is at least this big (as stored) is loaded by several sessions."""
BLOCK = 1 << 20
END_OF_DATA = b"\\.\n"
CopyBlock = tuple[str, bytes]
"""(COPY statement, whole text-format rows)."""


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


def _whole_rows(rows: bytes) -> Iterator[bytes]:
    """`rows` (whole lines) in blocks of about BLOCK bytes, cut after a newline: the unit dealt to a session."""
    pos = 0
    while pos < len(rows):
        cut = rows.find(b"\n", pos + BLOCK - 1)
        end = len(rows) if cut < 0 else cut + 1
        yield rows[pos:end]
        pos = end


def _drain(q: queue.Queue[CopyBlock | None]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _end(q: queue.Queue[CopyBlock | None], failed: threading.Event) -> None:
    """Queue the end marker; once anything failed, drop what the session has not read yet."""
    while True:
        if failed.is_set():
            _drain(q)
        try:
            q.put(None, timeout=0.2)
        except queue.Full:
            continue
        return


def _deal(target: PgTarget, blocks: Iterator[CopyBlock], *, workers: int, encoding: str | None,
          settings: list[str]) -> None:
    """Deal the blocks round-robin to `workers` COPY sessions; all commit once every block is in, or none does.

    Each session is one transaction; a barrier before COMMIT means a failing session, or an error raised by
    `blocks` itself (a checksum found wrong at the end of the stream), leaves nothing committed.
    """
    queues: list[queue.Queue[CopyBlock | None]] = [queue.Queue(maxsize=4) for _ in range(workers)]
    failed = threading.Event()

    def taken(q: queue.Queue[CopyBlock | None]) -> Iterator[CopyBlock]:
        while (item := q.get()) is not None:
            yield item
        if failed.is_set():
            raise _Aborted

    all_copied = threading.Barrier(workers)  # nobody commits before every session's COPY succeeded

    def session(q: queue.Queue[CopyBlock | None]) -> None:
        try:
            pgdump.copy_in(target, taken(q), encoding=encoding, settings=settings, before_commit=all_copied.wait)
        except BaseException:
            failed.set()
            all_copied.abort()
            raise

    def put(q: queue.Queue[CopyBlock | None], block: CopyBlock) -> None:
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
            for number, block in enumerate(blocks):
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
        raise pgdump.ToolFailed("COPY", 1, "split load aborted")


def _load_split(target: PgTarget, path: Path, entry: TableData, *, workers: int, encoding: str) -> None:
    """Deal one table's rows to `workers` COPY sessions; all commit, or the error is raised."""
    statement = pgdump.copy_statement(entry.schema, entry.table, pgdump.copy_columns(target, entry.schema, entry.table))
    _deal(target, ((statement, block) for block in _rows(path)), workers=workers, encoding=encoding, settings=[])


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


def restore_plain_split(target: PgTarget, sql_chunks: Iterable[bytes], *, workers: int) -> None:
    """A plain dump with its COPY rows dealt to `workers` sessions (see the module docstring).

    The script up to the first COPY runs through psql in one transaction (tables exist, empty); the rows
    of every COPY block go to the sessions, which commit together only after the whole stream was read
    (so a checksum found wrong at its end commits no row); the rest of the script (sequence values,
    indexes, constraints) then runs through psql in one transaction.
    """
    pieces = split_plain_sql(sql_chunks)
    try:
        _restore_cut(target, pieces, workers=workers)
    except TruncatedDump as exc:
        raise IntegrityError(f"the SQL dump is incomplete: {exc}") from exc


def _restore_cut(target: PgTarget, pieces: Iterator[Piece], *, workers: int) -> None:
    settings: list[str] = []
    restrict: list[bytes] = []
    first: list[Piece] = []

    def script_head() -> Iterator[bytes]:
        for piece in pieces:
            if piece.copy is not None:
                first.append(piece)
                return
            settings.extend(session_settings(piece.data))
            restrict.append(psql_restrict_lines(piece.data))
            yield piece.data

    pgdump.restore_plain(target, script_head())
    if not first:
        return  # no table data: the whole script ran
    with tempfile.TemporaryFile(prefix="tso-post-data-") as rest:
        rest.write(b"".join(restrict))  # the rest of the script runs in a new psql session: same header
        rest.write("".join(f"{setting}\n" for setting in settings).encode())

        def rows() -> Iterator[CopyBlock]:
            for piece in itertools.chain(first, pieces):
                if piece.copy is not None:
                    yield from ((piece.copy, block) for block in _whole_rows(piece.data))
                else:
                    rest.write(piece.data)

        _deal(target, rows(), workers=workers, encoding=None, settings=settings)
        rest.seek(0)
        pgdump.restore_plain(target, iter(lambda: rest.read(BLOCK), b""))
