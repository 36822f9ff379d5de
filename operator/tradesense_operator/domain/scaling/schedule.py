"""Schedule windows: cron-delimited periods (in an IANA time zone) during which minReplicas is raised.

A window is open when its most recent `start` firing is later than its most recent `end` firing, both
evaluated in the window's time zone at `now`. Evaluating "most recent firing" rather than tracking
transitions makes the answer a pure function of `now`: an operator restarted mid-window still sees it open,
and daylight-saving changes are croniter's and zoneinfo's job, not ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from tradesense_operator.api.v1alpha1.scaling import ScheduleWindow
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec


@dataclass(frozen=True)
class OpenWindow:
    """A window that is open now, with the time it opened."""

    name: str
    min_replicas: int
    opened_at: datetime


def zone(name: str, field: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name; InvalidScalingSpec naming `field` otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidScalingSpec(field, f"unknown IANA time zone {name!r}") from exc


def check_cron(expression: str, field: str) -> None:
    """InvalidScalingSpec naming `field` unless croniter accepts `expression`."""
    if not croniter.is_valid(expression):
        raise InvalidScalingSpec(field, f"invalid cron expression {expression!r}")


def _last_firing(expression: str, now_local: datetime) -> datetime:
    # Cron fires on minute boundaries: the latest firing <= now is the latest one strictly before the next minute.
    base = now_local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    result: datetime = croniter(expression, base).get_prev(datetime)
    return result


def open_window(window: ScheduleWindow, now: datetime, index: int = 0) -> OpenWindow | None:
    """The window if it is open at `now`, else None."""
    tz = zone(window.time_zone, f"spec.schedules[{index}].timeZone")
    check_cron(window.start, f"spec.schedules[{index}].start")
    check_cron(window.end, f"spec.schedules[{index}].end")
    local = now.astimezone(tz)
    opened = _last_firing(window.start, local)
    closed = _last_firing(window.end, local)
    if opened > closed:
        return OpenWindow(name=window.name, min_replicas=window.min_replicas, opened_at=opened)
    return None


def schedule_floor(windows: Sequence[ScheduleWindow], now: datetime) -> OpenWindow | None:
    """The open window with the highest minReplicas at `now` (first listed wins ties), or None."""
    best: OpenWindow | None = None
    for index, window in enumerate(windows):
        found = open_window(window, now, index)
        if found is not None and (best is None or found.min_replicas > best.min_replicas):
            best = found
    return best
