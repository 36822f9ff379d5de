"""Run and verify one backup: pg_dump → (parallel gzip) → sha256 → storage, then the manifest.

Why compress ourselves instead of `pg_dump | gzip`: one pass computes the checksum while the bytes
stream by, and compressing independent 1 MiB blocks on a thread pool (zlib releases the GIL) uses every
core, like pigz. Each block is a complete gzip member; concatenated members are a valid .gz that
`gunzip -c` (the runbook's restore) reads unchanged. plain-zstd streams the same way through libzstd's
own threads (zstd_codec); the directory format is pg_dump's parallel dump into a tree (directory_format).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tradesense_operator.api.v1alpha1.backup import BackupFormat
from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.pgdump import PgTarget, ToolProcess
from tradesense_operator.clients.storage import BackupStore, BackupWriter
from tradesense_operator.domain.backups.formats import effective_level, is_tree
from tradesense_operator.domain.backups.manifest import (
    MANIFEST_SUFFIX,
    BackupManifest,
    ManifestError,
    StoredFile,
    Verification,
)
from tradesense_operator.domain.backups.naming import backup_id, file_name, scratch_database
from tradesense_operator.domain.clock import Clock
from tradesense_operator.services.backups import directory_format
from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.zstd_codec import ZstdStream, unzstd_chunks

log = logging.getLogger(__name__)

CHUNK = 1 << 20
PLAIN_DUMP_TRAILER = b"-- PostgreSQL database dump complete"
ProgressCallback = Callable[[int, int], None]
"""Called after each block with (pg_dump pid, raw bytes so far)."""


class BackupFailed(Exception):
    """A backup did not complete; nothing was recorded as a success."""


__all__ = ["BackupFailed", "BackupRequest", "IntegrityError"]  # IntegrityError lives in errors; re-exported


@dataclass(frozen=True)
class BackupRequest:
    """What to dump and how."""

    target: PgTarget
    label: str
    format: BackupFormat = BackupFormat.PLAIN_GZIP
    compression_level: int | None = None
    """None: the format's default (formats.DEFAULT_LEVELS)."""
    kind: str = "scheduled"
    stamp: str = ""
    record_counts: bool = False


