"""The namespace freeze: an annotation that pauses new remediation in a namespace (change freezes).

Reads the annotations it is given; must not read or write the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping

FREEZE_ANNOTATION = "ops.tradesense.io/freeze"


def is_frozen(annotations: Mapping[str, str] | None) -> bool:
    """Frozen when the annotation says "true" (any case); anything else, including absence, is not."""
    if not annotations:
        return False
    return str(annotations.get(FREEZE_ANNOTATION, "")).strip().lower() == "true"


def freeze_message(namespace: str) -> str:
    """Why an incident does not start its next step."""
    return (
        f"namespace {namespace} is frozen ({FREEZE_ANNOTATION}=true): no new remediation step starts "
        "until the annotation is removed"
    )
