"""The WAL archiver of one policy: keeps pg_receivewal running and moves what it writes into the store.

One `tick()` (called every few seconds by its owner) does, in order:
1. restart pg_receivewal if it has died (the slot kept every byte it had not confirmed, so nothing is lost;
   a missing slot means the old stream is gone: its partial segment is dropped, see `_forget_stream`);
2. sample the server's WAL position (for lag and for the time each archived byte stands for);
3. upload every finished segment from the staging directory (sha256, metadata), then delete it locally;
4. upload a snapshot of the segment being written once it has grown (bounds the RPO to the tick interval);
5. compute the recoverable window, gaps, lag and the WALArchiving condition.
Failures are reported, never raised: an archiver that stopped on an error would silently end PITR.
Owns no decision logic (domain/backups/pitr) and no process/SQL details (clients/walstream).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tradesense_operator.clients import walstream
from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.pgdump import PgTarget
from tradesense_operator.clients.storage import BackupStore
from tradesense_operator.domain.backups import pitr
from tradesense_operator.domain.backups.pitr import ArchiverHealth, RecoverableWindow
from tradesense_operator.domain.backups.wal import (
    DEFAULT_SEGMENT_SIZE,
    Lsn,
    WalError,
    parse_segment_name,
    segment_end,
    segment_name,
    segment_of,
)
from tradesense_operator.domain.clock import Clock
from tradesense_operator.services.backups import wal_archive
from tradesense_operator.services.backups.wal_archive import StorageFull

log = logging.getLogger(__name__)

MAX_SAMPLES = 4096


@dataclass(frozen=True)
class ArchiverReport:
    """One pass's outcome, ready for status."""

    health: ArchiverHealth
    window: RecoverableWindow | None
    server_lsn: Lsn | None
    archived_lsn: Lsn | None
    segments: int
    base_backups: list[str]
    gaps: list[pitr.Gap]
    uploaded: list[str] = field(default_factory=list)


