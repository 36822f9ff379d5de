"""What `approve`, `cancel` and `retry` send: one merge patch each, or a one-line refusal.

The engine reads approvals from `spec.approvals` and cancellation from `spec.cancel` (the only mutable
spec fields); a retry has no spec field: failed attempts are retried by the engine itself with backoff,
and a Failed incident is terminal. Each patch carries the resourceVersion it was computed from, so a
concurrent change (another approval, the operator finishing) makes the API server answer 409 instead of
this command overwriting it. Pure: the caller fetched the body and sends the patch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tradesense_operator.api.v1alpha1.incident import StepState
from tradesense_operator.console.view import IncidentView, format_duration, incident_view

FIELD_MANAGER = "kubectl-tradesense"


class Refused(Exception):
    """The action makes no sense for this incident; the message says why, on one line."""


def _view(body: Mapping[str, Any]) -> IncidentView:
    view = incident_view(body)
    if view.terminal:
        raise Refused(f"tsi/{view.name} is {view.phase.value}: a finished incident takes no more actions")
    return view


def _precondition(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceVersion": str((body.get("metadata") or {}).get("resourceVersion", ""))}


def approve_patch(body: Mapping[str, Any], step_ids: Sequence[str]) -> dict[str, Any]:
    """Add the steps to spec.approvals: each must be waiting for approval, or a destructive step not run yet."""
    view = _view(body)
    if not step_ids:
        raise Refused("name at least one step to approve")
    if view.spec.cancel:
        raise Refused(f"tsi/{view.name} is being cancelled: approving a step would not run it")
    for step_id in step_ids:
        step = view.step(step_id)
        if step is None:
            known = ", ".join(s.id for s in view.steps) or "none: the plan is not resolved yet"
            raise Refused(f"tsi/{view.name} has no step {step_id!r} (steps: {known})")
        if step.approved:
            raise Refused(f"step {step_id} of tsi/{view.name} is already approved")
        waiting = step.state is StepState.AWAITING_APPROVAL
        ahead = step.state is StepState.PENDING and step.planned.destructive
        if not (waiting or ahead):
            reason = "needs no approval" if not step.planned.destructive else f"is {step.state.value}"
            raise Refused(f"step {step_id} of tsi/{view.name} is not waiting for approval: it {reason}")
    approvals = [*view.spec.approvals, *dict.fromkeys(step_ids)]
    return {"metadata": _precondition(body), "spec": {"approvals": approvals}}


def cancel_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """Set spec.cancel: steps not started are cancelled, a running one finishes its attempt."""
    view = _view(body)
    if view.spec.cancel:
        raise Refused(f"tsi/{view.name} is already being cancelled")
    return {"metadata": _precondition(body), "spec": {"cancel": True}}


def retry_refusal(body: Mapping[str, Any], step_id: str, *, now: datetime) -> Refused:
    """Why a retry cannot be requested for this step: the engine retries by itself, and only then.

    Returned (not raised) so the caller always exits non-zero with the step's actual retry schedule.
    """
    try:
        view = _view(body)
    except Refused as exc:
        return Refused(f"{exc}; to run its steps again, create a new incident")
    step = view.step(step_id)
    if step is None:
        return Refused(f"tsi/{view.name} has no step {step_id!r} (steps: {', '.join(s.id for s in view.steps)})")
    allowed = step.planned.retries + 1
    retry_at = step.status.next_attempt_at
    if step.state is StepState.RUNNING and retry_at is not None and retry_at > now:
        return Refused(f"step {step_id} is already retried by the engine: attempt {step.status.attempts + 1}/{allowed}"
                       f" starts in {format_duration(retry_at - now)}")
    return Refused(f"step {step_id} is {step.state.value} ({step.status.attempts}/{allowed} attempts): the engine "
                   f"retries failed attempts itself and has no spec field to request one")
