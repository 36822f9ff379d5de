"""Field managers: who wrote an object, recorded in `metadata.managedFields` as a real API server does.

The server names the writer of each POST/PUT/PATCH (the `fieldManager` query parameter, else the
User-Agent's product, as kube-apiserver defaults it) for the duration of the store call (`writing_as`);
the store stamps the entry inside the same write (`stamp`), so no extra resourceVersion or watch event.
One entry per (manager, operation, subresource), its fieldsV1 the union of the fields that manager sent
(dict keys as `f:<name>`; list items are not itemised). No ownership conflicts are computed: that is the
one part of server-side apply the emulator leaves out.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.snapshot import clone

_IGNORED_METADATA = frozenset(
    {"resourceVersion", "managedFields", "uid", "creationTimestamp", "generation", "selfLink", "name", "namespace"}
)


@dataclass(frozen=True)
class Writer:
    manager: str
    operation: str  # Update or Apply
    body: Any
    subresource: str | None = None  # for writes the store sees as plain updates (scale)


_current: contextvars.ContextVar[Writer | None] = contextvars.ContextVar("field_manager", default=None)


@contextlib.contextmanager
def writing_as(manager: str, operation: str, body: Any, subresource: str | None = None) -> Iterator[None]:
    token = _current.set(Writer(manager, operation, body, subresource))
    try:
        yield
    finally:
        _current.reset(token)


def _fields(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {f"f:{k}": _fields(v) for k, v in value.items() if not k.startswith("$")}


def _sent_fields(body: Any) -> dict[str, Any]:
    """The fields a request body sets: an object or merge patch as is, a JSON patch by its paths."""
    if isinstance(body, list):
        tree: dict[str, Any] = {}
        for op in body:
            if not isinstance(op, dict) or op.get("op") not in ("add", "replace"):
                continue
            node = tree
            for part in str(op.get("path", "")).strip("/").split("/"):
                if part and not part.isdigit() and part != "-":
                    node = node.setdefault(f"f:{part.replace('~1', '/').replace('~0', '~')}", {})
        return tree
    fields = _fields(body)
    fields.pop("f:apiVersion", None)
    fields.pop("f:kind", None)
    metadata = fields.get("f:metadata")
    if isinstance(metadata, dict):
        for key in _IGNORED_METADATA:
            metadata.pop(f"f:{key}", None)
        if not metadata:
            fields.pop("f:metadata")
    return fields


def _union(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        into[key] = _union(dict(into.get(key) or {}), value)
    return into


def stamp(old: dict[str, Any] | None, new: dict[str, Any], api_version: str, subresource: str | None) -> None:
    """Record the current writer (if the server named one) in `new.metadata.managedFields`."""
    writer = _current.get()
    entries = clone((old or {}).get("metadata", {}).get("managedFields") or [])
    if writer is None:
        if entries:
            new["metadata"]["managedFields"] = entries
        return
    subresource = writer.subresource or subresource
    key = (writer.manager, writer.operation, subresource)
    existing = next((e for e in entries if (e.get("manager"), e.get("operation"), e.get("subresource")) == key), None)
    fields = _sent_fields(writer.body)
    if existing is None:
        existing = {"manager": writer.manager, "operation": writer.operation, "apiVersion": api_version,
                    "fieldsType": "FieldsV1", "fieldsV1": {}}
        if subresource:
            existing["subresource"] = subresource
        entries.append(existing)
    existing["time"] = clock.rfc3339()
    existing["fieldsV1"] = _union(dict(existing.get("fieldsV1") or {}), fields)
    new["metadata"]["managedFields"] = entries
