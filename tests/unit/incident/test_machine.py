"""The step state machine: which step runs next, approval gating, backoff, resume after a crash."""

from datetime import UTC, datetime, timedelta

import pytest

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, PlannedStep, StepAction, StepState, StepStatus
from tradesense_operator.domain.incident.machine import (
    AwaitApproval,
    Backoff,
    Complete,
    ContinueAttempt,
    InconsistentStatus,
    StartAttempt,
    StepHasFailed,
    attempt_deadline_passed,
    initial_steps,
    is_terminal,
    next_decision,
    verification_start,
    working_phase,
)

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)

PLAN = [
    PlannedStep(id="check", action=StepAction.CHECK_PODS, target="namespace/tradesense"),
    PlannedStep(id="restart", action=StepAction.ROLLOUT_RESTART, target="deployment/backend"),
    PlannedStep(id="failover", action=StepAction.DR_FAILOVER, destructive=True),
    PlannedStep(id="smoke", action=StepAction.SMOKE_TEST),
]


def _steps(*states: StepState, **overrides: dict[str, object]) -> list[StepStatus]:
    steps = initial_steps(PLAN)
    result = []
    for step, state in zip(steps, states, strict=False):
        result.append(step.model_copy(update={"state": state, **overrides.get(step.id, {})}))
    return result + steps[len(result):]


@pytest.mark.parametrize(
    ("states", "approvals", "overrides", "expected"),
    [
        ((), [], {}, StartAttempt(0)),
        ((StepState.SUCCEEDED,), [], {}, StartAttempt(1)),
        ((StepState.SKIPPED, StepState.SUCCEEDED), [], {}, AwaitApproval(2)),
        ((StepState.SUCCEEDED, StepState.SUCCEEDED, StepState.AWAITING_APPROVAL), [], {}, AwaitApproval(2)),
        ((StepState.SUCCEEDED, StepState.SUCCEEDED, StepState.AWAITING_APPROVAL), ["failover"], {}, StartAttempt(2)),
        ((StepState.SUCCEEDED, StepState.SUCCEEDED), ["failover"], {}, StartAttempt(2)),
        ((StepState.SUCCEEDED, StepState.RUNNING), [], {}, ContinueAttempt(1)),
        ((StepState.SUCCEEDED, StepState.RUNNING), [], {"restart": {"next_attempt_at": NOW + timedelta(seconds=5)}},
         Backoff(1, NOW + timedelta(seconds=5))),
        ((StepState.SUCCEEDED, StepState.RUNNING), [], {"restart": {"next_attempt_at": NOW}}, StartAttempt(1)),
        ((StepState.SUCCEEDED, StepState.FAILED), [], {}, StepHasFailed(1)),
        ((StepState.SUCCEEDED,) * 4, [], {}, Complete()),
        ((StepState.SUCCEEDED, StepState.SKIPPED, StepState.SUCCEEDED, StepState.SKIPPED), [], {}, Complete()),
    ],
)
def test_next_decision(
    states: tuple[StepState, ...], approvals: list[str], overrides: dict[str, dict[str, object]], expected: object
) -> None:
    assert next_decision(PLAN, _steps(*states, **overrides), approvals=approvals, now=NOW) == expected


def test_approval_of_an_unrelated_step_does_not_unblock() -> None:
    steps = _steps(StepState.SUCCEEDED, StepState.SUCCEEDED)
    assert next_decision(PLAN, steps, approvals=["restart", "smoke"], now=NOW) == AwaitApproval(2)


@pytest.mark.parametrize("state", [StepState.CANCELLED, StepState.WOULD_RUN])
def test_final_states_of_finished_incidents_are_inconsistent_in_a_running_one(state: StepState) -> None:
    with pytest.raises(InconsistentStatus, match="restart"):
        next_decision(PLAN, _steps(StepState.SUCCEEDED, state), approvals=[], now=NOW)


def test_hand_edited_steps_are_detected() -> None:
    with pytest.raises(InconsistentStatus, match="plan"):
        next_decision(PLAN, initial_steps(PLAN)[:2], approvals=[], now=NOW)


@pytest.mark.parametrize(
    ("phase", "terminal"),
    [(p, p in (IncidentPhase.SUCCEEDED, IncidentPhase.FAILED, IncidentPhase.CANCELLED)) for p in IncidentPhase],
)
def test_terminal_phases(phase: IncidentPhase, terminal: bool) -> None:
    assert is_terminal(phase) is terminal


@pytest.mark.parametrize(
    ("actions", "start"),
    [
        ([StepAction.SCALE, StepAction.SMOKE_TEST], 1),
        ([StepAction.SCALE, StepAction.ROLLOUT_STATUS, StepAction.SMOKE_TEST], 1),
        ([StepAction.HTTP_PROBE, StepAction.SCALE, StepAction.SMOKE_TEST], 2),
        ([StepAction.HTTP_PROBE, StepAction.CHECK_PODS], 2),    # diagnosis only: nothing to verify
        ([StepAction.SCALE], 1),
        ([], 0),
    ],
)
def test_verification_is_the_trailing_run_of_checks_after_a_change(actions: list[StepAction], start: int) -> None:
    plan = [PlannedStep(id=f"s{i}", action=a) for i, a in enumerate(actions)]
    assert verification_start(plan) == start


def test_working_phase() -> None:
    assert working_phase(PLAN, 2) is IncidentPhase.RUNNING
    assert working_phase(PLAN, 3) is IncidentPhase.VERIFYING


@pytest.mark.parametrize(("elapsed", "passed"), [(None, False), (299, False), (300, True), (301, True)])
def test_attempt_deadline(elapsed: int | None, passed: bool) -> None:
    planned = PlannedStep(id="w", action=StepAction.ROLLOUT_STATUS, timeout_seconds=300)
    started = None if elapsed is None else NOW - timedelta(seconds=elapsed)
    step = StepStatus(id="w", action=StepAction.ROLLOUT_STATUS, state=StepState.RUNNING, attempt_started_at=started)
    assert attempt_deadline_passed(planned, step, NOW) is passed
