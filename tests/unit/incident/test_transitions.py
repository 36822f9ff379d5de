"""Pure step status updates: attempts, retries with backoff, final states, cancellation."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction, StepState, StepStatus
from tradesense_operator.domain.incident.transitions import (
    awaiting_approval,
    cancel_unfinished,
    clip,
    fail_attempt,
    finish,
    start_attempt,
    waiting,
    would_run,
)

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
PLANNED = PlannedStep(id="scale", action=StepAction.SCALE, target="deployment/backend", retries=2)


def _step(**update: object) -> StepStatus:
    return StepStatus(id="scale", action=StepAction.SCALE, target="deployment/backend").model_copy(update=update)


def test_start_attempt_counts_and_keeps_first_start() -> None:
    first = start_attempt(_step(), now=NOW)
    assert (first.state, first.attempts, first.started_at, first.attempt_started_at) == (
        StepState.RUNNING, 1, NOW, NOW)
    later = NOW + timedelta(seconds=30)
    second = start_attempt(first.model_copy(update={"next_attempt_at": later}), now=later)
    assert (second.attempts, second.started_at, second.attempt_started_at, second.next_attempt_at) == (
        2, NOW, later, None)


def test_failed_attempt_schedules_a_retry_with_backoff() -> None:
    step = start_attempt(_step(), now=NOW)
    failed = fail_attempt(step, PLANNED, reason="API said no", now=NOW, backoff_base=2.0, backoff_cap=60.0)
    assert failed.state is StepState.RUNNING
    assert failed.next_attempt_at == NOW + timedelta(seconds=2)
    assert "attempt 1/3 failed: API said no" in failed.message


def test_step_fails_when_retries_are_used_up() -> None:
    step = _step(state=StepState.RUNNING, attempts=3)
    failed = fail_attempt(step, PLANNED, reason="still no", now=NOW, backoff_base=2.0, backoff_cap=60.0)
    assert failed.state is StepState.FAILED
    assert failed.finished_at == NOW
    assert failed.message == "failed after 3/3 attempts: still no"


def test_waiting_keeps_running_and_merges_evidence() -> None:
    step = _step(state=StepState.RUNNING, evidence={"a": "1"})
    updated = waiting(step, message="2/3 pods ready", evidence={"ready": "2"})
    assert updated.state is StepState.RUNNING
    assert updated.evidence == {"a": "1", "ready": "2"}


def test_finish_only_into_final_states() -> None:
    done = finish(_step(), state=StepState.SUCCEEDED, message="scaled", evidence={}, now=NOW)
    assert done.finished_at == NOW
    with pytest.raises(ValueError, match="final"):
        finish(_step(), state=StepState.RUNNING, message="", evidence={}, now=NOW)


def test_awaiting_approval_tells_how_to_approve() -> None:
    assert "'scale' to spec.approvals" in awaiting_approval(_step(), PLANNED, now=NOW).message


def test_awaiting_since_is_set_when_the_wait_begins_and_kept() -> None:
    first = awaiting_approval(_step(), PLANNED, now=NOW)
    assert first.awaiting_since == NOW
    assert awaiting_approval(first, PLANNED, now=NOW + timedelta(hours=1)).awaiting_since == NOW


def test_would_run_marks_steps_needing_approval() -> None:
    assert would_run(_step(), description="backend replicas 3 → 5", destructive=True, now=NOW).message == (
        "needs approval; backend replicas 3 → 5")
    assert would_run(_step(), description="x", destructive=False, now=NOW).state is StepState.WOULD_RUN


def test_cancel_unfinished_leaves_final_steps_alone() -> None:
    steps = [
        _step(state=StepState.SUCCEEDED),
        _step(id="b", state=StepState.RUNNING),
        _step(id="c", state=StepState.AWAITING_APPROVAL),
        _step(id="d"),
    ]
    cancelled = cancel_unfinished(steps, message="cancelled", now=NOW)
    assert [s.state for s in cancelled] == [StepState.SUCCEEDED] + [StepState.CANCELLED] * 3


def test_clip_marks_the_cut() -> None:
    assert clip("x" * 10, 5) == "xxxx…"
    assert clip("short", 5) == "short"
