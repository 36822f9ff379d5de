"""The CRDs' CEL rules, evaluated by the emulated API server's admission, agree with the models.

Covers: every cross-field violation in test_models.CASES is refused in-cluster (422 naming the rule's
message) just as pydantic refuses it; every sample is admitted (so no rule rejects valid input once
defaults are applied); the incident's transition rules let approvals and cancel change and refuse any
other spec change, matching `kinds.immutable_spec_changes`. The evaluator is the sandbox's (the same
one the integration tier uses); a rule it cannot parse fails CRD installation, so this also proves the
emulator supports every rule shape the generator emits.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.crd_schema import load_crds
from tests.unit.api.cel_cases import CASES, Case

from tradesense_operator.api.v1alpha1.kinds import INCIDENT, immutable_spec_changes
from tradesense_sandbox.kubeapi.errors import ApiError
from tradesense_sandbox.kubeapi.validation import SchemaValidator, validator_for_version

SAMPLES = sorted(path for path in (Path(__file__).resolve().parents[3] / "deploy" / "samples").glob("*.yaml")
                 if yaml.safe_load(path.read_text(encoding="utf-8"))["apiVersion"].startswith("ops.tradesense.io/"))


@pytest.fixture(scope="module")
def validators() -> dict[str, SchemaValidator]:
    built = {}
    for kind, crd in load_crds().items():
        (version,) = crd["spec"]["versions"]
        validator = validator_for_version(kind, crd["spec"]["group"], version)
        assert validator is not None
        built[kind] = validator
    return built


def _object(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "ops.tradesense.io/v1alpha1", "kind": kind,
            "metadata": {"name": "example", "namespace": "tradesense"}, "spec": copy.deepcopy(spec)}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_crd_refuses_what_the_model_refuses(validators: dict[str, SchemaValidator], case: Case) -> None:
    with pytest.raises(ApiError) as refused:
        validators[case.kind].admit(_object(case.kind, case.data), None)
    assert refused.value.code == 422
    assert case.message in refused.value.message


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_every_sample_is_admitted(validators: dict[str, SchemaValidator], path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    admitted = validators[document["kind"]].admit(document, None)
    assert admitted["spec"].keys() >= document["spec"].keys()  # defaulting only adds


def _incident(validators: dict[str, SchemaValidator]) -> dict[str, Any]:
    body = yaml.safe_load((SAMPLES[0].parent / "incident-site-down.yaml").read_text(encoding="utf-8"))
    stored: dict[str, Any] = validators["TradeSenseIncident"].admit(body, None)
    return stored


@pytest.mark.parametrize("change", [{"approvals": ["dr-failover"]}, {"cancel": True}], ids=["approvals", "cancel"])
def test_approvals_and_cancel_may_change_after_creation(validators: dict[str, SchemaValidator],
                                                        change: dict[str, Any]) -> None:
    old = _incident(validators)
    new = copy.deepcopy(old)
    new["spec"].update(change)
    validators["TradeSenseIncident"].admit(new, old)
    assert immutable_spec_changes(INCIDENT, old["spec"], new["spec"]) == []


@pytest.mark.parametrize(("field", "value"), [
    ("runbook", "high-cpu"), ("severity", "P4"), ("dryRun", True),
    ("target", {"namespace": "elsewhere"}),
    ("source", {"kind": "gitops"}),
])
def test_other_spec_changes_are_refused(validators: dict[str, SchemaValidator], field: str, value: object) -> None:
    old = _incident(validators)
    new = copy.deepcopy(old)
    new["spec"][field] = value
    with pytest.raises(ApiError) as refused:
        validators["TradeSenseIncident"].admit(new, old)
    assert f"spec.{field} is immutable" in refused.value.message
    assert immutable_spec_changes(INCIDENT, old["spec"], new["spec"]) == [field]


def test_removing_an_optional_field_is_a_change(validators: dict[str, SchemaValidator]) -> None:
    old = _incident(validators)
    new = copy.deepcopy(old)
    del new["spec"]["notification"]
    with pytest.raises(ApiError, match=r"spec\.notification is immutable"):
        validators["TradeSenseIncident"].admit(new, old)
    assert immutable_spec_changes(INCIDENT, old["spec"], new["spec"]) == ["notification"]
