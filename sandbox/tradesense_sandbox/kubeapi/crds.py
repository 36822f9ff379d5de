"""CustomResourceDefinition handling: turn a stored CRD into served resource types.

The admission hook validates the CRD (names, versions, schemas, CEL rules — an unsupported rule is
a 422 at install time) and marks it Established; the store listener registers or drops the served
versions, which makes them appear in discovery immediately.

Must not validate custom objects (validation.py does, with the schema registered here).
"""

from __future__ import annotations

from typing import Any

from tradesense_sandbox.kubeapi import clock
from tradesense_sandbox.kubeapi.errors import invalid
from tradesense_sandbox.kubeapi.resources import ResourceType, ScaleSpec
from tradesense_sandbox.kubeapi.store import Obj, Store
from tradesense_sandbox.kubeapi.validation import validator_for_version

CRD_KEY = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def resource_types_of(crd: Obj) -> list[ResourceType]:
    """The served resource types a CRD defines (raises ApiError for an invalid CRD)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, kind, plural = spec.get("group"), names.get("kind"), names.get("plural")
    name = str(crd.get("metadata", {}).get("name", ""))
    problems = [
        ("FieldValueRequired", f"spec.{field}", "Required value")
        for field, value in (("group", group), ("names.kind", kind), ("names.plural", plural), ("scope", spec.get("scope")))
        if not value
    ]
    if not problems and name != f"{plural}.{group}":
        problems.append(
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
        )
    versions = spec.get("versions") or []
    if not versions:
        problems.append(
            (
                "FieldValueRequired",
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(
            ("FieldValueInvalid", "spec.versions", "Invalid value: must have exactly one version marked as storage version")
        )
    if problems:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, problems)
    types: list[ResourceType] = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale_def = subresources.get("scale")
        scale = None
        if scale_def is not None:
            scale = ScaleSpec(
                scale_def["specReplicasPath"], scale_def["statusReplicasPath"], scale_def.get("labelSelectorPath")
            )
        types.append(
            ResourceType(
                group=str(group),
                version=str(version["name"]),
                kind=str(kind),
                plural=str(plural),
                singular=str(names.get("singular") or str(kind).lower()),
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                scale=scale,
                tracks_generation=True,
                validator=validator_for_version(str(kind), str(group), version),
                crd_name=name,
                printer_columns=list(version.get("additionalPrinterColumns") or []),
            )
        )
    return types


def _established(crd: Obj) -> dict[str, Any]:
    names = (crd.get("spec") or {}).get("names") or {}
    now = clock.rfc3339()
    return {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")],
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }


def install(store: Store) -> None:
    """Wire CRD admission and registration into the store."""

    def admit(rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rtype.key != CRD_KEY:
            return
        resource_types_of(obj)  # raises for invalid CRDs and unsupported CEL rules
        if old is None:
            obj["status"] = _established(obj)

    def on_change(rtype: ResourceType, event_type: str, obj: Obj, old: Obj | None) -> None:
        if rtype.key != CRD_KEY:
            return
        previous = {t.key for t in resource_types_of(old)} if old is not None else set()
        if event_type == "DELETED":
            for key in previous:
                store.unregister(key)
            return
        current = resource_types_of(obj)
        for key in previous - {t.key for t in current}:
            store.unregister(key)
        for new_type in current:
            store.register(new_type)

    store.add_admission(admit)
    store.add_listener(on_change)
