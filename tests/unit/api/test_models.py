"""The models enforce the CRD's cross-field (CEL) rules themselves, with the same messages.

Covers: each CEL rule has a pydantic twin that rejects the same bad input with the rule's message and
a location naming the field (so the CLI and handlers catch what the apiserver would); the incident's
immutability check in Python; and that what the operator writes (`to_api()` of spec and status)
passes the generated schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from tests.support.crd_schema import load_crds, node_at, openapi_schema, schema_errors
from tests.unit.api.cel_cases import CASES, Case, scaling_spec

from tradesense_operator.api.v1alpha1 import backup, common, incident, scaling
from tradesense_operator.api.v1alpha1.kinds import BACKUP_POLICY, INCIDENT, SCALING_POLICY, immutable_spec_changes

NOW = datetime(2026, 1, 16, 2, 0, tzinfo=UTC)


def _rule_messages(kind: str, path: str) -> list[str]:
    schema = openapi_schema(load_crds()[kind])
    return [rule["message"] for rule in node_at(schema, path).get("x-kubernetes-validations", [])]


def _error(model: type[BaseModel], data: dict[str, Any]) -> tuple[str, str]:
    """(location, message) of the single validation error."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    (error,) = caught.value.errors()
    return ".".join(str(part) for part in error["loc"]), str(error["msg"])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_pydantic_rejects_what_the_cel_rule_rejects_with_the_same_message(case: Case) -> None:
    location, text = _error(case.model, case.data)
    assert location == case.loc
    assert case.message in text
    assert case.message in _rule_messages(case.kind, case.path), "the CRD's CEL rule must carry the same message"


def test_fallback_at_the_bounds_and_matching_min_max_are_valid() -> None:
    for replicas in (3, 10):
        scaling.ScalingPolicySpec.model_validate(scaling_spec(fallback={"replicas": replicas}))
    scaling.ScalingPolicySpec.model_validate(scaling_spec(minReplicas=10))


def test_custom_incident_with_steps_is_valid_and_duplicate_step_ids_are_not() -> None:
    steps = [{"id": "restart", "action": "rollout-restart", "target": "backend"}]
    incident.TradeSenseIncidentSpec.model_validate({"runbook": "custom", "steps": steps})
    location, text = _error(incident.TradeSenseIncidentSpec, {"runbook": "custom", "steps": steps * 2})
    assert location == ""
    assert "duplicate step ids ['restart']" in text


def test_single_field_errors_name_the_field_in_camel_case() -> None:
    location, _ = _error(scaling.ScalingPolicySpec, scaling_spec(maxReplicas=0))
    assert location == "maxReplicas"


# ---- immutability (the Python twin of the CEL transition rules) -------------------------------------

def test_approvals_and_cancel_may_change() -> None:
    old = {"runbook": "site-down", "approvals": [], "cancel": False}
    new = {"runbook": "site-down", "approvals": ["dr-failover"], "cancel": True}
    assert immutable_spec_changes(INCIDENT, old, new) == []


def test_other_changes_additions_and_removals_are_reported() -> None:
    old = {"runbook": "site-down", "severity": "P1", "dryRun": False}
    new = {"runbook": "high-cpu", "dryRun": False, "notification": {"webhookSecretRef": {"name": "n", "key": "k"}}}
    assert immutable_spec_changes(INCIDENT, old, new) == ["notification", "runbook", "severity"]


def test_policies_are_mutable() -> None:
    for kind in (BACKUP_POLICY, SCALING_POLICY):
        assert immutable_spec_changes(kind, {"a": 1}, {"a": 2}) == []


# ---- what the operator writes passes the CRD schema ----------------------------------------------------

def _condition() -> common.Condition:
    return common.Condition(type="Ready", status=common.ConditionStatus.TRUE, reason="BackupVerified",
                            message="ok", last_transition_time=NOW, observed_generation=2)


def test_backup_status_written_by_the_operator_passes_the_schema() -> None:
    status = backup.BackupPolicyStatus(
        last_successful_backup=NOW, last_backup_size="12.3 MiB", next_schedule_time=NOW,
        backups=[backup.BackupRecord(id="20260116T020000Z", started_at=NOW, finished_at=NOW, bytes=1024,
                                     sha256="ab" * 32, location="/backups/x.sql.gz", verified=True)],
        last_maintenance={"vacuumAnalyze": NOW}, observed_generation=2, conditions=[_condition()],
    )
    schema = openapi_schema(load_crds()["BackupPolicy"])
    assert schema_errors(status.to_api(), schema["properties"]["status"]) == []


def test_incident_status_written_by_the_operator_passes_the_schema() -> None:
    status = incident.TradeSenseIncidentStatus(
        phase=incident.IncidentPhase.RUNNING, current_step="restart",
        plan=[incident.PlannedStep(id="restart", action=incident.StepAction.ROLLOUT_RESTART, target="deployment/backend",
                                   params={"deployment": "backend", "replicas": 3, "ratio": 0.5, "force": True})],
        steps=[incident.StepStatus(id="restart", action=incident.StepAction.ROLLOUT_RESTART, started_at=NOW,
                                   state=incident.StepState.RUNNING, evidence={"pods": "3/3"})],
        respond_by=NOW, started_at=NOW, conditions=[_condition()],
    )
    schema = openapi_schema(load_crds()["TradeSenseIncident"])
    assert schema_errors(status.to_api(), schema["properties"]["status"]) == []


def test_scaling_status_written_by_the_operator_passes_the_schema() -> None:
    status = scaling.ScalingPolicyStatus(
        current_replicas=3, desired_replicas=5, last_scale_time=NOW, last_evaluation_time=NOW,
        current_metrics=[scaling.MetricStatus(name="requests", value=250.0, target=50.0, recommendation=5)],
        recommendations=[scaling.Recommendation(timestamp=NOW, replicas=5)],
        scale_events=[scaling.ScaleEvent(timestamp=NOW, from_replicas=3, to_replicas=5)],
        conditions=[_condition()],
    )
    schema = openapi_schema(load_crds()["ScalingPolicy"])
    assert schema_errors(status.to_api(), schema["properties"]["status"]) == []


def test_the_schema_oracle_is_not_vacuous() -> None:
    """A wrong type, an unknown field and a bad enum are all caught by the schema check used above."""
    schema = openapi_schema(load_crds()["ScalingPolicy"])
    bad = {"currentReplicas": "three", "surprise": 1, "conditions": [
        {"type": "Ready", "status": "Maybe", "reason": "X", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    errors = schema_errors(bad, schema["properties"]["status"])
    assert any(error.startswith("currentReplicas:") for error in errors)
    assert any("surprise" in error for error in errors)
    assert any(error.startswith("conditions.0.status:") for error in errors)
