"""Pure updates of step statuses: every change the engine persists is computed here.

Each function returns a new StepStatus (models are treated as values), which keeps the engine's
"persist before, persist after" checkpoints easy to read and these rules table-testable.

Must not persist anything or read a clock: `now` comes in, the engine writes what comes out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepState, StepStatus
from tradesense_operator.domain.incident.machine import FINAL_STATES
from tradesense_operator.domain.incident.retry import next_attempt_at

MESSAGE_LIMIT = 4096  # status.steps[].message maxLength in the CRD


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """Fit a message into a status field, marking the cut."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def start_attempt(step: StepStatus, *, now: datetime) -> StepStatus:
    """Running, one more attempt, timed from now (persisted BEFORE the action is invoked)."""
    return step.model_copy(update={
        "state": StepState.RUNNING,
        "attempts": step.attempts + 1,
        "started_at": step.started_at or now,
        "attempt_started_at": now,
        "next_attempt_at": None,
        "finished_at": None,
    })


def waiting(step: StepStatus, *, message: str, evidence: Mapping[str, str]) -> StepStatus:
    """Still Running: the action reported it is not finished yet."""
    return step.model_copy(update={"message": clip(message), "evidence": {**step.evidence, **evidence}})


def finish(
    step: StepStatus, *, state: StepState, message: str, evidence: Mapping[str, str], now: datetime
) -> StepStatus:
    """A final state with the action's message and evidence."""
    if state not in FINAL_STATES:
        raise ValueError(f"{state} is not a final step state")
    return step.model_copy(update={
        "state": state,
        "message": clip(message),
        "evidence": {**step.evidence, **evidence},
        "finished_at": now,
        "next_attempt_at": None,
    })


def fail_attempt(
    step: StepStatus, planned: PlannedStep, *, reason: str, now: datetime, backoff_base: float, backoff_cap: float
) -> StepStatus:
    """After a failed attempt: schedule the next one with backoff, or fail the step when retries are used up."""
    retry_at = next_attempt_at(
        attempts=step.attempts, retries=planned.retries, now=now, base=backoff_base, cap=backoff_cap
    )
    if retry_at is None:
        total = planned.retries + 1
        return finish(
            step, state=StepState.FAILED, message=f"failed after {step.attempts}/{total} attempts: {reason}",
            evidence={}, now=now,
        )
    return step.model_copy(update={
        "state": StepState.RUNNING,
        "next_attempt_at": retry_at,
        "message": clip(
            f"attempt {step.attempts}/{planned.retries + 1} failed: {reason}; "
            f"retrying at {retry_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        ),
    })


def awaiting_approval(step: StepStatus, planned: PlannedStep, *, now: datetime) -> StepStatus:
    """Parked until its id appears in spec.approvals; `awaitingSince` is set once, when the wait begins."""
    return step.model_copy(update={
        "state": StepState.AWAITING_APPROVAL,
        "message": f"destructive step: add {planned.id!r} to spec.approvals to run it",
        "awaiting_since": step.awaiting_since or now,
    })


def would_run(step: StepStatus, *, description: str, destructive: bool, now: datetime) -> StepStatus:
    """Dry run: what the step would change, marking the ones that would need approval."""
    prefix = "needs approval; " if destructive else ""
    return finish(step, state=StepState.WOULD_RUN, message=f"{prefix}{description}", evidence={}, now=now)


def cancel_unfinished(steps: Sequence[StepStatus], *, message: str, now: datetime) -> list[StepStatus]:
    """Every step not in a final state becomes Cancelled (spec.cancel, or steps after a failure)."""
    return [
        step if step.state in FINAL_STATES
        else finish(step, state=StepState.CANCELLED, message=message, evidence={}, now=now)
        for step in steps
    ]
