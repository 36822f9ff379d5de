"""Pure rules of the scaling service: which of two policies on one Deployment acts, when a policy is due,
and how a pydantic error becomes a field path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicySpec
from tradesense_operator.services.scaling.conflicts import conflicting_policy
from tradesense_operator.services.scaling.evaluation import field_of, next_evaluation

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def sp(name: str, created: str, target: str = "backend") -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"targetRef": {"name": target}}}


@pytest.mark.parametrize(
    ("me", "others", "expected"),
    [
        (sp("b", "2026-01-05T10:00:00Z"), [sp("a", "2026-01-05T09:00:00Z")], "a"),      # older one wins
        (sp("a", "2026-01-05T09:00:00Z"), [sp("b", "2026-01-05T10:00:00Z")], None),
        (sp("b", "2026-01-05T09:00:00Z"), [sp("a", "2026-01-05T09:00:00Z")], "a"),      # same second: by name
        (sp("b", "2026-01-05T10:00:00Z"), [sp("a", "2026-01-05T09:00:00Z", "frontend")], None),  # other target
        (sp("a", "2026-01-05T09:00:00Z"), [], None),
    ],
)
def test_the_oldest_policy_on_a_deployment_acts(
    me: dict[str, Any], others: list[dict[str, Any]], expected: str | None
) -> None:
    assert conflicting_policy(me, [*others, me], "backend") == expected


def body(interval: int = 30, last: datetime | None = None, *, generation: int = 1, observed: int | None = 1,
         shown: str | None = None, paused: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if last is not None:
        status["lastEvaluationTime"] = last.strftime("%Y-%m-%dT%H:%M:%SZ")
    if observed is not None:
        status["observedGeneration"] = observed
    if shown is not None:
        status["conditions"] = [{"type": "AbleToScale", "status": "False", "reason": shown}]
    annotations = {"ops.tradesense.io/paused": "true"} if paused else {}
    return {"metadata": {"generation": generation, "annotations": annotations},
            "spec": {"pollingIntervalSeconds": interval}, "status": status}


NOW = T0 + timedelta(seconds=7)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (body(observed=None), NOW),                                          # never evaluated
        (body(last=T0), T0 + timedelta(seconds=30)),
        (body(interval=5, last=T0), T0 + timedelta(seconds=5)),
        (body(last=T0, generation=2, observed=1), NOW),                      # spec changed
        (body(last=T0, paused=True), NOW),                                   # paused, status does not say so yet
        (body(last=T0, paused=True, shown="Paused"), None),                  # paused and shown: never again
        (body(last=T0, paused=True, shown="Paused", generation=2), NOW),     # ... until the spec changes
        (body(last=T0, shown="Paused"), NOW),                                # resumed
        (body(last=T0, shown="InvalidSpec"), None),                          # only an edit can fix the spec
        (body(last=T0, shown="FailedGetScale"), T0 + timedelta(seconds=30)),  # the Deployment may appear: poll
    ],
)
def test_due_after_the_polling_interval_never_while_paused(policy: dict[str, Any], expected: datetime | None) -> None:
    assert next_evaluation(policy, NOW) == expected


def test_validation_errors_become_json_paths() -> None:
    with pytest.raises(ValidationError) as err:
        ScalingPolicySpec.model_validate({"targetRef": {"name": "b"}, "maxReplicas": 3,
                                          "metrics": [{"name": "m", "query": "x", "target": {"value": -1}}]})
    assert field_of(err.value) == "metrics[0].target.value"
