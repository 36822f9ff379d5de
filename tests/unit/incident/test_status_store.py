"""Status checkpoints: emptied top-level fields are cleared explicitly; foreign status keys are ignored."""

from datetime import UTC, datetime

import pytest

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, TradeSenseIncidentStatus
from tradesense_operator.services.incidents.store import StatusUnreadable, parse_status, status_patch

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def test_emptied_fields_are_sent_as_null_so_a_merge_patch_clears_them() -> None:
    status = TradeSenseIncidentStatus(phase=IncidentPhase.SUCCEEDED, resolved_at=NOW)
    patch = status_patch(status)["status"]
    assert patch["phase"] == "Succeeded"
    assert patch["resolvedAt"] == "2026-01-05T14:30:00Z"
    assert patch["currentStep"] is None
    assert patch["escalation"] is None


def test_round_trip() -> None:
    status = TradeSenseIncidentStatus(phase=IncidentPhase.RUNNING, current_step="x", respond_by=NOW)
    stored = {k: v for k, v in status_patch(status)["status"].items() if v is not None}
    assert parse_status(stored) == status


def test_keys_written_by_others_are_ignored() -> None:
    assert parse_status({"phase": "Running", "kopf": {"progress": {}}}).phase is IncidentPhase.RUNNING
    assert parse_status(None) == TradeSenseIncidentStatus()


def test_a_broken_status_names_the_field() -> None:
    with pytest.raises(StatusUnreadable, match=r"status\.phase"):
        parse_status({"phase": "Exploded"})
