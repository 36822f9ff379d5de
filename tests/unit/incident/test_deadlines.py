"""respondBy from the runbook's severity table, and when an incident counts as overdue."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, Severity
from tradesense_operator.domain.incident.deadlines import is_overdue, respond_by

CREATED = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        (Severity.P1, CREATED + timedelta(minutes=15)),
        (Severity.P2, CREATED + timedelta(hours=1)),
        (Severity.P3, CREATED + timedelta(hours=4)),
        (Severity.P4, CREATED + timedelta(hours=24)),
    ],
)
def test_respond_by_follows_the_runbook_severity_table(severity: Severity, expected: datetime) -> None:
    assert respond_by(CREATED, severity) == expected


def test_respond_by_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        respond_by(datetime(2026, 1, 5, 14, 30), Severity.P1)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("now_offset", "phase", "overdue"),
    [
        (timedelta(minutes=14), IncidentPhase.RUNNING, False),
        (timedelta(minutes=15), IncidentPhase.RUNNING, False),   # exactly at the deadline: not yet
        (timedelta(minutes=16), IncidentPhase.RUNNING, True),
        (timedelta(minutes=16), IncidentPhase.AWAITING_APPROVAL, True),
        (timedelta(minutes=16), IncidentPhase.FAILED, True),
        (timedelta(minutes=16), IncidentPhase.SUCCEEDED, False),
        (timedelta(minutes=16), IncidentPhase.CANCELLED, False),
    ],
)
def test_overdue_only_after_the_deadline_and_before_success(
    now_offset: timedelta, phase: IncidentPhase, overdue: bool
) -> None:
    deadline = respond_by(CREATED, Severity.P1)
    assert is_overdue(CREATED + now_offset, deadline, phase) is overdue


def test_no_deadline_is_never_overdue() -> None:
    assert not is_overdue(CREATED, None, IncidentPhase.RUNNING)
