"""Phase changes and the conditions that summarise them (Ready, Progressing).

`kubectl wait --for=condition=Ready tsi/x` works because Ready is True exactly when the incident
Succeeded; Progressing says whether the engine is actively working or waiting on something outside
it (approval, lock, freeze, storm guard), with the reason naming what.

Pure: returns the new status; must not persist it (the engine does).
"""

from __future__ import annotations

from datetime import datetime

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, TradeSenseIncidentStatus
from tradesense_operator.domain.conditions import set_condition
from tradesense_operator.domain.incident.transitions import clip

ACTIVE_PHASES = frozenset({IncidentPhase.PLANNING, IncidentPhase.RUNNING, IncidentPhase.VERIFYING})


def with_phase(
    status: TradeSenseIncidentStatus,
    *,
    phase: IncidentPhase,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> TradeSenseIncidentStatus:
    """The status in `phase`, with message, Ready/Progressing conditions and observedGeneration updated."""
    conditions = set_condition(
        status.conditions, type_="Ready", status=phase is IncidentPhase.SUCCEEDED, reason=reason,
        message=clip(message, 1024), now=now, observed_generation=generation,
    )
    conditions = set_condition(
        conditions, type_="Progressing", status=phase in ACTIVE_PHASES, reason=reason,
        message=clip(message, 1024), now=now, observed_generation=generation,
    )
    update: dict[str, object] = {
        "phase": phase,
        "message": clip(message),
        "conditions": conditions,
        "observed_generation": generation if generation is not None else status.observed_generation,
    }
    if phase is IncidentPhase.SUCCEEDED and status.resolved_at is None:
        update["resolved_at"] = now
    return status.model_copy(update=update)
