"""Kubernetes-convention conditions: set one without losing lastTransitionTime when nothing changed.

Pure list edits with the time passed in; must not read a clock or write status.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tradesense_operator.api.v1alpha1.common import Condition, ConditionStatus


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return a new list with `type_` set; lastTransitionTime moves only when the status flips."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = get_condition(conditions, type_)
    transition = previous.last_transition_time if previous is not None and previous.status == status else now
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if cond.type == type_ else cond for cond in conditions]


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of that type, if any."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    """Whether the condition exists and is True."""
    cond = get_condition(conditions, type_)
    return cond is not None and cond.status == ConditionStatus.TRUE
