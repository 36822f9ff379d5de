"""Cron schedules with time zones, due-run decisions (CronJob semantics) and staleness.

Why our own layer over croniter: the operator must answer "is a run due *now*, and which scheduled
time does it stand for?" idempotently from status alone (lastScheduleTime), so a restarted operator
neither repeats a run nor silently forgets a missed one; and it must do so against an injected clock.
Pure: must not read the wall clock, run a backup or write status (services/backups/reconcile does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MAX_COUNTED_MISSES = 1000  # like CronJob's 100-miss guard: counting stops, the decision does not change


class ScheduleError(ValueError):
    """An invalid cron expression or time zone; the message names the field."""


def _require_aware(when: datetime, what: str) -> None:
    if when.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")


@dataclass(frozen=True)
class CronSchedule:
    """A 5-field cron expression (or @daily …) evaluated in an IANA time zone; answers are UTC."""

    expression: str
    time_zone: str = "UTC"
    field: str = "spec.schedule"

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression) or len(self.expression.split()) not in (1, 5):
            raise ScheduleError(f"{self.field}: {self.expression!r} is not a valid 5-field cron expression")
        if self.expression.startswith("@") and len(self.expression.split()) != 1:
            raise ScheduleError(f"{self.field}: {self.expression!r} is not a valid cron expression")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ScheduleError(f"spec.timeZone: unknown time zone {self.time_zone!r}") from exc

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def next_after(self, when: datetime) -> datetime:
        """The first scheduled time strictly after `when`."""
        _require_aware(when, "when")
        local = when.astimezone(self._zone)
        result: datetime = croniter(self.expression, local).get_next(datetime)
        return result.astimezone(UTC)

    def at_or_before(self, when: datetime) -> datetime:
        """The latest scheduled time not after `when` (cron has minute granularity)."""
        _require_aware(when, "when")
        local = (when.replace(microsecond=0) + timedelta(seconds=1)).astimezone(self._zone)
        result: datetime = croniter(self.expression, local).get_prev(datetime)
        return result.astimezone(UTC)

    def interval_at(self, when: datetime) -> timedelta:
        """Length of the schedule interval containing `when` (irregular crons have varying intervals)."""
        previous = self.at_or_before(when)
        return self.next_after(previous) - previous


@dataclass(frozen=True)
class DueDecision:
    """What the scheduler should do at `now`."""

    run_for: datetime | None
    """The scheduled time a run starting now stands for; None when nothing is due or it is too late."""
    consumed: datetime | None
    """The newest scheduled time this decision accounts for (write it to lastScheduleTime); None: nothing new."""
    missed: int
    """Older scheduled times since the last run that are dropped (only the newest missed run is made up)."""
    too_late: bool
    """The newest due time is more than startingDeadlineSeconds in the past: it is skipped, not run."""
    next_time: datetime
    """The next scheduled time after `now`."""


def decide_due(
    schedule: CronSchedule,
    *,
    now: datetime,
    last_schedule_time: datetime | None,
    created_at: datetime,
    starting_deadline_seconds: int | None,
) -> DueDecision:
    """Decide whether a run is due, the way a CronJob controller with concurrencyPolicy Forbid would.

    Scheduled times in (lastScheduleTime or creation, now] are due; only the newest is run and older
    ones are reported as missed. If the newest is older than startingDeadlineSeconds it is skipped.
    """
    _require_aware(now, "now")
    since = last_schedule_time or created_at
    _require_aware(since, "last schedule time")
    next_time = schedule.next_after(now)
    newest = schedule.at_or_before(now)
    if newest <= since:
        return DueDecision(run_for=None, consumed=None, missed=0, too_late=False, next_time=next_time)
    missed = 0
    cursor = schedule.next_after(since)
    while cursor < newest and missed < MAX_COUNTED_MISSES:
        missed += 1
        cursor = schedule.next_after(cursor)
    late = now - newest
    if starting_deadline_seconds is not None and late > timedelta(seconds=starting_deadline_seconds):
        return DueDecision(run_for=None, consumed=newest, missed=missed, too_late=True, next_time=next_time)
    return DueDecision(run_for=newest, consumed=newest, missed=missed, too_late=False, next_time=next_time)


def is_stale(
    schedule: CronSchedule, *, now: datetime, newest_success: datetime | None, created_at: datetime
) -> bool:
    """BackupStale: the newest success (or, with none, the policy itself) is older than two intervals."""
    reference = newest_success or created_at
    return now - reference > 2 * schedule.interval_at(now)
