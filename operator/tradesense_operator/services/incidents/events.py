"""Events on the incident for every step transition, so `kubectl describe tsi` reads like the runbook.

Events are best effort: status is the record the engine resumes from, so a failed Event write is
logged and never stops a remediation.
"""

from __future__ import annotations

import logging
from typing import Literal

from tradesense_operator.clients.errors import ClientError
from tradesense_operator.clients.kube import KubeClient, ObjectRef
from tradesense_operator.domain.clock import Clock

log = logging.getLogger(__name__)


class IncidentEvents:
    """Posts core/v1 Events about one incident."""

    def __init__(self, kube: KubeClient, clock: Clock, ref: ObjectRef) -> None:
        self._kube = kube
        self._clock = clock
        self._ref = ref

    async def normal(self, reason: str, message: str) -> None:
        """A routine transition (StepStarted, StepSucceeded, IncidentSucceeded …)."""
        await self._post("Normal", reason, message)

    async def warning(self, reason: str, message: str) -> None:
        """Something a human should look at (StepFailed, Blocked, Escalated …)."""
        await self._post("Warning", reason, message)

    async def _post(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        log.info("%s/%s %s: %s", self._ref.namespace, self._ref.name, reason, message)
        try:
            await self._kube.create_event(self._ref, type_=type_, reason=reason, message=message,
                                          now=self._clock.now())
        except ClientError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, self._ref.namespace, self._ref.name, exc)