def default_workers() -> int:
    """Compression threads and pg_dump/pg_restore jobs: the CPUs this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


class _Encoder(Protocol):
    def feed(self, block: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


def _gzip_member(block: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(block) + compressor.flush()


class _GzipMembers:
    """pigz-style: each block becomes an independent gzip member on the pool, emitted in order."""

    def __init__(self, pool: ThreadPoolExecutor, level: int, workers: int) -> None:
        self._pool = pool
        self._level = level
        self._workers = workers
        self._pending: deque[Future[bytes]] = deque()

    def feed(self, block: bytes) -> Iterator[bytes]:
        self._pending.append(self._pool.submit(_gzip_member, block, self._level))
        while len(self._pending) > 2 * self._workers or (self._pending and self._pending[0].done()):
            yield self._pending.popleft().result()

    def finish(self) -> Iterator[bytes]:
        while self._pending:
            yield self._pending.popleft().result()

    def cancel(self) -> None:
        for future in self._pending:
            future.cancel()


class _Identity:
    """custom: pg_dump compressed already."""

    def feed(self, block: bytes) -> Iterator[bytes]:
        yield block

    def finish(self) -> Iterator[bytes]:
        return iter(())


def _pump(
    dump: ToolProcess,
    writer: BackupWriter,
    *,
    fmt: BackupFormat,
    level: int,
    workers: int,
    chunk_size: int,
    on_progress: ProgressCallback | None,
) -> tuple[int, int, str]:
    """Stream the dump into storage; returns (raw bytes, stored bytes, sha256 of stored bytes)."""
    digest = hashlib.sha256()
    raw = stored = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        gzip = _GzipMembers(pool, level, workers) if fmt is BackupFormat.PLAIN_GZIP else None
        encoder: _Encoder = gzip or (ZstdStream(level, workers) if fmt is BackupFormat.PLAIN_ZSTD else _Identity())
        try:
            while block := dump.stdout.read(chunk_size):
                raw += len(block)
                for data in encoder.feed(block):
                    digest.update(data)
                    writer.write(data)
                    stored += len(data)
                if on_progress is not None:
                    on_progress(dump.pid, raw)
            for data in encoder.finish():
                digest.update(data)
                writer.write(data)
                stored += len(data)
        finally:
            if gzip is not None:
                gzip.cancel()
    return raw, stored, digest.hexdigest()


def _free_id(store: BackupStore, label: str, fmt: BackupFormat, when: datetime) -> str:
    for sequence in range(100):
        candidate = backup_id(label, when, sequence)
        name = file_name(candidate, fmt)
        if not store.exists(name) and not store.exists(name + MANIFEST_SUFFIX):
            return candidate
    raise BackupFailed(f"no free backup id for {label} at {when.isoformat()}")


def run_backup(
    store: BackupStore,
    request: BackupRequest,
    *,
    clock: Clock,
    workers: int | None = None,
    chunk_size: int = CHUNK,
    on_progress: ProgressCallback | None = None,
) -> BackupManifest:
    """Dump, compress, checksum and store one backup; returns its manifest (not yet verified).

    On any failure the partial data is discarded and BackupFailed is raised: no manifest, no file.
    """
    started_at = clock.now()
    id_ = _free_id(store, request.label, request.format, started_at)
    name = file_name(id_, request.format)
    try:
        level = effective_level(request.format, request.compression_level)
    except ValueError as exc:
        raise BackupFailed(f"backup of {request.target.describe()}: {exc}") from exc
    workers = workers or default_workers()
    began = time.monotonic()
    writer: BackupWriter | None = None
    dump: ToolProcess | None = None
    files: tuple[StoredFile, ...] = ()
    try:
        with pgdump.exported_snapshot(request.target, count_rows=request.record_counts) as (snapshot, counts):
            if is_tree(request.format):
                tree = directory_format.dump_tree(store, name, request.target, snapshot=snapshot, level=level,
                                                  workers=workers)
                files, raw, stored, sha = tree.files, tree.raw_bytes, tree.stored_bytes, tree.sha256
            else:
                writer = store.open_writer(name)
                dump = pgdump.start_dump(request.target, custom=request.format is BackupFormat.CUSTOM,
                                         compression_level=level, snapshot=snapshot)
                raw, stored, sha = _pump(dump, writer, fmt=request.format, level=level, workers=workers,
                                         chunk_size=chunk_size, on_progress=on_progress)
                dump.wait()
                dump = None
        if writer is not None:
            writer.commit()
    except BaseException as exc:  # also KeyboardInterrupt/cancellation: never leave a child or a temp file
        if dump is not None:
            dump.kill()
        if writer is not None:
            writer.abort()
        if isinstance(exc, ClientError | OSError | ValueError | IntegrityError):
            raise BackupFailed(f"backup {id_} of {request.target.describe()} failed: {exc}") from exc
        raise
    manifest = BackupManifest(
        id=id_, label=request.label, database=request.target.dbname, format=request.format, file_name=name,
        started_at=started_at, finished_at=clock.now(), bytes=stored, sha256=sha, raw_bytes=raw,
        duration_seconds=round(time.monotonic() - began, 3), compression_level=level,
        table_counts=counts, kind=request.kind, stamp=request.stamp, files=files,
    )
    try:
        store.put_text(manifest.manifest_name, manifest.to_json())
    except ClientError as exc:
        store.delete(name)
        raise BackupFailed(f"backup {id_}: could not write its manifest: {exc}") from exc
    log.info("backup %s stored: %d bytes (%d raw) in %.1fs", id_, stored, raw, manifest.duration_seconds)
    return manifest


# -- reading back -------------------------------------------------------------------------------


def checked_chunks(store: BackupStore, manifest: BackupManifest) -> Iterator[bytes]:
    """The stored bytes; raises IntegrityError at the end (before the consumer sees EOF) on mismatch."""
    digest = hashlib.sha256()
    size = 0
    for chunk in store.read_chunks(manifest.file_name):
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size != manifest.bytes:
        raise IntegrityError(f"{manifest.id}: stored size {size} bytes, manifest says {manifest.bytes}")
    if digest.hexdigest() != manifest.sha256:
        raise IntegrityError(f"{manifest.id}: sha256 mismatch (file was modified or corrupted)")


def gunzip_chunks(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a (multi-member) gzip stream; IntegrityError on corrupt, truncated or empty data."""
    decompressor = zlib.decompressobj(31)
    fed = False  # the current member has consumed input but not reached its end
    members = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = decompressor.decompress(data)
                if out:
                    yield out
                if decompressor.eof:
                    members += 1
                    data = decompressor.unused_data
                    decompressor = zlib.decompressobj(31)
                    fed = False
                else:
                    data = b""
    except zlib.error as exc:
        raise IntegrityError(f"gzip data is corrupt: {exc}") from exc
    if fed or members == 0:
        raise IntegrityError("gzip data is truncated")


def sql_chunks(store: BackupStore, manifest: BackupManifest) -> Iterator[bytes]:
    """Plain SQL of a plain-gzip or plain-zstd backup, checksum-checked."""
    if manifest.format is BackupFormat.PLAIN_ZSTD:
        return unzstd_chunks(checked_chunks(store, manifest))
    return gunzip_chunks(checked_chunks(store, manifest))


