"""The namespace freeze annotation."""

import pytest

from tradesense_operator.domain.incident.freeze import FREEZE_ANNOTATION, freeze_message, is_frozen


@pytest.mark.parametrize(
    ("annotations", "frozen"),
    [
        (None, False),
        ({}, False),
        ({FREEZE_ANNOTATION: "true"}, True),
        ({FREEZE_ANNOTATION: " TRUE "}, True),
        ({FREEZE_ANNOTATION: "false"}, False),
        ({FREEZE_ANNOTATION: "yes"}, False),
        ({"other/freeze": "true"}, False),
    ],
)
def test_only_an_explicit_true_freezes(annotations: dict[str, str] | None, frozen: bool) -> None:
    assert is_frozen(annotations) is frozen


def test_freeze_message_names_namespace_and_annotation() -> None:
    message = freeze_message("tradesense")
    assert "tradesense" in message
    assert f"{FREEZE_ANNOTATION}=true" in message
