"""Action registry: every StepAction has exactly one adapter, and the adapter's approval class is the
catalogue's (so a custom step and a runbook step of the same action are guarded alike)."""

from __future__ import annotations

import pytest

from tradesense_operator.api.v1alpha1.incident import StepAction
from tradesense_operator.domain.runbooks.action_specs import ACTION_SPECS
from tradesense_operator.services.step_adapters.registry import ACTIONS


def test_every_step_action_has_an_adapter() -> None:
    assert set(ACTIONS) == set(StepAction)
    assert set(ACTION_SPECS) == set(StepAction)


@pytest.mark.parametrize("action", list(StepAction))
def test_adapter_name_and_destructive_flag_match_the_contract(action: StepAction) -> None:
    adapter = ACTIONS[action]
    assert adapter.name is action
    assert adapter.destructive is ACTION_SPECS[action].destructive
