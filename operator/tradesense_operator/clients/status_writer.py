"""The one way the operator writes a custom resource's status: a merge patch of the status subresource that
carries the resourceVersion the new status was computed from.

Why resourceVersion: a writer that decided from an older object (a stale ex-leader, a second operator, a
stale cached body) gets a Conflict instead of silently overwriting what another writer recorded; the caller
re-reads and decides again. Why explicit nulls: under a merge patch an omitted field is kept, so a field that
became empty (a released lock, a cleared lastScaleTime) must be sent as null to be cleared. Lists replace
wholesale under a merge patch, so the whole operator-owned status is sent — or every top-level field that differs
from the status stored at that resourceVersion, when the caller has it (the guard makes "stored" exact).

Owns the wire form of the write; must not decide what the status says.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel

from tradesense_operator.clients.kube import JsonDict, KubeClient, ResourceKind


def status_merge_patch(status: BaseModel, omit: Collection[str] = ()) -> dict[str, Any]:
    """The status as the API stores it (aliases, JSON values), with explicit nulls for empty top-level fields;
    `omit` names top-level fields (by their API name) this write leaves as they are stored."""
    wire: dict[str, Any] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    for name, info in type(status).model_fields.items():
        if getattr(status, name) is None:
            wire[info.alias or name] = None
    for field in omit:
        wire.pop(field, None)
    return wire


async def write_status(kube: KubeClient, kind: ResourceKind, namespace: str, name: str, status: BaseModel, *,
                       resource_version: str | None, omit: Collection[str] = (),
                       stored: Mapping[str, Any] | None = None) -> JsonDict:
    """Persist `status` (but the `omit` fields) if the object is still at `resource_version` (None:
    unconditionally); returns the object as the API server stored it. Conflict when it moved on since that read.

    `stored`: the status the API server holds at `resource_version`, as it returned it; top-level fields whose wire
    form equals it are left out. The guard makes the result the same as writing them (a field left out is stored
    as it would be sent), with a smaller PATCH for both sides."""
    wire = status_merge_patch(status, omit)
    if stored is not None and resource_version:
        wire = {field: value for field, value in wire.items()
                if not (stored.get(field) == value and (field in stored or value is None))}
    return await patch_status(kube, kind, namespace, name, wire, resource_version=resource_version)


async def patch_status(kube: KubeClient, kind: ResourceKind, namespace: str, name: str, fields: Mapping[str, Any],
                       *, resource_version: str | None) -> JsonDict:
    """Merge-patch only the given top-level status `fields` (a writer that owns one part of the status, such as
    the PITR pass's pointInTime block), with the same resourceVersion guard as `write_status`."""
    body: dict[str, Any] = {"status": dict(fields)}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return await kube.patch(kind, name, body, namespace, subresource="status")
