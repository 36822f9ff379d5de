"""approve/cancel/retry: the one patch each sends (with its resourceVersion precondition) or the refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.unit.console.bodies import incident, slow_queries, step

from tradesense_operator.console.actions import Refused, approve_patch, cancel_patch, retry_refusal

NOW = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def test_approve_adds_to_the_existing_approvals_with_a_precondition() -> None:
    body = slow_queries(approvals=["earlier"])

    assert approve_patch(body, ["create-index"]) == {
        "metadata": {"resourceVersion": "42"}, "spec": {"approvals": ["earlier", "create-index"]}}


def test_a_destructive_step_not_reached_yet_may_be_approved_ahead() -> None:
    body = incident(steps=[step("restore", "backup-restore", "Pending", destructive=True)])

    assert approve_patch(body, ["restore", "restore"])["spec"]["approvals"] == ["restore"]


@pytest.mark.parametrize(("body", "steps", "message"), [
    (slow_queries(), ["create-idx"],
     "tsi/db-slow has no step 'create-idx' (steps: slow-queries, missing-indexes, create-index, analyze)"),
    (slow_queries(), ["analyze"], "step analyze of tsi/db-slow is not waiting for approval: it needs no approval"),
    (slow_queries(), ["create-index", "slow-queries"],
     "step slow-queries of tsi/db-slow is not waiting for approval: it needs no approval"),
    (slow_queries(approvals=["create-index"]), ["create-index"], "step create-index of tsi/db-slow is already approved"),
    (incident(steps=[step("restore", "backup-restore", "Succeeded", destructive=True)]), ["restore"],
     "step restore of tsi/db-slow is not waiting for approval: it is Succeeded"),
    (slow_queries(phase="Succeeded"), ["create-index"],
     "tsi/db-slow is Succeeded: a finished incident takes no more actions"),
    (slow_queries(phase="Cancelled"), ["create-index"],
     "tsi/db-slow is Cancelled: a finished incident takes no more actions"),
    (slow_queries(cancel=True), ["create-index"],
     "tsi/db-slow is being cancelled: approving a step would not run it"),
    (incident(steps=[]), ["x"], "tsi/db-slow has no step 'x' (steps: none: the plan is not resolved yet)"),
    (slow_queries(), [], "name at least one step to approve"),
])
def test_approve_refusals(body: dict[str, object], steps: list[str], message: str) -> None:
    with pytest.raises(Refused) as refused:
        approve_patch(body, steps)
    assert str(refused.value) == message


def test_cancel_patch_and_refusals() -> None:
    assert cancel_patch(slow_queries()) == {"metadata": {"resourceVersion": "42"}, "spec": {"cancel": True}}
    with pytest.raises(Refused, match=r"^tsi/db-slow is already being cancelled$"):
        cancel_patch(slow_queries(cancel=True))
    with pytest.raises(Refused, match=r"^tsi/db-slow is Failed: a finished incident takes no more actions$"):
        cancel_patch(slow_queries(phase="Failed"))


@pytest.mark.parametrize(("body", "message"), [
    (incident(steps=[step("probe", "http-probe", "Running", attempts=1, nextAttemptAt="2026-03-01T10:16:00Z")]),
     "step probe is already retried by the engine: attempt 2/3 starts in 1m"),
    (incident(steps=[step("probe", "http-probe", "Succeeded", attempts=1)]),
     ("step probe is Succeeded (1/3 attempts): the engine retries failed attempts itself and has no spec field to "
     "request one")),
    (incident(phase="Failed", steps=[step("probe", "http-probe", "Failed", attempts=3)]),
     "tsi/db-slow is Failed: a finished incident takes no more actions; to run its steps again, create a new incident"),
    (incident(steps=[step("probe", "http-probe")]), "tsi/db-slow has no step 'nope' (steps: probe)"),
])
def test_retry_explains_the_engines_schedule(body: dict[str, object], message: str) -> None:
    step_id = "nope" if "nope" in message else "probe"
    assert str(retry_refusal(body, step_id, now=NOW)) == message
