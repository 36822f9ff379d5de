"""The AlertResolved condition of an incident, copied from the annotations the alert bridge writes.

The bridge never writes incident status itself (only the engine does, so status has one writer);
this module turns its annotations into the condition. It must not change the incident's phase:
cancelling on a resolved alert is the bridge's `spec.cancel`, decided elsewhere.
"""

from __future__ import annotations

from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.alert_state import CONDITION, alert_state
from tradesense_operator.services.incidents.run import IncidentRun, StatusWriter


def sync_alert_condition(run: IncidentRun, writer: StatusWriter) -> None:
    """AlertResolved from the bridge's annotations, staged in `run.status` (the caller's next write carries
    it; a write that changes nothing is not sent)."""
    state = alert_state((run.obj.body.get("metadata") or {}).get("annotations"))
    if state is None:
        return
    run.status = run.status.model_copy(update={"conditions": set_condition(
        run.status.conditions, type_=CONDITION, status=state.resolved, reason=state.reason,
        message=state.message, now=writer.now(), observed_generation=run.obj.generation)})
