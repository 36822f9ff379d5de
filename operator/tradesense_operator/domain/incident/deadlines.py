"""Response deadlines from the runbook's severity table (P1 15 min, P2 1 h, P3 4 h, P4 24 h), and approval deadlines.

Pure arithmetic on the times it is given; must not read a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, Severity

RESPONSE_TIMES: Mapping[Severity, timedelta] = MappingProxyType({
    Severity.P1: timedelta(minutes=15),
    Severity.P2: timedelta(hours=1),
    Severity.P3: timedelta(hours=4),
    Severity.P4: timedelta(hours=24),
})


def respond_by(created: datetime, severity: Severity) -> datetime:
    """When the incident must be resolved before a human is paged: creation + the severity's response time."""
    if created.tzinfo is None:
        raise ValueError("creation time must be timezone-aware")
    return created + RESPONSE_TIMES[severity]


def is_overdue(now: datetime, deadline: datetime | None, phase: IncidentPhase) -> bool:
    """True once the deadline has passed without success; a Succeeded or Cancelled incident is never overdue."""
    if deadline is None or phase in (IncidentPhase.SUCCEEDED, IncidentPhase.CANCELLED):
        return False
    return now > deadline


def approval_deadline(
    awaiting_since: datetime | None, respond_by_: datetime | None, timeout_seconds: int | None
) -> datetime | None:
    """Until when a destructive step waits for its approval: awaitingSince + the timeout, else respondBy."""
    if timeout_seconds is not None and awaiting_since is not None:
        return awaiting_since + timedelta(seconds=timeout_seconds)
    return respond_by_
