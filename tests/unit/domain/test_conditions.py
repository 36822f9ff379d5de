"""Conditions follow the Kubernetes convention: lastTransitionTime moves only when the status flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradesense_operator.api.v1alpha1.common import ConditionStatus
from tradesense_operator.domain.conditions import get_condition, is_true, set_condition

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def test_same_status_keeps_the_transition_time_but_updates_reason_and_message() -> None:
    first = set_condition([], type_="Ready", status=False, reason="Running", message="step 1", now=T0)
    later = set_condition(first, type_="Ready", status=False, reason="AwaitingApproval", message="step 2",
                          now=T0 + timedelta(minutes=5), observed_generation=2)
    cond = get_condition(later, "Ready")
    assert cond is not None
    assert cond.last_transition_time == T0
    assert (cond.reason, cond.message, cond.observed_generation) == ("AwaitingApproval", "step 2", 2)


def test_a_flip_moves_the_transition_time_and_keeps_the_order_of_others() -> None:
    conditions = set_condition([], type_="Progressing", status=True, reason="Running", message="", now=T0)
    conditions = set_condition(conditions, type_="Ready", status=False, reason="Running", message="", now=T0)
    flipped = set_condition(conditions, type_="Ready", status=ConditionStatus.TRUE, reason="Succeeded", message="",
                            now=T0 + timedelta(minutes=1))
    assert [c.type for c in flipped] == ["Progressing", "Ready"]
    assert flipped[1].last_transition_time == T0 + timedelta(minutes=1)
    assert is_true(flipped, "Ready")
    assert not is_true(flipped, "Escalated")
