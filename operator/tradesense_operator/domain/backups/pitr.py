"""Point-in-time recovery decisions over an inventory of base backups and archived WAL segments.

Answers, from what the store lists: which stretches of WAL are continuous (and where the gaps are),
the recoverable window (earliest and latest restorable time), which segments retention may delete
without orphaning a kept base backup, and for a restore target which base backup and WAL range to use
and how much data the restore gives up. Pure: no I/O, no clock (callers pass `now`).

Timelines: a point-in-time restore starts a new timeline whose segment numbers overlap the old one's. A
run of WAL, a gap and a base backup's usability are per timeline: a segment of timeline 1 never continues
(or replaces) one of timeline 2, so a restore never replays another timeline's WAL onto a base backup.

Time in the archive is conservative by construction: a segment's `covered_until` is a moment at which
the server's WAL position was at or before the segment's end, so every transaction committed before
that moment is in this segment or an earlier one. A window's latest time is therefore a promise, not
an estimate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradesense_operator.domain.backups.wal import DEFAULT_SEGMENT_SIZE, Lsn, segment_end, segment_of


class TargetRefused(ValueError):
    """The requested point cannot be restored faithfully; the message says why and what can be."""


@dataclass(frozen=True)
class ArchivedSegment:
    """One WAL segment in the archive (a `partial` one is the segment still being written)."""

    segno: int
    timeline: int
    end_lsn: Lsn
    """First position not in the archived bytes (the segment's end unless partial)."""
    covered_until: datetime | None = None
    partial: bool = False
    sha256: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class BaseBackupInfo:
    """One base backup: restorable from `finished_at` once WAL from start_lsn through end_lsn is archived."""

    id: str
    started_at: datetime
    finished_at: datetime
    start_lsn: Lsn
    end_lsn: Lsn
    timeline: int = 1


@dataclass(frozen=True)
class WalRun:
    """Consecutive segments first..last with no hole; `end_lsn` is where the archived bytes stop."""

    first: int
    last: int
    end_lsn: Lsn
    covered_until: datetime | None
    timeline: int = 1


@dataclass(frozen=True)
class Gap:
    """Segments first..last (inclusive) are missing (or only partly archived) between two runs of one timeline."""

    first: int
    last: int

    def describe(self) -> str:
        return f"segment {self.first}" if self.first == self.last else f"segments {self.first}..{self.last}"


@dataclass(frozen=True)
class RecoverableWindow:
    """A continuous range of restorable times, anchored on its oldest usable base backup."""

    earliest: datetime
    latest: datetime
    base_backup_id: str
    run: WalRun


def best_copies(segments: Iterable[ArchivedSegment]) -> list[ArchivedSegment]:
    """One entry per (timeline, segment number) (a complete copy supersedes a partial one), ascending."""
    chosen: dict[tuple[int, int], ArchivedSegment] = {}
    for seg in segments:
        key = (seg.timeline, seg.segno)
        current = chosen.get(key)
        if current is None or (current.partial and (not seg.partial or seg.end_lsn > current.end_lsn)):
            chosen[key] = seg
    return [chosen[k] for k in sorted(chosen)]


def contiguous_runs(segments: Iterable[ArchivedSegment], segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[WalRun]:
    """Maximal runs of consecutive segments of one timeline, oldest timeline first; a partial segment ends
    its run (its tail is missing)."""
    runs: list[WalRun] = []
    first: ArchivedSegment | None = None
    prev: ArchivedSegment | None = None
    covered: datetime | None = None

    def close() -> None:
        if first is not None and prev is not None:
            runs.append(WalRun(first.segno, prev.segno, prev.end_lsn, covered, prev.timeline))

    for seg in best_copies(segments):
        continues = (prev is not None and seg.timeline == prev.timeline and seg.segno == prev.segno + 1
                     and not prev.partial and prev.end_lsn >= segment_end(prev.segno, segment_size))
        if not continues:
            close()
            first, covered = seg, None
        prev = seg
        if seg.covered_until is not None and (covered is None or seg.covered_until > covered):
            covered = seg.covered_until
    close()
    return runs


def find_gaps(segments: Iterable[ArchivedSegment], segment_size: int = DEFAULT_SEGMENT_SIZE) -> list[Gap]:
    """Holes between runs, oldest first (a run ending in a partial segment counts that segment as missing)."""
    runs = contiguous_runs(segments, segment_size)
    gaps: list[Gap] = []
    for before, after in itertools.pairwise(runs):
        if before.timeline != after.timeline:
            continue  # a new timeline is not a hole in the old one
        first = before.last + 1 if before.end_lsn >= segment_end(before.last, segment_size) else before.last
        gaps.append(Gap(first, after.first - 1 if after.first - 1 >= first else first))
    return gaps


def _usable(backup: BaseBackupInfo, run: WalRun, segment_size: int) -> bool:
    return (backup.timeline == run.timeline and run.first <= segment_of(backup.start_lsn, segment_size)
            and backup.end_lsn <= run.end_lsn)


def windows(
    backups: Sequence[BaseBackupInfo], segments: Iterable[ArchivedSegment], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> list[RecoverableWindow]:
    """Every recoverable window, oldest first: one per WAL run that holds at least one usable base backup."""
    result: list[RecoverableWindow] = []
    for run in contiguous_runs(segments, segment_size):
        usable = sorted((b for b in backups if _usable(b, run, segment_size)), key=lambda b: (b.finished_at, b.id))
        if not usable:
            continue
        oldest = usable[0]
        newest_backup_time = usable[-1].finished_at
        latest = max(run.covered_until or newest_backup_time, newest_backup_time)
        result.append(RecoverableWindow(oldest.finished_at, latest, oldest.id, run))
    return result


def current_window(
    backups: Sequence[BaseBackupInfo], segments: Iterable[ArchivedSegment], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> RecoverableWindow | None:
    """The newest window (the one status reports); None when nothing is restorable."""
    found = windows(backups, segments, segment_size)
    return found[-1] if found else None


# -- retention --------------------------------------------------------------------------------


def wal_deletions(
    kept_backups: Sequence[BaseBackupInfo], segments: Iterable[ArchivedSegment], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> list[ArchivedSegment]:
    """Segments no kept base backup needs: older than the oldest kept backup's start, plus superseded partials.

    With no kept base backup nothing is deleted: the WAL is the only copy of recent changes and the next
    base backup will anchor it.
    """
    all_segments = list(segments)
    deletions = [s for s in all_segments if s.partial and any(
        o.segno == s.segno and o.timeline == s.timeline and not o.partial for o in all_segments)]
    if kept_backups:
        floor = min(segment_of(b.start_lsn, segment_size) for b in kept_backups)
        deletions += [s for s in all_segments if s.segno < floor and s not in deletions]
    return sorted(deletions, key=lambda s: (s.segno, s.partial))


# -- restore targets --------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    """What a point-in-time restore will use and what it gives up."""

    base_backup: BaseBackupInfo
    first_segno: int
    last_segno: int
    target_time: datetime | None
    target_lsn: Lsn | None
    window: RecoverableWindow
    loss_after: datetime
    """Changes committed after this moment are not restored (the target, or the archive's latest)."""
    loss_seconds: float

    @property
    def latest(self) -> bool:
        return self.target_time is None and self.target_lsn is None

    def describe(self) -> str:
        if self.target_time is not None:
            target = f"time {self.target_time.isoformat()}"
        elif self.target_lsn is not None:
            target = f"LSN {self.target_lsn}"
        else:
            target = "the latest archived point"
        return (f"base backup {self.base_backup.id} + WAL segments {self.first_segno}..{self.last_segno} "
                f"replayed to {target}; changes after {self.loss_after.isoformat()} are not restored "
                f"({self.loss_seconds:.0f}s)")


def _window_text(found: Sequence[RecoverableWindow]) -> str:
    if not found:
        return "no recoverable window (no base backup with continuous WAL)"
    return "recoverable: " + ", ".join(f"{w.earliest.isoformat()} .. {w.latest.isoformat()}" for w in found)


def plan_restore(
    backups: Sequence[BaseBackupInfo],
    segments: Iterable[ArchivedSegment],
    *,
    now: datetime,
    target_time: datetime | None = None,
    target_lsn: Lsn | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> RestorePlan:
    """Choose the base backup and WAL range for a target (time, LSN or, with neither, the latest point).

    TargetRefused when the target is outside every window, falls in a gap, or (for latest) when a gap
    cuts the newest WAL off from every base backup: restoring would silently lose more than asked.
    """
    if target_time is not None and target_lsn is not None:
        raise TargetRefused("give targetTime or targetLSN, not both")
    if target_time is not None and target_time.tzinfo is None:
        raise TargetRefused("targetTime must carry a time zone (e.g. 2024-01-16T14:03:00Z)")
    segs = list(segments)
    found = windows(backups, segs, segment_size)
    runs = contiguous_runs(segs, segment_size)
    gaps = find_gaps(segs, segment_size)
    if not found:
        raise TargetRefused(_window_text(found))
    if target_time is None and target_lsn is None:
        window = found[-1]
        if runs and window.run != runs[-1]:
            cut = (f"a gap ({', '.join(g.describe() for g in gaps)})" if window.run.timeline == runs[-1].timeline
                   else f"timeline {runs[-1].timeline}, which has no base backup yet,")
            raise TargetRefused(
                f"the archive has {cut} after the newest restorable "
                f"point {window.latest.isoformat()}; 'latest' would silently restore older data. "
                f"Give an explicit targetTime within the window ({_window_text(found)})")
        return _plan(backups, window, now=now, segment_size=segment_size, at_time=None, at_lsn=None)
    for window in reversed(found):
        if target_time is not None and window.earliest <= target_time <= window.latest:
            return _plan(backups, window, now=now, segment_size=segment_size, at_time=target_time, at_lsn=None)
        if target_lsn is not None and window.run.end_lsn >= target_lsn and any(
                b.end_lsn <= target_lsn and _usable(b, window.run, segment_size) for b in backups):
            return _plan(backups, window, now=now, segment_size=segment_size, at_time=None, at_lsn=target_lsn)
    what = target_time.isoformat() if target_time is not None else str(target_lsn)
    gap_text = f"; gaps: {', '.join(g.describe() for g in gaps)}" if gaps else ""
    raise TargetRefused(f"target {what} is not restorable ({_window_text(found)}{gap_text})")


def _plan(
    backups: Sequence[BaseBackupInfo],
    window: RecoverableWindow,
    *,
    now: datetime,
    segment_size: int,
    at_time: datetime | None,
    at_lsn: Lsn | None,
) -> RestorePlan:
    run = window.run
    usable = [b for b in backups if _usable(b, run, segment_size)]
    if at_time is not None:
        usable = [b for b in usable if b.finished_at <= at_time]
    if at_lsn is not None:
        usable = [b for b in usable if b.end_lsn <= at_lsn]
    base = max(usable, key=lambda b: (b.finished_at, b.id))  # the window guarantees one exists
    last = segment_of(at_lsn, segment_size) if at_lsn is not None else run.last
    loss_after = at_time if at_time is not None else window.latest
    if at_lsn is not None:
        loss_after = max(base.finished_at, window.earliest)
    return RestorePlan(
        base_backup=base, first_segno=segment_of(base.start_lsn, segment_size), last_segno=min(last, run.last),
        target_time=at_time, target_lsn=at_lsn, window=window, loss_after=loss_after,
        loss_seconds=max(0.0, (now - loss_after).total_seconds()),
    )


def covered_until(samples: Sequence[tuple[datetime, Lsn]], archived_to: Lsn) -> datetime | None:
    """The newest sample time whose server WAL position the archive already reaches (None: none does)."""
    times = [when for when, position in samples if position <= archived_to]
    return max(times) if times else None


def lag(server_lsn: Lsn, archived_to: Lsn, *, now: datetime, covered: datetime | None) -> tuple[int, timedelta | None]:
    """(bytes behind the server, time since the newest moment fully archived)."""
    return max(0, server_lsn - archived_to), (now - covered) if covered is not None else None


# -- the WALArchiving condition -----------------------------------------------------------------


@dataclass(frozen=True)
class ArchiverHealth:
    """What the archiver observed on its last pass."""

    receiver_running: bool
    server_reachable: bool
    storage_full: bool = False
    corrupt_segments: tuple[int, ...] = ()
    gaps: tuple[Gap, ...] = ()
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    detail: str = ""


def archiving_condition(
    health: ArchiverHealth, *, warning_seconds: float, warning_bytes: int, limit_seconds: float | None = None
) -> tuple[bool, str, str]:
    """(status, reason, message) of WALArchiving; the most severe cause wins.

    `limit_seconds` is the policy's RPO limit (lagCriticalSeconds): a lag beyond it is still FallingBehind,
    but the message says the limit is exceeded, which is what the alert on the exported limit pages for.
    """
    extra = f": {health.detail}" if health.detail else ""
    if health.storage_full:
        return False, "StorageFull", f"the archive storage is full; WAL accumulates on the server's slot{extra}"
    if health.corrupt_segments:
        listed = ", ".join(str(n) for n in health.corrupt_segments[:5])
        return False, "CorruptSegment", f"archived segment(s) {listed} fail their checksum; the window stops there"
    if not health.server_reachable:
        return False, "Stopped", f"cannot reach the server's replication connection{extra}"
    if not health.receiver_running:
        return False, "Stopped", f"pg_receivewal is not running{extra}"
    if health.gaps:
        return False, "Gap", f"WAL missing from the archive: {', '.join(g.describe() for g in health.gaps)}"
    behind = (f"archive is {health.lag_seconds or 0:.0f}s and {health.lag_bytes or 0} bytes behind the server")
    if limit_seconds is not None and health.lag_seconds is not None and health.lag_seconds > limit_seconds:
        return False, "FallingBehind", f"{behind}: beyond the policy's limit of {limit_seconds:.0f}s (lagCriticalSeconds)"
    if (health.lag_seconds is not None and health.lag_seconds > warning_seconds) or (
            health.lag_bytes is not None and health.lag_bytes > warning_bytes):
        return False, "FallingBehind", f"{behind} (thresholds {warning_seconds:.0f}s, {warning_bytes} bytes)"
    return True, "Streaming", "WAL is streaming into the archive"
