"""Spec validation errors name the field as written in the manifest."""

import pytest
from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.domain.incident.spec_errors import spec_problems, wire_path


@pytest.mark.parametrize(
    ("prefix", "loc", "expected"),
    [
        ("spec", (), "spec"),
        ("spec", ("parameters", "replicas"), "spec.parameters.replicas"),
        ("spec", ("steps", 0, "id"), "spec.steps[0].id"),
        ("", ("spec", "severity"), "spec.severity"),
        ("", (), "(document)"),
    ],
)
def test_wire_path(prefix: str, loc: tuple[int | str, ...], expected: str) -> None:
    assert wire_path(prefix, loc) == expected


def _problems(body: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        TradeSenseIncidentSpec.model_validate(body)
    return spec_problems(caught.value)


def test_field_errors_use_camel_case_wire_names() -> None:
    problems = _problems({"runbook": "high-cpu", "parameters": {"replicas": -1, "memoryLimit": "lots"}})
    assert [path for path, _ in problems] == ["spec.parameters.replicas", "spec.parameters.memoryLimit"]


def test_model_rules_report_without_pydantic_prefix() -> None:
    [(path, message)] = _problems({"runbook": "custom"})
    assert path == "spec"
    assert message.startswith("steps must be set")


def test_list_items_are_indexed() -> None:
    problems = _problems({"runbook": "custom", "steps": [{"id": "ok", "action": "scale"}, {"id": "x", "action": "nope"}]})
    assert problems[0][0] == "spec.steps[1].action"
