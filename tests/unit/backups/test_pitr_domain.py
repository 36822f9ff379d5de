"""Point-in-time recovery arithmetic: LSNs and segment names, continuity and gaps, the recoverable window,
WAL retention that never orphans a kept base backup, and restore-target selection (base backup, WAL
range, loss window, refusals)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.domain.backups.pitr import (
    ArchivedSegment,
    ArchiverHealth,
    BaseBackupInfo,
    Gap,
    TargetRefused,
    archiving_condition,
    contiguous_runs,
    covered_until,
    current_window,
    find_gaps,
    lag,
    plan_restore,
    wal_deletions,
)
from tradesense_operator.domain.backups.wal import (
    Lsn,
    WalError,
    parse_segment_name,
    segment_end,
    segment_name,
    segment_of,
    segment_start,
)

SEG = 16 * 1024 * 1024
T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(("text", "value"), [
    ("0/0", 0), ("0/3000060", 0x3000060), ("16/B374D848", (0x16 << 32) | 0xB374D848), ("ffffffff/ffffffff", 2**64 - 1),
])
def test_lsn_parses_and_prints_like_postgres(text: str, value: int) -> None:
    assert Lsn.parse(text).value == value
    assert str(Lsn(value)) == text.upper()


@pytest.mark.parametrize("bad", ["", "0", "0/", "g/1", "1/2/3", "123456789/0"])
def test_bad_lsn_is_refused(bad: str) -> None:
    with pytest.raises(WalError):
        Lsn.parse(bad)


@pytest.mark.parametrize(("timeline", "lsn", "name"), [
    (1, "0/0", "000000010000000000000000"),
    (1, "0/3000060", "000000010000000000000003"),
    (1, "0/FFFFFFFF", "0000000100000000000000FF"),
    (1, "1/0", "000000010000000100000000"),
    (2, "16/B374D848", "0000000200000016000000B3"),
])
def test_segment_names_match_postgres(timeline: int, lsn: str, name: str) -> None:
    segno = segment_of(Lsn.parse(lsn))
    assert segment_name(timeline, segno) == name
    assert parse_segment_name(name) == (timeline, segno)
    assert segment_start(segno) <= Lsn.parse(lsn) < segment_end(segno)


def test_segment_size_changes_the_naming() -> None:
    size = 64 * 1024 * 1024
    segno = segment_of(Lsn.parse("1/0"), size)
    assert segment_name(1, segno, size) == "000000010000000100000000"
    assert segment_name(1, segno - 1, size) == "00000001000000000000003F"
    with pytest.raises(WalError):
        parse_segment_name("000000010000000000000040", size)
    with pytest.raises(WalError):
        segment_of(Lsn(0), 3 * 1024 * 1024)


@pytest.mark.parametrize("bad", ["000000010000000000000003.partial", "00000002.history", "xyz"])
def test_non_segment_names_are_refused(bad: str) -> None:
    with pytest.raises(WalError):
        parse_segment_name(bad)


def seg(n: int, minutes: float | None = None, *, partial_to: int | None = None) -> ArchivedSegment:
    end = segment_end(n) if partial_to is None else Lsn(segment_start(n).value + partial_to)
    return ArchivedSegment(n, 1, end, at(minutes) if minutes is not None else None, partial=partial_to is not None)


def base(id_: str, start_seg: int, end_seg: int, finished_min: float) -> BaseBackupInfo:
    return BaseBackupInfo(id_, at(finished_min - 1), at(finished_min), Lsn(segment_start(start_seg).value + 40),
                          Lsn(segment_start(end_seg).value + 4000))


@pytest.mark.parametrize(("segments", "runs", "gaps"), [
    ([seg(1), seg(2), seg(3)], [(1, 3)], []),
    ([seg(1), seg(3)], [(1, 1), (3, 3)], [(2, 2)]),
    ([seg(1), seg(2), seg(6), seg(7)], [(1, 2), (6, 7)], [(3, 5)]),
    # a partial segment ends its run: its tail is missing, so the next segment cannot follow it
    ([seg(1), seg(2, partial_to=100), seg(3)], [(1, 2), (3, 3)], [(2, 2)]),
    # a complete copy supersedes the partial one
    ([seg(1), seg(2, partial_to=100), seg(2), seg(3)], [(1, 3)], []),
    ([], [], []),
])
def test_runs_and_gaps(segments: list[ArchivedSegment], runs: list[tuple[int, int]],
                       gaps: list[tuple[int, int]]) -> None:
    assert [(r.first, r.last) for r in contiguous_runs(segments)] == runs
    assert [(g.first, g.last) for g in find_gaps(segments)] == gaps


def test_window_spans_oldest_usable_base_backup_to_newest_covered_time() -> None:
    backups = [base("b1", 1, 1, 10), base("b2", 4, 4, 40)]
    segments = [seg(n, 10 * n) for n in range(1, 7)]
    window = current_window(backups, segments)
    assert window is not None
    assert (window.earliest, window.latest, window.base_backup_id) == (at(10), at(60), "b1")


def test_gap_shrinks_window_to_base_backups_after_it() -> None:
    backups = [base("b1", 1, 1, 10), base("b2", 4, 4, 40)]
    segments = [seg(n, 10 * n) for n in (1, 2, 4, 5, 6)]  # segment 3 lost
    window = current_window(backups, segments)
    assert window is not None
    assert (window.earliest, window.latest, window.base_backup_id) == (at(40), at(60), "b2")


def test_no_window_without_wal_reaching_a_backups_end() -> None:
    assert current_window([base("b1", 1, 2, 10)], [seg(1, 10)]) is None
    assert current_window([], [seg(1, 10)]) is None


def test_timelines_never_mix() -> None:
    """After a restore to segment 3 the server writes timeline 2 from segment 3 on: its segments neither continue
    nor replace timeline 1's, the switch is no gap, and a restore uses one timeline's base backup and WAL."""
    tl1 = [seg(n, 10 * n) for n in range(1, 7)]
    tl2 = [replace(seg(n, 100 + 10 * n), timeline=2) for n in (3, 4, 5)] + [
        replace(seg(6, 170, partial_to=10), timeline=2)]
    assert [(r.timeline, r.first, r.last) for r in contiguous_runs(tl1 + tl2)] == [(1, 1, 6), (2, 3, 6)]
    assert find_gaps(tl1 + tl2) == []
    b1 = base("b1", 1, 1, 10)
    with pytest.raises(TargetRefused, match="timeline 2, which has no base backup yet"):
        plan_restore([b1], tl1 + tl2, now=at(200))
    assert plan_restore([b1], tl1 + tl2, now=at(200), target_time=at(45)).window.run.timeline == 1
    b2 = replace(base("b2", 4, 4, 145), timeline=2)
    latest = plan_restore([b1, b2], tl1 + tl2, now=at(200))
    assert (latest.base_backup.id, latest.window.run.timeline, latest.first_segno, latest.last_segno) == ("b2", 2, 4, 6)
    # timeline 2 loses only what precedes its base backup; its partial segment 6 stays although timeline 1
    # has a complete segment 6
    assert [s.segno for s in wal_deletions([b2], tl1 + tl2) if s.timeline == 2] == [3]


def test_retention_keeps_every_segment_a_kept_backup_needs() -> None:
    kept = [base("b2", 4, 4, 40), base("b3", 6, 6, 60)]
    segments = [seg(n) for n in range(1, 8)] + [seg(7, partial_to=10), seg(8, partial_to=10)]
    deleted = wal_deletions(kept, segments)
    assert [(s.segno, s.partial) for s in deleted] == [(1, False), (2, False), (3, False), (7, True)]
    remaining = [s for s in segments if s not in deleted]
    window = current_window(kept, remaining)
    assert window is not None
    assert window.base_backup_id == "b2"


def test_retention_without_kept_backup_deletes_no_complete_segment() -> None:
    assert wal_deletions([], [seg(1), seg(2)]) == []


def test_plan_for_time_picks_newest_base_backup_before_it() -> None:
    backups = [base("b1", 1, 1, 10), base("b2", 4, 4, 40)]
    segments = [seg(n, 10 * n) for n in range(1, 7)]
    plan = plan_restore(backups, segments, now=at(70), target_time=at(35))
    assert (plan.base_backup.id, plan.first_segno, plan.last_segno) == ("b1", 1, 6)
    assert plan.loss_after == at(35)
    assert plan.loss_seconds == 35 * 60
    plan = plan_restore(backups, segments, now=at(70), target_time=at(45))
    assert (plan.base_backup.id, plan.first_segno) == ("b2", 4)
    assert "b2" in plan.describe()
    assert "4..6" in plan.describe()


def test_plan_latest_reports_loss_since_newest_archived_moment() -> None:
    backups = [base("b1", 1, 1, 10)]
    plan = plan_restore(backups, [seg(n, 10 * n) for n in range(1, 4)], now=at(31))
    assert plan.latest
    assert plan.base_backup.id == "b1"
    assert plan.loss_after == at(30)
    assert plan.loss_seconds == 60


def test_plan_for_lsn() -> None:
    backups = [base("b1", 1, 1, 10), base("b2", 4, 4, 40)]
    segments = [seg(n, 10 * n) for n in range(1, 7)]
    plan = plan_restore(backups, segments, now=at(70), target_lsn=Lsn(segment_start(3).value + 5))
    assert (plan.base_backup.id, plan.first_segno, plan.last_segno) == ("b1", 1, 3)
    with pytest.raises(TargetRefused, match="not restorable"):
        plan_restore(backups, segments, now=at(70), target_lsn=segment_start(9))


@pytest.mark.parametrize(("target", "message"), [
    (at(5), "not restorable"),      # before the oldest base backup
    (at(25), "gaps: segment 3"),    # inside the gap
    (at(90), "not restorable"),     # after the newest archived moment
])
def test_plan_refuses_targets_outside_the_windows(target: datetime, message: str) -> None:
    backups = [base("b1", 1, 1, 10), base("b2", 4, 4, 40)]
    segments = [seg(n, 10 * n) for n in (1, 2, 4, 5, 6)]
    with pytest.raises(TargetRefused, match=message):
        plan_restore(backups, segments, now=at(70), target_time=target)


def test_latest_refused_when_a_gap_cuts_newest_wal_off_every_base_backup() -> None:
    backups = [base("b1", 1, 1, 10)]
    segments = [seg(n, 10 * n) for n in (1, 2, 4, 5)]
    with pytest.raises(TargetRefused, match=r"gap .*segment 3"):
        plan_restore(backups, segments, now=at(70))
    plan = plan_restore(backups, segments, now=at(70), target_time=at(15))  # inside the older window: fine
    assert plan.base_backup.id == "b1"
    assert plan.last_segno == 2


def test_plan_needs_aware_time_and_one_target() -> None:
    backups, segments = [base("b1", 1, 1, 10)], [seg(1, 10), seg(2, 20)]
    with pytest.raises(TargetRefused, match="time zone"):
        plan_restore(backups, segments, now=at(70), target_time=datetime(2026, 1, 10, 12, 15))  # noqa: DTZ001
    with pytest.raises(TargetRefused, match="not both"):
        plan_restore(backups, segments, now=at(70), target_time=at(15), target_lsn=Lsn(1))
    with pytest.raises(TargetRefused, match="no recoverable window"):
        plan_restore([], segments, now=at(70))


def test_covered_until_and_lag() -> None:
    samples = [(at(0), Lsn(100)), (at(1), Lsn(200)), (at(2), Lsn(300))]
    assert covered_until(samples, Lsn(250)) == at(1)
    assert covered_until(samples, Lsn(50)) is None
    assert lag(Lsn(300), Lsn(250), now=at(3), covered=at(1)) == (50, timedelta(minutes=2))
    assert lag(Lsn(300), Lsn(400), now=at(3), covered=None) == (0, None)


@pytest.mark.parametrize(("health", "status", "reason"), [
    (ArchiverHealth(True, True, lag_bytes=10, lag_seconds=1.0), True, "Streaming"),
    (ArchiverHealth(True, True, lag_bytes=10, lag_seconds=120.0), False, "FallingBehind"),
    (ArchiverHealth(True, True, lag_bytes=10**9, lag_seconds=1.0), False, "FallingBehind"),
    (ArchiverHealth(False, True), False, "Stopped"),
    (ArchiverHealth(True, False), False, "Stopped"),
    (ArchiverHealth(True, True, gaps=(Gap(3, 4),)), False, "Gap"),
    (ArchiverHealth(True, True, corrupt_segments=(3,), gaps=(Gap(3, 3),)), False, "CorruptSegment"),
    (ArchiverHealth(False, False, storage_full=True), False, "StorageFull"),
])
def test_archiving_condition(health: ArchiverHealth, status: bool, reason: str) -> None:
    got = archiving_condition(health, warning_seconds=60, warning_bytes=10**6)
    assert got[:2] == (status, reason)
    assert got[2]


def test_archiving_condition_names_the_policys_lag_limit() -> None:
    behind = ArchiverHealth(True, True, lag_bytes=10, lag_seconds=1000.0)
    ok, reason, message = archiving_condition(behind, warning_seconds=60, warning_bytes=10**6, limit_seconds=900)
    assert (ok, reason) == (False, "FallingBehind")
    assert "beyond the policy's limit of 900s" in message
    _, _, warning = archiving_condition(ArchiverHealth(True, True, lag_bytes=10, lag_seconds=120.0),
                                        warning_seconds=60, warning_bytes=10**6, limit_seconds=900)
    assert "limit" not in warning
