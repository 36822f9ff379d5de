"""Reading an incident and checkpointing its status (merge-patch on the status subresource).

Every write sends the whole operator-owned status (status.timeline only when the write adds entries, see
`events.py`): lists (plan, steps, conditions) replace wholesale
under a merge patch, and top-level fields that became empty are sent as explicit nulls so that they
are cleared (e.g. currentStep once the incident ends) instead of silently kept.

Every write also carries the resourceVersion of the read it was computed from, so a writer that decided
from an older status (a stale ex-leader, a second operator) gets a Conflict instead of rewinding step state.
The wire form is `clients.status_writer`'s, the one way every kind's status is written.
Owns reading and writing only; must not decide what the status says (the engine does).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentStatus
from tradesense_operator.clients.kube import INCIDENTS, KubeClient, ObjectRef
from tradesense_operator.clients.status_writer import status_merge_patch, write_status

log = logging.getLogger(__name__)

_STATUS_FIELDS = {
    (info.alias or name): name for name, info in TradeSenseIncidentStatus.model_fields.items()
}


class StatusUnreadable(ValueError):
    """The stored status does not parse (hand-edited); carries a message naming the problem."""


@dataclass(frozen=True)
class IncidentObject:
    """One read of a TradeSenseIncident: identity, raw spec and parsed status."""

    ref: ObjectRef
    generation: int | None
    created: datetime | None
    deleting: bool
    raw_spec: Mapping[str, Any]
    status: TradeSenseIncidentStatus
    body: Mapping[str, Any]
    resource_version: str | None = None


def parse_status(raw: Mapping[str, Any] | None) -> TradeSenseIncidentStatus:
    """The operator's status model from a stored status; keys other writers added are ignored."""
    known = {k: v for k, v in (raw or {}).items() if k in _STATUS_FIELDS}
    try:
        return TradeSenseIncidentStatus.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StatusUnreadable(f"status.{where}: {first['msg']}") from exc


_UNLESS_ADDED = ("timeline",)  # sent only when the write adds entries (IncidentStore.save)


def status_patch(status: TradeSenseIncidentStatus) -> dict[str, Any]:
    """Merge-patch body for the status subresource (explicit nulls clear emptied top-level fields)."""
    return {"status": status_merge_patch(status, _UNLESS_ADDED)}


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def incident_object(body: Mapping[str, Any], status: TradeSenseIncidentStatus) -> IncidentObject:
    """An IncidentObject from a stored body (a GET or a write's answer) and its already parsed status."""
    meta = body.get("metadata") or {}
    return IncidentObject(
        ref=ObjectRef.from_body(body),
        generation=meta.get("generation"),
        created=_parse_time(meta.get("creationTimestamp")),
        deleting=bool(meta.get("deletionTimestamp")),
        raw_spec=body.get("spec") or {},
        status=status,
        body=body,
        resource_version=str(meta.get("resourceVersion") or "") or None,
    )


class IncidentStore:
    """Reads incidents and writes their status through the Kubernetes client."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    async def load(self, namespace: str, name: str) -> IncidentObject | None:
        """The incident as stored now, or None when it no longer exists. StatusUnreadable for a broken status."""
        body = await self._kube.get_or_none(INCIDENTS, name, namespace)
        if body is None:
            return None
        return incident_object(body, parse_status(body.get("status")))

    async def save(
        self, ref: ObjectRef, status: TradeSenseIncidentStatus, *, resource_version: str | None,
        with_timeline: bool = False,
    ) -> IncidentObject:
        """Persist the status if the object is still at `resource_version`; returns the object as written.

        `with_timeline` sends status.timeline too (the engine adds the entries of the Events it posted since
        its last write to the same write). The answer is the API server's (new resourceVersion, the spec as it
        is now) with `status` as written, so the engine can continue from it without a GET.
        Conflict when the object moved on since that read (the caller re-reads and decides again).
        """
        answer = await write_status(self._kube, INCIDENTS, ref.namespace, ref.name, status,
                                    resource_version=resource_version, omit=() if with_timeline else _UNLESS_ADDED)
        return incident_object(answer, status)
