"""The pure decisions inside the actions: `kubectl rollout status` semantics, resource quantities compared by
value, log-line redaction of credentials, and typed step parameters that name what is wrong."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradesense_operator.api.v1alpha1.incident import PlannedStep, StepAction
from tradesense_operator.services.step_adapters.base import StepFailed
from tradesense_operator.services.step_adapters.logscan import redact_line
from tradesense_operator.services.step_adapters.step_inputs import param_int, param_str, require_str, target_name
from tradesense_operator.services.step_adapters.workloads import quantity, rollout_progress


def deployment(generation: int = 2, observed: int = 2, wanted: int = 3, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "backend", "generation": generation}, "spec": {"replicas": wanted},
            "status": {"observedGeneration": observed, **status}}


@pytest.mark.parametrize(("body", "done", "message"), [
    (deployment(3, 2), False, "waiting for deployment/backend spec update to be observed"),
    (deployment(updatedReplicas=1, replicas=3, availableReplicas=3), False, "1 of 3 updated replicas are available"),
    (deployment(updatedReplicas=3, replicas=5, availableReplicas=3), False, "2 old replicas are pending termination"),
    (deployment(updatedReplicas=3, replicas=3, availableReplicas=2), False, "2 of 3 updated replicas are available"),
    (deployment(updatedReplicas=3, replicas=3, availableReplicas=3), True, "successfully rolled out (3/3 available)"),
    (deployment(wanted=0), True, "successfully rolled out (0/0 available)"),
])
def test_rollout_progress_follows_kubectl_rollout_status(body: dict[str, Any], done: bool, message: str) -> None:
    complete, text = rollout_progress(body)
    assert complete is done
    assert message in text


def test_stalled_rollout_fails_the_step() -> None:
    body = deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "stuck"}])
    with pytest.raises(StepFailed, match="exceeded its progress deadline: stuck"):
        rollout_progress(body)


@pytest.mark.parametrize(("a", "b"), [("4Gi", "4096Mi"), ("1", "1000m"), ("2G", "2000M"), ("0.5", "500m"),
                                      ("1Ki", "1024")])
def test_quantities_compare_by_value(a: str, b: str) -> None:
    assert quantity(a) == quantity(b)


def test_quantity_rejects_garbage() -> None:
    assert quantity("3Gi") == Decimal(3 * 2**30)
    with pytest.raises(StepFailed, match="not a resource quantity"):
        quantity("lots")


@pytest.mark.parametrize(("line", "kept", "hidden"), [
    ("WARNING auth token rejected status=401 token=abc.def.ghi", "token=***", "abc.def.ghi"),
    ("auth header Authorization: Bearer s3cr3t-value", "Bearer ***", "s3cr3t-value"),
    ("login failed password='hunter2' status=401", "password=***", "hunter2"),
    ("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_part-x status=401", "got *** status=401", "eyJhbGci"),
    ("reset link key " + "A" * 40 + " status=403", "status=403", "A" * 40),
    ("WARNING auth token rejected status=401 reason=expired", "token rejected status=401 reason=expired", "***"),
])
def test_redaction_hides_credentials_and_keeps_the_line_readable(line: str, kept: str, hidden: str) -> None:
    redacted = redact_line(line)
    assert kept in redacted
    assert hidden not in redacted


def test_long_lines_are_shortened() -> None:
    assert len(redact_line("x " * 500)) == 240


def step(target: str = "deployment/backend", **params: Any) -> PlannedStep:
    return PlannedStep(id="s", action=StepAction.SCALE, target=target, params=params)


def test_step_inputs_are_typed_and_name_the_problem() -> None:
    assert target_name(step(), "deployment") == "backend"
    with pytest.raises(StepFailed, match="target 'secret/x' is not a deployment"):
        target_name(step("secret/x"), "deployment")
    assert param_int(step(replicas=5), "replicas") == 5
    with pytest.raises(StepFailed, match="parameter replicas must be an integer, got True"):
        param_int(step(replicas=True), "replicas")
    assert param_str(step(), "container", "backend") == "backend"
    with pytest.raises(StepFailed, match="parameter name is required"):
        require_str(step(), "name")
