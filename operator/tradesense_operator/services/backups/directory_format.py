"""The `directory` format: `pg_dump -Fd -j N` into a store tree, one checksummed file per table, `pg_restore -j N`.

Owns writing, checking and restoring a tree backup; it must not choose backups, write manifests or
drop databases (dump_pipeline and restore do). pg_dump writes straight into the store's tree (on the
filesystem the final directory's partial twin, for S3 a local staging directory uploaded on commit);
every file is then read once for its sha256, and its gzip stream decompressed to the end, which both
measures the SQL size and proves pg_dump's output complete. Verification repeats that per file
against the manifest, so a damaged file is named. A restore checks every file before pg_restore reads
it: in place on the filesystem, while downloading into a temporary directory for S3.
"""

from __future__ import annotations

import hashlib
import tempfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import zstandard

from tradesense_operator.clients import pgdump
from tradesense_operator.clients.errors import NotFound
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import READ_CHUNK, BackupStore
from tradesense_operator.domain.backups.binary_toc import BINARY_SIGNATURE, BINARY_TRAILER, COPY_SUFFIX
from tradesense_operator.domain.backups.manifest import BackupManifest, StoredFile, files_digest
from tradesense_operator.services.backups.errors import IntegrityError
from tradesense_operator.services.backups.parallel_load import restore_split


@dataclass(frozen=True)
class TreeDump:
    """What a directory dump stored."""

    files: tuple[StoredFile, ...]
    raw_bytes: int

    @property
    def stored_bytes(self) -> int:
        """Total size of the files."""
        return sum(f.bytes for f in self.files)

    @property
    def sha256(self) -> str:
        """Digest of the file list (each name, size and sha256)."""
        return files_digest(self.files)


@dataclass(frozen=True)
class Scan:
    file: StoredFile
    raw_bytes: int


