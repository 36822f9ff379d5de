"""The step state machine: given the frozen plan and the steps' progress, what happens next.

The engine calls `next_decision` on every iteration with freshly read status, so a restarted
operator takes exactly the decision the crashed one would have taken: a step found Running is
continued (its action is idempotent), a step between attempts waits for its persisted backoff time,
a destructive step waits for its approval.

Pure: `now` and the status are passed in; must not read a clock or the cluster, nor change a status
(transitions.py computes the changes, the engine persists them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from tradesense_operator.api.v1alpha1.incident import (
    IncidentPhase,
    PlannedStep,
    StepAction,
    StepState,
    StepStatus,
)

# The one definition of "finished" (handlers and the alert bridge import it). IncidentPhase is a StrEnum,
# so a raw status string such as "Failed" is found in this set as well.
TERMINAL_PHASES = frozenset({IncidentPhase.SUCCEEDED, IncidentPhase.FAILED, IncidentPhase.CANCELLED})
COMPLETED_STATES = frozenset({StepState.SUCCEEDED, StepState.SKIPPED})
FINAL_STATES = frozenset({StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED, StepState.CANCELLED,
                          StepState.WOULD_RUN})
# Read-only checks that confirm recovery; when a plan ends with a run of these after a change, the
# incident reports Verifying while they run (the runbook's "Verify recovery" section).
VERIFICATION_ACTIONS = frozenset({
    StepAction.SMOKE_TEST, StepAction.HTTP_PROBE, StepAction.ROLLOUT_STATUS, StepAction.WAIT_PODS_READY,
    StepAction.CHECK_PODS, StepAction.PG_ISREADY,
})


class InconsistentStatus(ValueError):
    """status.steps no longer mirrors status.plan (hand-edited status); the engine cannot safely continue."""


def is_terminal(phase: IncidentPhase) -> bool:
    """Succeeded, Failed and Cancelled incidents are never run again (a re-applied one does nothing)."""
    return phase in TERMINAL_PHASES


def initial_steps(plan: Sequence[PlannedStep]) -> list[StepStatus]:
    """Step statuses mirroring a freshly frozen plan: every step Pending."""
    return [StepStatus(id=step.id, action=step.action, target=step.target) for step in plan]


def verification_start(plan: Sequence[PlannedStep]) -> int:
    """Index of the first step of the trailing verification run; len(plan) when there is none.

    A plan made only of checks (diagnosis) has nothing to verify, so it never reports Verifying.
    """
    index = len(plan)
    while index > 0 and plan[index - 1].action in VERIFICATION_ACTIONS:
        index -= 1
    return len(plan) if index == 0 else index


def working_phase(plan: Sequence[PlannedStep], index: int) -> IncidentPhase:
    """Running while remediating, Verifying during the closing checks."""
    return IncidentPhase.VERIFYING if index >= verification_start(plan) else IncidentPhase.RUNNING


@dataclass(frozen=True)
class Complete:
    """Every step Succeeded or was Skipped."""


@dataclass(frozen=True)
class StepDecision:
    """A decision about one step: the one at `index` in the plan."""

    index: int


@dataclass(frozen=True)
class StepHasFailed(StepDecision):
    """A step ended Failed (its retries exhausted); the incident fails with its message."""


@dataclass(frozen=True)
class AwaitApproval(StepDecision):
    """The next step is destructive and its id is not in spec.approvals."""


@dataclass(frozen=True)
class Backoff(StepDecision):
    """The step's last attempt failed; the next one starts at `until`."""

    until: datetime


@dataclass(frozen=True)
class StartAttempt(StepDecision):
    """Start a new attempt of the step (first one, or a retry whose backoff has passed)."""


@dataclass(frozen=True)
class ContinueAttempt(StepDecision):
    """The step is Running: re-invoke its action (poll a waiting step, or resume after a crash)."""


Decision = Complete | StepHasFailed | AwaitApproval | Backoff | StartAttempt | ContinueAttempt


def check_consistent(plan: Sequence[PlannedStep], steps: Sequence[StepStatus]) -> None:
    """Raise InconsistentStatus unless steps mirror the plan id by id."""
    if [s.id for s in steps] != [p.id for p in plan]:
        raise InconsistentStatus(
            "status.steps does not match status.plan (ids differ); the status was edited by hand"
        )


def next_decision(
    plan: Sequence[PlannedStep], steps: Sequence[StepStatus], *, approvals: Collection[str], now: datetime
) -> Decision:
    """What the engine does next for a non-terminal, non-dry-run incident."""
    check_consistent(plan, steps)
    for index, (planned, step) in enumerate(zip(plan, steps, strict=True)):
        if step.state in COMPLETED_STATES:
            continue
        if step.state is StepState.FAILED:
            return StepHasFailed(index)
        if step.state is StepState.RUNNING:
            if step.next_attempt_at is None:
                return ContinueAttempt(index)
            if now < step.next_attempt_at:
                return Backoff(index, step.next_attempt_at)
            return StartAttempt(index)
        if step.state in (StepState.PENDING, StepState.AWAITING_APPROVAL):
            if planned.destructive and planned.id not in approvals:
                return AwaitApproval(index)
            return StartAttempt(index)
        raise InconsistentStatus(f"step {step.id} is {step.state.value} in an incident that is still running")
    return Complete()


def attempt_deadline_passed(planned: PlannedStep, step: StepStatus, now: datetime) -> bool:
    """True once the current attempt has run for its step's timeout (checked between polls)."""
    if step.attempt_started_at is None:
        return False
    return (now - step.attempt_started_at).total_seconds() >= planned.timeout_seconds
