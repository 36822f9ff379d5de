"""The PITR half of a policy's store: WAL segments and base backups, each checksummed, listed as an inventory.

Object names (flat, next to the logical dumps, never matching their `<label>_…` names or manifest suffix):
  `<label>.wal.<SEGMENT>`                     a complete segment
  `<label>.walpartial.<SEGMENT>.<LSN hex>`    a snapshot of the segment being written, valid up to LSN
  `<label>.base.<id>.tar`                     a pg_basebackup tar
  each followed by `.pitr.json`: sha256, size, LSNs, times. The metadata is written after the data, so
  an object without metadata is an interrupted upload, never part of the archive.
Owns storing, listing, fetching (checksum re-checked) and deleting these objects; decisions about them
belong to domain/backups/pitr.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tradesense_operator.clients.errors import ClientError, NotFound
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups.pitr import ArchivedSegment, BaseBackupInfo
from tradesense_operator.domain.backups.wal import DEFAULT_SEGMENT_SIZE, Lsn, WalError, parse_segment_name, segment_name

log = logging.getLogger(__name__)

META_SUFFIX = ".pitr.json"
CHUNK = 1 << 20


class StorageFull(Exception):
    """The store has no space left (ENOSPC or its quota)."""


class CorruptObject(Exception):
    """A stored object's bytes do not match the checksum recorded when it was archived."""


def segment_object(label: str, timeline: int, segno: int) -> str:
    return f"{label}.wal.{segment_name(timeline, segno)}"


def partial_object(label: str, timeline: int, segno: int, upto: Lsn) -> str:
    return f"{label}.walpartial.{segment_name(timeline, segno)}.{upto.value:016X}"


def base_object(label: str, backup_id: str) -> str:
    return f"{label}.base.{backup_id}.tar"


def _is_enospc(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cause = cause.__cause__
    return "No space left" in str(exc)


def store_file(store: BackupStore, source: Path, name: str, meta: dict[str, Any]) -> tuple[str, int]:
    """Upload `source` as `name` (sha256 computed on the way), then its metadata; StorageFull on ENOSPC."""
    digest = hashlib.sha256()
    size = 0
    try:
        if store.exists(name):
            store.delete(name)
        writer = store.open_writer(name)
        try:
            with source.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    writer.write(chunk)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        store.put_text(name + META_SUFFIX, json.dumps({**meta, "sha256": digest.hexdigest(), "bytes": size},
                                                      sort_keys=True))
    except (ClientError, OSError) as exc:
        if _is_enospc(exc):
            raise StorageFull(f"storing {name}: no space left") from exc
        raise
    return digest.hexdigest(), size


@dataclass
class Inventory:
    """Everything PITR-related one label has in the store."""

    segments: list[ArchivedSegment] = field(default_factory=list)
    backups: list[BaseBackupInfo] = field(default_factory=list)
    names: dict[tuple[int, int, bool, int], str] = field(default_factory=dict)
    """(timeline, segno, partial, end_lsn) -> object name."""
    backup_names: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    """object name -> sha256."""

    def object_of(self, seg: ArchivedSegment) -> str:
        return self.names[(seg.timeline, seg.segno, seg.partial, seg.end_lsn.value)]


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def list_inventory(store: BackupStore, label: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Inventory:
    """Segments and base backups of `label` that have both data and metadata; unreadable metadata is skipped."""
    objects = {o.name for o in store.list_objects()}
    inv = Inventory()
    for meta_name in sorted(n for n in objects if n.endswith(META_SUFFIX) and n.startswith(label + ".")):
        name = meta_name[: -len(META_SUFFIX)]
        if name not in objects:
            continue
        try:
            meta = json.loads(store.get_text(meta_name))
            kind = meta["kind"]
            if kind == "segment":
                timeline, segno = parse_segment_name(meta["segment"], segment_size)
                seg = ArchivedSegment(segno, timeline, Lsn.parse(meta["end_lsn"]), _time(meta.get("covered_until")),
                                      partial=bool(meta.get("partial")), sha256=meta["sha256"],
                                      bytes=int(meta["bytes"]))
                inv.segments.append(seg)
                inv.names[(timeline, segno, seg.partial, seg.end_lsn.value)] = name
            elif kind == "base":
                started = _time(meta["started_at"])
                finished = _time(meta["finished_at"])
                assert started is not None
                assert finished is not None
                inv.backups.append(BaseBackupInfo(meta["id"], started, finished, Lsn.parse(meta["start_lsn"]),
                                                  Lsn.parse(meta["end_lsn"]), int(meta["timeline"])))
                inv.backup_names[meta["id"]] = name
            else:
                continue
            inv.checksums[name] = meta["sha256"]
        except (NotFound, KeyError, ValueError, WalError, AssertionError) as exc:
            log.warning("ignoring unreadable PITR metadata %s: %s", meta_name, exc)
    inv.segments.sort(key=lambda s: (s.segno, s.partial, s.end_lsn))
    inv.backups.sort(key=lambda b: (b.finished_at, b.id), reverse=True)
    return inv


def fetch(store: BackupStore, name: str, sha256: str, dest: Path) -> None:
    """Copy `name` to `dest`, checking its sha256; CorruptObject (and no `dest`) on mismatch."""
    digest = hashlib.sha256()
    temp = dest.with_name(dest.name + ".fetching")
    with temp.open("wb") as handle:
        for chunk in store.read_chunks(name):
            digest.update(chunk)
            handle.write(chunk)
    if digest.hexdigest() != sha256:
        temp.unlink()
        raise CorruptObject(f"{name}: sha256 {digest.hexdigest()[:12]}… does not match the archived {sha256[:12]}…")
    temp.rename(dest)


def check(store: BackupStore, name: str, sha256: str) -> bool:
    """Whether `name` still has the archived checksum (re-read in full)."""
    digest = hashlib.sha256()
    try:
        for chunk in store.read_chunks(name):
            digest.update(chunk)
    except NotFound:
        return False
    return digest.hexdigest() == sha256


def corrupt_segments(store: BackupStore, inv: Inventory) -> list[ArchivedSegment]:
    """Segments whose stored bytes no longer match their checksum (a full re-read: verification only)."""
    return [s for s in inv.segments if not check(store, inv.object_of(s), s.sha256)]


def delete_segment(store: BackupStore, inv: Inventory, seg: ArchivedSegment) -> None:
    """Metadata first: an interrupted deletion leaves an orphan, never metadata pointing at nothing."""
    name = inv.object_of(seg)
    store.delete(name + META_SUFFIX)
    store.delete(name)


def delete_backup(store: BackupStore, inv: Inventory, backup_id: str) -> None:
    name = inv.backup_names[backup_id]
    store.delete(name + META_SUFFIX)
    store.delete(name)


def iter_staged(directory: Path, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Iterator[tuple[Path, int, int]]:
    """Complete segment files pg_receivewal has finished in `directory`: (path, timeline, segno), oldest first."""
    found: list[tuple[int, int, Path]] = []
    for path in directory.iterdir():
        try:
            timeline, segno = parse_segment_name(path.name, segment_size)
        except WalError:
            continue
        found.append((segno, timeline, path))
    for segno, timeline, path in sorted(found):
        yield path, timeline, segno

