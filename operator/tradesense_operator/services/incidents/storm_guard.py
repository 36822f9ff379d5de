"""The restart-storm guard against the cluster: history in an annotation on the Deployment itself.

Keeping the history on the Deployment (not in an incident's status or the operator's memory) makes it
survive operator restarts and count restarts from every incident. The record is written BEFORE the
restart (after the step was checkpointed Running), so a crash between the two can only over-count by
the one restart that then happens on resume, never let an extra one slip through.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradesense_operator.clients.errors import Conflict, NotFound
from tradesense_operator.clients.kube import DEPLOYMENTS, KubeClient
from tradesense_operator.domain.clock import Clock
from tradesense_operator.domain.incident.storm import (
    HISTORY_ANNOTATION,
    StormVerdict,
    check_restart,
    parse_history,
    record_restart,
    serialise_history,
)

_MAX_RACES = 5


@dataclass(frozen=True)
class GuardResult:
    """The verdict, or None when the Deployment does not exist (the action reports that itself)."""

    verdict: StormVerdict | None


class RestartGuard:
    """Checks and records restarts of Deployments in one namespace."""

    def __init__(self, kube: KubeClient, clock: Clock, *, namespace: str, limit: int) -> None:
        self._kube = kube
        self._clock = clock
        self._namespace = namespace
        self._limit = limit

    async def check(self, deployment: str, stamp: str) -> GuardResult:
        """May `stamp` restart the Deployment now?"""
        body = await self._kube.get_or_none(DEPLOYMENTS, deployment, self._namespace)
        if body is None:
            return GuardResult(None)
        records = parse_history(((body.get("metadata") or {}).get("annotations") or {}).get(HISTORY_ANNOTATION))
        return GuardResult(check_restart(records, stamp=stamp, now=self._clock.now(), limit=self._limit))

    async def record(self, deployment: str, stamp: str) -> None:
        """Add this restart to the Deployment's history (once per stamp), guarded by resourceVersion."""
        for _ in range(_MAX_RACES):
            body = await self._kube.get_or_none(DEPLOYMENTS, deployment, self._namespace)
            if body is None:
                return
            meta = body.get("metadata") or {}
            current = (meta.get("annotations") or {}).get(HISTORY_ANNOTATION)
            updated = serialise_history(record_restart(parse_history(current), stamp=stamp, now=self._clock.now()))
            if updated == current:
                return
            patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                  "annotations": {HISTORY_ANNOTATION: updated}}}
            try:
                await self._kube.patch(DEPLOYMENTS, deployment, patch, self._namespace)
            except Conflict:
                continue  # another incident recorded a restart meanwhile: merge with its record
            except NotFound:
                return
            return
        raise Conflict(f"deployment/{deployment}: restart history kept changing; giving up after {_MAX_RACES} tries")
