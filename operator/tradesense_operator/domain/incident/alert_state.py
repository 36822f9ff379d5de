"""The AlertResolved condition, derived from what the Alertmanager bridge records on the incident.

The bridge never writes status (the engine is its only writer); it annotates the incident with the
alert's state and when it was last seen, and the engine turns that into a condition, including on
incidents that already finished — they usually finish before the alert resolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tradesense_operator.domain.alerts import ALERT_LAST_SEEN_ANNOTATION, ALERT_STATUS_ANNOTATION

CONDITION = "AlertResolved"


@dataclass(frozen=True)
class AlertState:
    """Condition fields for AlertResolved."""

    resolved: bool
    reason: str
    message: str


def alert_state(annotations: Mapping[str, str] | None) -> AlertState | None:
    """None unless the bridge recorded `firing` or `resolved`."""
    annotations = annotations or {}
    state = str(annotations.get(ALERT_STATUS_ANNOTATION, "")).strip().lower()
    seen = str(annotations.get(ALERT_LAST_SEEN_ANNOTATION, "")).strip()
    if state == "resolved":
        return AlertState(True, "AlertResolved",
                          f"Alertmanager reported the alert resolved at {seen}" if seen
                          else "Alertmanager reported the alert resolved")
    if state == "firing":
        return AlertState(False, "AlertFiring",
                          f"Alertmanager reports the alert firing (last seen {seen})" if seen
                          else "Alertmanager reports the alert firing")
    return None
