"""Run and verify one backup: pg_dump → (parallel gzip | zstd) → sha256 → storage, then the manifest.

Why compress ourselves instead of `pg_dump | gzip`: one pass computes the checksum while the bytes
stream by, and the codecs use every core: pigz-style gzip members on a thread pool (gzip_codec), whose
concatenation `gunzip -c` (the runbook's restore) reads unchanged, or libzstd's own threads
(zstd_codec). With integrity verification the same bytes also go to a content check on its own thread
(content_check), so verifying costs no second decompression pass. The directory format is pg_dump's
parallel dump into a tree (directory_format).

Synchronous (callers run it in a thread); must not touch the Kubernetes API or decide when to back up
or what to keep (services/backups/reconcile and retention do).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
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
from tradesense_operator.services.backups import binary_format, directory_format, parallel_load
from tradesense_operator.services.backups.content_check import StreamCheck, check_content, decoded_sql
from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.gzip_codec import GzipMembers
from tradesense_operator.services.backups.zstd_codec import ZstdStream

log = logging.getLogger(__name__)

CHUNK = 1 << 20
PIPE_BYTES = 1 << 20
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
    check: StreamCheck | None,
) -> tuple[int, int, str]:
    """Stream the dump into storage; returns (raw bytes, stored bytes, sha256 of stored bytes).

    Every stored chunk is hashed, written and (with `check`) handed to the content check's thread.
    """
    digest = hashlib.sha256()
    raw = stored = 0

    def store(data: bytes) -> None:
        nonlocal stored
        digest.update(data)
        writer.write(data)
        if check is not None:
            check.feed(data)
        stored += len(data)

    _grow_pipe(dump.stdout.fileno())
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        gzip = GzipMembers(pool, level, workers) if fmt is BackupFormat.PLAIN_GZIP else None
        encoder: _Encoder = gzip or (ZstdStream(level, workers) if fmt is BackupFormat.PLAIN_ZSTD else _Identity())
        try:
            while block := dump.stdout.read(chunk_size):
                raw += len(block)
                for data in encoder.feed(block):
                    store(data)
                if on_progress is not None:
                    on_progress(dump.pid, raw)
            for data in encoder.finish():
                store(data)
        finally:
            if gzip is not None:
                gzip.cancel()
    return raw, stored, digest.hexdigest()


def _grow_pipe(fd: int) -> None:
    """Let pg_dump run up to 1 MiB ahead of us (Linux pipes hold 64 KiB): fewer stalls and wake-ups on both sides."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


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
    verify_integrity: bool = False,
) -> BackupManifest:
    """Dump, compress, checksum and store one backup; returns its manifest.

    On any failure the partial data is discarded and BackupFailed is raised: no manifest, no file.
    `verify_integrity`: the content is checked while it is written (StreamCheck; directory: the scan
    of every file), the stored object is re-read for its sha256 after the commit, and the manifest is
    written once, with that verification's outcome (a failed check keeps the backup, marked unverified,
    as `verify_backup` does).
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
    check: StreamCheck | None = None
    files: tuple[StoredFile, ...] = ()
    try:
        with pgdump.exported_snapshot(request.target, count_rows=request.record_counts) as (snapshot, counts):
            if is_tree(request.format):
                dump_tree = (binary_format.dump_tree if request.format is BackupFormat.BINARY
                             else directory_format.dump_tree)
                tree = dump_tree(store, name, request.target, snapshot=snapshot, level=level, workers=workers)
                files, raw, stored, sha = tree.files, tree.raw_bytes, tree.stored_bytes, tree.sha256
            else:
                writer = store.open_writer(name)
                check = StreamCheck(request.format, id_) if verify_integrity else None
                dump = pgdump.start_dump(request.target, custom=request.format is BackupFormat.CUSTOM,
                                         compression_level=level, snapshot=snapshot)
                raw, stored, sha = _pump(dump, writer, fmt=request.format, level=level, workers=workers,
                                         chunk_size=chunk_size, on_progress=on_progress, check=check)
                dump.wait()
                dump = None
        if writer is not None:
            writer.commit()
    except BaseException as exc:  # also KeyboardInterrupt/cancellation: never leave a child or a temp file
        if dump is not None:
            dump.kill()
        if writer is not None:
            writer.abort()
        if check is not None:
            check.close()
        if isinstance(exc, ClientError | OSError | ValueError | IntegrityError):
            raise BackupFailed(f"backup {id_} of {request.target.describe()} failed: {exc}") from exc
        raise
    manifest = BackupManifest(
        id=id_, label=request.label, database=request.target.dbname, format=request.format, file_name=name,
        started_at=started_at, finished_at=clock.now(), bytes=stored, sha256=sha, raw_bytes=raw,
        duration_seconds=round(time.monotonic() - began, 3), compression_level=level,
        table_counts=counts, kind=request.kind, stamp=request.stamp, files=files,
    )
    if verify_integrity:
        manifest = manifest.with_verification(_verified_while_writing(store, manifest, check, clock, workers))
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


def sql_chunks(store: BackupStore, manifest: BackupManifest) -> Iterator[bytes]:
    """Plain SQL of a plain-gzip or plain-zstd backup, checksum-checked."""
    return decoded_sql(manifest.format, checked_chunks(store, manifest))


def check_integrity(store: BackupStore, manifest: BackupManifest, *, workers: int | None = None) -> None:
    """Re-read, decompress and re-checksum a stored backup; IntegrityError says what is wrong."""
    if is_tree(manifest.format):
        directory_format.check_tree(store, manifest, workers=workers or default_workers())
        return
    check_content(manifest.format, checked_chunks(store, manifest), raw_bytes=manifest.raw_bytes, what=manifest.id)


def _check_stored(store: BackupStore, manifest: BackupManifest, workers: int) -> None:
    """Re-read the stored bytes for size and sha256 only (their content was checked while they were written)."""
    if is_tree(manifest.format):
        directory_format.check_tree(store, manifest, workers=workers, content=False)
        return
    for _ in checked_chunks(store, manifest):
        pass


def _verified_while_writing(store: BackupStore, manifest: BackupManifest, check: StreamCheck | None, clock: Clock,
                            workers: int) -> Verification:
    """The integrity verification of a fresh backup: the content check's outcome, then the stored bytes' sha256."""
    try:
        if check is not None:
            check.result(manifest.raw_bytes)
        _check_stored(store, manifest, workers)
    except (IntegrityError, NotFound) as exc:
        return Verification(ok=False, integrity=False, verified_at=clock.now(), detail=str(exc)[:1000])
    return Verification(ok=True, integrity=True, verified_at=clock.now(),
                        detail="checksum and content intact (content checked while written, stored bytes re-read)")


RESTORE_SESSION_OPTIONS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"
"""Settings of the restore's own sessions only (libpq options; never ALTER DATABASE/SYSTEM): index builds and
the foreign-key checks of post-data get 4× the default sort memory; commits do not wait for the WAL flush
(a crash mid-restore is redone by the restore procedure, and the `restored` marker is committed synchronously
after them)."""
SPLIT_PLAIN_MIN_BYTES = 64 << 20
"""A plain dump with at least this much SQL has its COPY rows split over the workers (parallel_load)."""


def restore_session(target: PgTarget) -> PgTarget:
    """`target` with the restore's session settings."""
    return replace(target, options=RESTORE_SESSION_OPTIONS)


