"""Schedules: next/previous times with time zones, CronJob-like due decisions, deadlines, staleness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.domain.backups.schedule import CronSchedule, ScheduleError, decide_due, is_stale

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


def test_next_and_previous_in_utc() -> None:
    s = CronSchedule("0 2 * * *")
    assert s.next_after(T0) == datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    assert s.at_or_before(T0) == datetime(2026, 1, 4, 2, 0, tzinfo=UTC)
    exact = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    assert s.at_or_before(exact) == exact
    assert s.next_after(exact) == datetime(2026, 1, 6, 2, 0, tzinfo=UTC)


def test_time_zone_is_honoured_across_dst() -> None:
    s = CronSchedule("0 2 * * *", "America/New_York")
    # winter: 02:00 EST = 07:00 UTC; summer: 02:00 EDT = 06:00 UTC
    assert s.next_after(datetime(2026, 1, 5, tzinfo=UTC)) == datetime(2026, 1, 5, 7, tzinfo=UTC)
    assert s.next_after(datetime(2026, 7, 5, tzinfo=UTC)) == datetime(2026, 7, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "tz", "field"),
    [
        ("61 * * * *", "UTC", "spec.schedule"),
        ("* * * *", "UTC", "spec.schedule"),
        ("0 2 * * *", "Mars/Base", "spec.timeZone"),
    ],
)
def test_invalid_schedule_names_the_field(expr: str, tz: str, field: str) -> None:
    with pytest.raises(ScheduleError, match=field):
        CronSchedule(expr, tz)


def test_nothing_due_before_first_time() -> None:
    d = decide_due(CronSchedule("0 2 * * *"), now=T0, last_schedule_time=None, created_at=T0 - timedelta(minutes=5),
                   starting_deadline_seconds=None)
    assert d.run_for is None
    assert d.consumed is None
    assert d.next_time == datetime(2026, 1, 5, 2, tzinfo=UTC)


def test_due_exactly_at_schedule_time_and_not_again() -> None:
    s = CronSchedule("0 2 * * *")
    now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    d = decide_due(s, now=now, last_schedule_time=None, created_at=T0, starting_deadline_seconds=None)
    assert d.run_for == now
    assert d.missed == 0
    again = decide_due(s, now=now + timedelta(minutes=3), last_schedule_time=d.consumed, created_at=T0,
                       starting_deadline_seconds=None)
    assert again.run_for is None


def test_missed_runs_counted_and_only_newest_made_up() -> None:
    s = CronSchedule("0 * * * *")
    now = datetime(2026, 1, 5, 6, 10, tzinfo=UTC)
    d = decide_due(s, now=now, last_schedule_time=datetime(2026, 1, 5, 2, tzinfo=UTC), created_at=T0,
                   starting_deadline_seconds=None)
    assert d.run_for == datetime(2026, 1, 5, 6, tzinfo=UTC)
    assert d.missed == 3  # 03:00, 04:00, 05:00


def test_starting_deadline_skips_a_run_that_is_too_late() -> None:
    s = CronSchedule("0 * * * *")
    last = datetime(2026, 1, 5, 5, tzinfo=UTC)
    in_time = decide_due(s, now=datetime(2026, 1, 5, 6, 0, 59, tzinfo=UTC), last_schedule_time=last, created_at=T0,
                         starting_deadline_seconds=60)
    assert in_time.run_for == datetime(2026, 1, 5, 6, tzinfo=UTC)
    late = decide_due(s, now=datetime(2026, 1, 5, 6, 1, 1, tzinfo=UTC), last_schedule_time=last, created_at=T0,
                      starting_deadline_seconds=60)
    assert late.run_for is None
    assert late.too_late
    assert late.consumed == datetime(2026, 1, 5, 6, tzinfo=UTC)


def test_stale_after_two_intervals_without_success() -> None:
    s = CronSchedule("0 2 * * *")
    success = datetime(2026, 1, 5, 2, 5, tzinfo=UTC)
    assert not is_stale(s, now=success + timedelta(hours=47), newest_success=success, created_at=T0)
    assert is_stale(s, now=success + timedelta(hours=48, seconds=1), newest_success=success, created_at=T0)
    assert not is_stale(s, now=T0 + timedelta(hours=30), newest_success=None, created_at=T0)
    assert is_stale(s, now=T0 + timedelta(hours=49), newest_success=None, created_at=T0)
