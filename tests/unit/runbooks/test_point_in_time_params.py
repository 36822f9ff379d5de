"""restore-database and data-corruption carry parameters.targetTime / targetLSN to both backup steps (the
plan's find-clean-backup and restore), and a logical restore keeps planning exactly as before."""

from __future__ import annotations

import pytest

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.domain.runbooks import resolve_plan


@pytest.mark.parametrize("runbook", ["restore-database", "data-corruption"])
@pytest.mark.parametrize(("given", "expected"), [
    ({"targetTime": "2026-01-10T12:00:00Z"}, {"targetTime": "2026-01-10T12:00:00Z"}),
    ({"targetTime": "latest"}, {"targetTime": "latest"}),
    ({"targetLSN": "0/3000060"}, {"targetLSN": "0/3000060"}),
    ({"backupId": "nightly_20260110_020000"}, {"backupId": "nightly_20260110_020000"}),
])
def test_restore_steps_carry_the_target(runbook: str, given: dict[str, str], expected: dict[str, str]) -> None:
    spec = TradeSenseIncidentSpec.model_validate(
        {"runbook": runbook, "parameters": {"backupPolicy": "nightly", **given}})
    steps = {s.id: s.params for s in resolve_plan(spec)}
    for step in ("find-clean-backup", "restore"):
        assert steps[step] == expected