def restore_into(
    target: PgTarget, store: BackupStore, manifest: BackupManifest, *, workers: int | None = None
) -> None:
    """Restore a backup into an existing (empty) database, checksum-checked on the way.

    Custom and small plain backups restore in one transaction (all or nothing). Plain backups of at least
    SPLIT_PLAIN_MIN_BYTES of SQL load their rows over `workers` sessions that commit together after the
    whole stream passed its checksum, between the committed schema and the post-data script; directory
    backups restore with `workers` sessions after every file was checked. Neither is one transaction:
    a failure leaves a partly restored database for the caller to drop or redo.
    """
    workers = workers or default_workers()
    session = restore_session(target)
    if manifest.format is BackupFormat.DIRECTORY:
        directory_format.restore_tree(session, store, manifest, workers=workers)
    elif manifest.format is BackupFormat.BINARY:
        binary_format.restore_tree(session, store, manifest, workers=workers)
    elif manifest.format in {BackupFormat.PLAIN_GZIP, BackupFormat.PLAIN_ZSTD}:
        if workers > 1 and manifest.raw_bytes >= SPLIT_PLAIN_MIN_BYTES:
            parallel_load.restore_plain_split(session, sql_chunks(store, manifest), workers=workers)
        else:
            pgdump.restore_plain(session, sql_chunks(store, manifest))
    else:
        pgdump.restore_custom(session, checked_chunks(store, manifest))


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
    """Run the configured checks, record the outcome in the manifest (stored) and return it.

    Without `integrity`, an integrity outcome already in the manifest (run_backup's check while writing)
    is kept beside the test restore's.
    """
    prior = None if integrity else manifest.verification
    details: list[str] = [prior.detail] if prior is not None and prior.detail else []
    integrity_ok: bool | None = prior.integrity if prior is not None else None
    restore_ok: bool | None = None
    try:
        if integrity:
            check_integrity(store, manifest)
            integrity_ok = True
            details.append("checksum and content intact")
        if test_restore_source is not None:
            details.append(scratch_restore(test_restore_source, store, manifest))
            restore_ok = True
        ok = prior is None or prior.ok
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


def run_verified_backup(store: BackupStore, request: BackupRequest, *, clock: Clock, integrity: bool,
                        test_restore_source: PgTarget | None = None, workers: int | None = None) -> BackupManifest:
    """A backup with the verification a policy asks for: integrity while writing, then the test restore.

    The manifest's `verified` says whether it passed (as after `verify_backup`); BackupFailed as run_backup.
    """
    manifest = run_backup(store, request, clock=clock, workers=workers, verify_integrity=integrity)
    if test_restore_source is None or (manifest.verification is not None and not manifest.verified):
        return manifest
    return verify_backup(store, manifest, clock=clock, integrity=False, test_restore_source=test_restore_source)


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