def check_integrity(store: BackupStore, manifest: BackupManifest, *, workers: int | None = None) -> None:
    """Re-read, decompress and re-checksum a stored backup; IntegrityError says what is wrong."""
    if manifest.format is BackupFormat.DIRECTORY:
        directory_format.check_tree(store, manifest, workers=workers or default_workers())
        return
    if manifest.format in {BackupFormat.PLAIN_GZIP, BackupFormat.PLAIN_ZSTD}:
        raw = 0
        tail = b""
        for block in sql_chunks(store, manifest):
            raw += len(block)
            tail = (tail + block)[-256:]
        if raw != manifest.raw_bytes:
            raise IntegrityError(f"{manifest.id}: decompressed to {raw} bytes, manifest says {manifest.raw_bytes}")
        if PLAIN_DUMP_TRAILER not in tail:
            raise IntegrityError(f"{manifest.id}: the SQL dump is incomplete (no 'dump complete' trailer)")
        return
    try:
        pgdump.check_custom_archive(checked_chunks(store, manifest))
    except pgdump.ToolFailed as exc:
        raise IntegrityError(f"{manifest.id}: pg_restore cannot read the archive: {exc}") from exc


def restore_into(
    target: PgTarget, store: BackupStore, manifest: BackupManifest, *, workers: int | None = None
) -> None:
    """Restore a backup into an existing (empty) database, checksum-checked on the way.

    Plain and custom formats restore in one transaction (all or nothing); directory restores with
    `pg_restore -j workers` after checking every file.
    """
    if manifest.format is BackupFormat.DIRECTORY:
        directory_format.restore_tree(target, store, manifest, workers=workers or default_workers())
    elif manifest.format in {BackupFormat.PLAIN_GZIP, BackupFormat.PLAIN_ZSTD}:
        pgdump.restore_plain(target, sql_chunks(store, manifest))
    else:
        pgdump.restore_custom(target, checked_chunks(store, manifest))


def scratch_restore(source: PgTarget, store: BackupStore, manifest: BackupManifest) -> str:
    """Restore into `<db>_verify_<id>`, compare per-table row counts, always drop it; IntegrityError on mismatch."""
    scratch = scratch_database(manifest.database, manifest.id)
    target = source.with_db(scratch)
    pgdump.drop_database(source, scratch)  # a leftover from a crashed verification
    pgdump.create_database(source, scratch, comment=f"tradesense-operator scratch restore of {manifest.id}")
    try:
        try:
            restore_into(target, store, manifest)
        except pgdump.ToolFailed as exc:
            raise IntegrityError(f"{manifest.id}: test restore failed: {exc}") from exc
        restored = pgdump.table_counts(target)
    finally:
        pgdump.drop_database(source, scratch)
    if not manifest.table_counts:
        return f"restored {len(restored)} tables (no reference row counts recorded)"
    if restored != manifest.table_counts:
        diffs = sorted(
            f"{t}: {manifest.table_counts.get(t)} → {restored.get(t)}"
            for t in set(restored) | set(manifest.table_counts)
            if restored.get(t) != manifest.table_counts.get(t)
        )
        raise IntegrityError(f"{manifest.id}: row counts differ after test restore: {'; '.join(diffs[:10])}")
    return f"restored {len(restored)} tables with identical row counts"


def verify_backup(
    store: BackupStore,
    manifest: BackupManifest,
    *,
    clock: Clock,
    integrity: bool = True,
    test_restore_source: PgTarget | None = None,
) -> BackupManifest:
    """Run the configured checks, record the outcome in the manifest (stored) and return it."""
    details: list[str] = []
    integrity_ok: bool | None = None
    restore_ok: bool | None = None
    try:
        if integrity:
            check_integrity(store, manifest)
            integrity_ok = True
            details.append("checksum and content intact")
        if test_restore_source is not None:
            details.append(scratch_restore(test_restore_source, store, manifest))
            restore_ok = True
        ok = True
    except (IntegrityError, NotFound) as exc:
        ok = False
        if integrity and integrity_ok is None:
            integrity_ok = False
        elif test_restore_source is not None:
            restore_ok = False
        details.append(str(exc))
    verification = Verification(ok=ok, integrity=integrity_ok, test_restore=restore_ok, verified_at=clock.now(),
                                detail="; ".join(details)[:1000])
    updated = manifest.with_verification(verification)
    store.put_text(updated.manifest_name, updated.to_json())
    return updated


# -- inventory ----------------------------------------------------------------------------------


def list_backups(store: BackupStore, *, label: str | None = None) -> list[BackupManifest]:
    """Complete backups (manifest and data file both present), newest first."""
    objects = {o.name for o in store.list_objects()}
    result: list[BackupManifest] = []
    for name in objects:
        if not name.endswith(MANIFEST_SUFFIX) or name.startswith("."):
            continue
        try:
            manifest = BackupManifest.from_json(store.get_text(name))
        except (ManifestError, NotFound) as exc:
            log.warning("ignoring unreadable manifest %s: %s", name, exc)
            continue
        if manifest.file_name not in objects:
            continue
        if label is None or manifest.label == label:
            result.append(manifest)
    return sorted(result, key=lambda m: (m.finished_at, m.id), reverse=True)


def find_backup(store: BackupStore, backup_id_: str) -> BackupManifest:
    """One backup by id; NotFound when it does not exist (or is not complete)."""
    for manifest in list_backups(store):
        if manifest.id == backup_id_:
            return manifest
    raise NotFound(f"no complete backup with id {backup_id_!r}")
