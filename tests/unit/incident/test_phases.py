"""Phase changes keep Ready/Progressing conditions and observedGeneration in step."""

from datetime import UTC, datetime, timedelta

from tradesense_operator.api.v1alpha1.common import ConditionStatus
from tradesense_operator.api.v1alpha1.incident import IncidentPhase, TradeSenseIncidentStatus
from tradesense_operator.domain.conditions import get_condition
from tradesense_operator.domain.incident.phases import with_phase

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def test_running_is_progressing_and_not_ready() -> None:
    status = with_phase(TradeSenseIncidentStatus(), phase=IncidentPhase.RUNNING, reason="Running",
                        message="step 1/3", now=NOW, generation=1)
    assert get_condition(status.conditions, "Ready").status is ConditionStatus.FALSE  # type: ignore[union-attr]
    assert get_condition(status.conditions, "Progressing").status is ConditionStatus.TRUE  # type: ignore[union-attr]
    assert status.observed_generation == 1
    assert status.resolved_at is None


def test_waiting_phases_are_not_progressing_and_say_why() -> None:
    status = with_phase(TradeSenseIncidentStatus(), phase=IncidentPhase.BLOCKED, reason="Frozen",
                        message="frozen", now=NOW, generation=2)
    progressing = get_condition(status.conditions, "Progressing")
    assert progressing is not None
    assert (progressing.status, progressing.reason) == (ConditionStatus.FALSE, "Frozen")


def test_succeeded_is_ready_resolved_once_and_keeps_generation_when_unknown() -> None:
    first = with_phase(TradeSenseIncidentStatus(observed_generation=3), phase=IncidentPhase.SUCCEEDED,
                       reason="Succeeded", message="done", now=NOW, generation=None)
    again = with_phase(first, phase=IncidentPhase.SUCCEEDED, reason="Succeeded", message="done",
                       now=NOW + timedelta(minutes=1), generation=None)
    assert get_condition(again.conditions, "Ready").status is ConditionStatus.TRUE  # type: ignore[union-attr]
    assert again.resolved_at == NOW
    assert again.observed_generation == 3
