"""AlertResolved from the bridge's annotations."""

import pytest

from tradesense_operator.domain.alerts import ALERT_LAST_SEEN_ANNOTATION, ALERT_STATUS_ANNOTATION
from tradesense_operator.domain.incident.alert_state import AlertState, alert_state

SEEN = "2026-01-05T14:30:00Z"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (None, None),
        ({}, None),
        ({ALERT_STATUS_ANNOTATION: "pending"}, None),
        ({ALERT_STATUS_ANNOTATION: "resolved", ALERT_LAST_SEEN_ANNOTATION: SEEN},
         AlertState(True, "AlertResolved", f"Alertmanager reported the alert resolved at {SEEN}")),
        ({ALERT_STATUS_ANNOTATION: "Resolved"},
         AlertState(True, "AlertResolved", "Alertmanager reported the alert resolved")),
        ({ALERT_STATUS_ANNOTATION: "firing", ALERT_LAST_SEEN_ANNOTATION: SEEN},
         AlertState(False, "AlertFiring", f"Alertmanager reports the alert firing (last seen {SEEN})")),
    ],
)
def test_alert_state(annotations: dict[str, str] | None, expected: AlertState | None) -> None:
    assert alert_state(annotations) == expected