class _Zstd:
    """Decompresses one zstd frame (content checksum checked); for binary-COPY files also checks its framing."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._copy = name.endswith(COPY_SUFFIX)
        self._head = b""
        self._tail = b""

    def decompress(self, chunk: bytes) -> int:
        if self._obj.eof:
            raise IntegrityError(f"{self._name}: zstd data has trailing bytes after its frame")
        out = self._obj.decompress(chunk)
        if self._copy and out:
            if len(self._head) < len(BINARY_SIGNATURE):
                self._head += out[: len(BINARY_SIGNATURE)]
            self._tail = (self._tail + out[-2:])[-2:]
        return len(out)

    def end(self, size: int) -> None:
        if size and not self._obj.eof:
            raise IntegrityError(f"{self._name}: zstd data is truncated")
        if self._copy and (not self._head.startswith(BINARY_SIGNATURE) or self._tail != BINARY_TRAILER):
            raise IntegrityError(f"{self._name}: not a complete binary COPY stream")


def _scan(name: str, chunks: Iterable[bytes], sink: Callable[[bytes], object] | None = None, *,
          content: bool = True) -> Scan:
    """sha256 and size of the bytes; for `.gz`/`.zst` files also the decompressed size (IntegrityError if broken).

    Without `content` only sha256 and size (raw_bytes is then the stored size).
    """
    digest = hashlib.sha256()
    size = raw = 0
    gunzip = zlib.decompressobj(31) if content and name.endswith(".gz") else None
    unzstd = _Zstd(name) if content and name.endswith(".zst") else None
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink(chunk)
            if unzstd is not None:
                raw += unzstd.decompress(chunk)
            if gunzip is not None:
                raw += len(gunzip.decompress(chunk))
                while gunzip.eof and gunzip.unused_data:  # pg_dump writes one member; tolerate several
                    rest = gunzip.unused_data
                    gunzip = zlib.decompressobj(31)
                    raw += len(gunzip.decompress(rest))
    except zlib.error as exc:
        raise IntegrityError(f"{name}: gzip data is corrupt: {exc}") from exc
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{name}: zstd data is corrupt: {exc}") from exc
    if gunzip is not None and size and not gunzip.eof:
        raise IntegrityError(f"{name}: gzip data is truncated")
    if unzstd is not None:
        unzstd.end(size)
    return Scan(StoredFile(name, size, digest.hexdigest()), raw if gunzip is not None or unzstd is not None else size)


def read_file(path: Path) -> Iterable[bytes]:
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(READ_CHUNK):
            yield chunk


def scan_local(path: Path) -> Scan:
    return _scan(path.name, read_file(path))


def dump_tree(
    store: BackupStore, name: str, target: PgTarget, *, snapshot: str, level: int, workers: int
) -> TreeDump:
    """pg_dump -Fd into the tree `name`, checksum every file, commit; nothing stays behind on failure."""
    writer = store.open_tree(name)
    try:
        pgdump.dump_directory(target, writer.path, jobs=workers, compression_level=level, snapshot=snapshot)
        files = sorted(p for p in writer.path.iterdir() if p.is_file())
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="digest") as pool:
            scans = list(pool.map(scan_local, files))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return TreeDump(tuple(s.file for s in scans), sum(s.raw_bytes for s in scans))


def _compare(manifest: BackupManifest, expected: StoredFile, found: Scan) -> None:
    if found.file.bytes != expected.bytes:
        raise IntegrityError(f"{manifest.id}: {expected.name} is {found.file.bytes} bytes, manifest says "
                             f"{expected.bytes}")
    if found.file.sha256 != expected.sha256:
        raise IntegrityError(f"{manifest.id}: {expected.name}: sha256 mismatch (file was modified or corrupted)")


def check_one(store: BackupStore, manifest: BackupManifest, expected: StoredFile, local: Path | None, *,
              into: Path | None, content: bool, sink: Callable[[bytes], object] | None = None) -> int:
    """Scan one file (from the local tree or the store, copied into `into` or handed to `sink`); its raw size."""
    if local is not None:
        path = local / expected.name
        if not path.is_file():
            raise IntegrityError(f"{manifest.id}: {expected.name} is missing")
        chunks = read_file(path)
    else:
        chunks = store.read_chunks(f"{manifest.file_name}/{expected.name}")
    if into is None:
        found = _scan(expected.name, chunks, sink, content=content)
    else:
        with (into / expected.name).open("wb") as out:
            found = _scan(expected.name, chunks, out.write, content=content)
    _compare(manifest, expected, found)
    return found.raw_bytes


def _check_files(store: BackupStore, manifest: BackupManifest, *, workers: int, into: Path | None,
                 content: bool = True) -> None:
    """Every file against the manifest (copied into `into` when given), then the list and (content) the SQL size."""
    if not manifest.files:
        raise IntegrityError(f"{manifest.id}: the manifest lists no files")
    if files_digest(manifest.files) != manifest.sha256:
        raise IntegrityError(f"{manifest.id}: the manifest's file list does not match its sha256")
    try:
        local = store.local_tree(manifest.file_name)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
            raw = sum(pool.map(lambda f: check_one(store, manifest, f, local, into=into, content=content), manifest.files))
    except NotFound as exc:
        raise IntegrityError(f"{manifest.id}: a file is missing: {exc}") from exc
    if content and raw != manifest.raw_bytes:
        raise IntegrityError(f"{manifest.id}: decompressed to {raw} bytes, manifest says {manifest.raw_bytes}")


def check_tree(store: BackupStore, manifest: BackupManifest, *, workers: int, content: bool = True) -> None:
    """Re-read every file: size, sha256 and (content) complete gzip stream per file, the file list and the SQL size.

    `content=False` right after dump_tree, whose scan already decompressed every file.
    """
    _check_files(store, manifest, workers=workers, into=None, content=content)


def restore_tree(target: PgTarget, store: BackupStore, manifest: BackupManifest, *, workers: int) -> None:
    """Check every file, then restore with `workers` sessions (parallel_load) into the existing (empty) database.

    On the filesystem pg_restore reads the checked tree in place; from S3 the files are checked while
    they download into a temporary directory (the restore needs local space for the compressed backup).
    """
    try:
        local = store.local_tree(manifest.file_name)
    except NotFound as exc:
        raise IntegrityError(f"{manifest.id}: {exc}") from exc
    if local is not None:
        _check_files(store, manifest, workers=workers, into=None)
        restore_split(target, local, workers=workers)
        return
    with tempfile.TemporaryDirectory(prefix=f"tso-restore-{manifest.id}-") as staging:
        _check_files(store, manifest, workers=workers, into=Path(staging))
        restore_split(target, Path(staging), workers=workers)