class WalArchiver:
    """Supervises one pg_receivewal child and empties its staging directory into the store."""

    def __init__(
        self,
        *,
        target: PgTarget,
        store: BackupStore,
        label: str,
        staging: Path,
        slot: str,
        clock: Clock,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.target = target
        self.store = store
        self.label = label
        self.staging = staging
        self.slot = slot
        self.clock = clock
        self.segment_size = segment_size
        self.receiver: walstream.Receiver | None = None
        self.restarts = 0
        self.samples: deque[tuple[datetime, Lsn]] = deque(maxlen=MAX_SAMPLES)
        self.corrupt: tuple[int, ...] = ()
        self._partial_uploaded: dict[int, tuple[Lsn, str, dict[str, object]]] = {}

    # -- the pass ----------------------------------------------------------------------------

    def tick(self) -> ArchiverReport:
        details: list[str] = []
        running = self._ensure_receiver(details)
        server_lsn, slot_lsn = self._sample(details)
        uploaded: list[str] = []
        storage_full = False
        try:
            uploaded += self._upload_finished()
            if slot_lsn is not None:
                uploaded += self._upload_partial(slot_lsn)
        except StorageFull as exc:
            storage_full = True
            details.append(str(exc))
        except (ClientError, OSError) as exc:
            details.append(f"storage: {exc}")
        return self.report(server_lsn=server_lsn, running=running, reachable=server_lsn is not None,
                           storage_full=storage_full, detail="; ".join(details), uploaded=uploaded)

    def report(
        self, *, server_lsn: Lsn | None, running: bool, reachable: bool, storage_full: bool = False,
        detail: str = "", uploaded: list[str] | None = None,
    ) -> ArchiverReport:
        inv = wal_archive.list_inventory(self.store, self.label, self.segment_size)
        segments = [s for s in inv.segments if s.segno not in self.corrupt]
        window = pitr.current_window(inv.backups, segments, self.segment_size)
        gaps = pitr.find_gaps(segments, self.segment_size)
        runs = pitr.contiguous_runs(segments, self.segment_size)
        archived = runs[-1].end_lsn if runs else None
        covered = runs[-1].covered_until if runs else None
        lag_bytes, lag_time = (pitr.lag(server_lsn, archived, now=self.clock.now(), covered=covered)
                               if server_lsn is not None and archived is not None else (None, None))
        health = ArchiverHealth(
            receiver_running=running, server_reachable=reachable, storage_full=storage_full,
            corrupt_segments=self.corrupt, gaps=tuple(gaps), lag_bytes=lag_bytes,
            lag_seconds=lag_time.total_seconds() if lag_time is not None else None, detail=detail)
        return ArchiverReport(health, window, server_lsn, archived, len(inv.segments),
                              [b.id for b in inv.backups], gaps, uploaded or [])

    def stop(self) -> None:
        """Stop pg_receivewal (its slot keeps the server's WAL until the next start)."""
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None

    # -- steps ---------------------------------------------------------------------------------

    def _ensure_receiver(self, details: list[str]) -> bool:
        if self.receiver is not None and self.receiver.alive():
            return True
        if self.receiver is not None:
            details.append(self.receiver.exit_reason())
            log.warning("%s; restarting", self.receiver.exit_reason())
            self.receiver.stop()
            self.receiver = None
            self.restarts += 1
        try:
            _, slot_lsn = walstream.positions(self.target, self.slot)
            if slot_lsn is None:
                self._forget_stream(details)
            walstream.create_slot(self.target, self.slot)
            self.receiver = walstream.Receiver(self.target, self.staging, self.slot)
        except ClientError as exc:
            details.append(f"cannot start pg_receivewal: {exc}")
            return False
        return True

    def _forget_stream(self, details: list[str]) -> None:
        """The slot is gone (dropped, or the server was restored to a point in time: a new timeline without it).

        pg_receivewal resumes from what its directory holds; a partial segment of the old stream would make it
        ask for a position the server cannot send (after a restore: "not in this server's history") and fail
        on every restart. Finished segments are real WAL of the old timeline and are stored first; the partial
        one is dropped, so streaming starts at the new slot's position.
        """
        self.staging.mkdir(parents=True, exist_ok=True)
        try:
            self._upload_finished()
        except (StorageFull, ClientError, OSError) as exc:
            details.append(f"storage: {exc}")
        dropped = [p.name for p in self.staging.glob("*.partial*")]
        for name in dropped:
            (self.staging / name).unlink(missing_ok=True)
        self._partial_uploaded.clear()
        if dropped:
            details.append(f"replication slot {self.slot} was missing (dropped, or the server was restored): "
                           f"streaming restarts at the server's position ({', '.join(sorted(dropped))} dropped)")

    def _sample(self, details: list[str]) -> tuple[Lsn | None, Lsn | None]:
        now = self.clock.now()
        try:
            server, slot = walstream.positions(self.target, self.slot)
        except ClientError as exc:
            details.append(str(exc))
            return None, None
        server_lsn = Lsn.parse(server)
        self.samples.append((now, server_lsn))
        return server_lsn, Lsn.parse(slot) if slot else None

    def _meta(self, timeline: int, segno: int, end: Lsn, *, partial: bool) -> dict[str, object]:
        covered = pitr.covered_until(list(self.samples), end)
        return {"kind": "segment", "segment": segment_name(timeline, segno, self.segment_size),
                "end_lsn": str(end), "partial": partial,
                "covered_until": covered.isoformat() if covered is not None else None}

    def _upload_finished(self) -> list[str]:
        uploaded: list[str] = []
        for path, timeline, segno in wal_archive.iter_staged(self.staging, self.segment_size):
            if path.stat().st_size != self.segment_size:
                continue  # pg_receivewal renames only complete segments; anything else is not ours
            end = segment_end(segno, self.segment_size)
            name = wal_archive.segment_object(self.label, timeline, segno)
            wal_archive.store_file(self.store, path, name, self._meta(timeline, segno, end, partial=False))
            path.unlink()
            self._partial_uploaded.pop(segno, None)
            uploaded.append(name)
        return uploaded

    def _upload_partial(self, slot_lsn: Lsn) -> list[str]:
        for path in sorted(self.staging.glob("*.partial")):
            try:
                timeline, segno = parse_segment_name(path.name.removesuffix(".partial"),
                                                                 self.segment_size)
            except WalError:
                continue
            if segment_of(slot_lsn, self.segment_size) != segno:
                continue  # the slot's flushed position is not inside this file: nothing provable to add
            previous = self._partial_uploaded.get(segno)
            if previous is not None and previous[0] >= slot_lsn:
                # nothing new to store, but the server has not moved past it either: the snapshot now
                # stands for a later moment (an idle server must not look like a lagging archive)
                _, name, meta = previous
                meta = {**meta, **self._meta(timeline, segno, previous[0], partial=True)}
                self.store.put_text(name + wal_archive.META_SUFFIX, json.dumps(meta, sort_keys=True))
                self._partial_uploaded[segno] = (previous[0], name, meta)
                return []
            snapshot = path.with_name(path.name + ".snapshot")
            shutil.copyfile(path, snapshot)  # the file keeps growing; upload a stable copy
            try:
                name = wal_archive.partial_object(self.label, timeline, segno, slot_lsn)
                meta = self._meta(timeline, segno, slot_lsn, partial=True)
                sha, size = wal_archive.store_file(self.store, snapshot, name, meta)
            finally:
                snapshot.unlink(missing_ok=True)
            self._drop_older_partials(timeline, segno, slot_lsn)
            self._partial_uploaded[segno] = (slot_lsn, name, {**meta, "sha256": sha, "bytes": size})
            return [name]
        return []

    def _drop_older_partials(self, timeline: int, segno: int, keep: Lsn) -> None:
        inv = wal_archive.list_inventory(self.store, self.label, self.segment_size)
        for seg in inv.segments:
            if seg.partial and seg.segno == segno and seg.end_lsn < keep and seg.timeline == timeline:
                wal_archive.delete_segment(self.store, inv, seg)

    # -- checks ----------------------------------------------------------------------------------

    def check_archive(self) -> list[int]:
        """Re-read every archived segment against its checksum (verification, not every pass).

        Corrupt segments are then treated as missing: the window stops before them and WALArchiving
        reports CorruptSegment until they are replaced or a newer base backup makes them unneeded.
        """
        inv = wal_archive.list_inventory(self.store, self.label, self.segment_size)
        self.corrupt = tuple(sorted({s.segno for s in wal_archive.corrupt_segments(self.store, inv)}))
        return list(self.corrupt)
