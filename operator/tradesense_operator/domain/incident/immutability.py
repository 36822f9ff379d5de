"""Spec immutability: after planning, only `approvals` and `cancel` may change.

The CRD enforces this with CEL transition rules where the API server evaluates them; this is the
operator's own check for servers that do not (or objects edited while the operator was down).
The plan is frozen in status, but actions also read the spec (target namespace, connections), so a
silently edited target would make a half-done remediation continue somewhere else. The engine keeps
a per-field fingerprint in status and stops when it no longer matches.

The fingerprint hashes the spec normalized through the API model (every default filled in), not the
stored bytes: a real API server applies a CRD's current defaults when it reads an object stored before
them, so a CRD upgrade that adds a defaulted field changes the stored spec as read without anyone
editing it. Normalized, "absent" and "its default" hash the same. Incidents frozen by an older
operator from the stored spec still match, since the stored spec already carried the defaults its
CRD applied at creation; a top-level field that appeared since with its model default is not a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.api.v1alpha1.kinds import INCIDENT

# One list of what may change, shared with the CRD's generated CEL transition rules.
MUTABLE_FIELDS: frozenset[str] = INCIDENT.mutable_spec_fields or frozenset()


def normalized_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as the model reads it, with every default present (the stored spec when it does not parse)."""
    try:
        return TradeSenseIncidentSpec.model_validate(dict(spec)).to_api()
    except ValidationError:
        return dict(spec)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _default_digests() -> dict[str, str]:
    """Digests of every defaulted top-level field as a minimal spec gets them (runbook is the one required field)."""
    minimal = TradeSenseIncidentSpec.model_validate({"runbook": "site-down"}).to_api()
    return {name: _digest(value) for name, value in minimal.items() if name != "runbook"}


_DEFAULT_DIGESTS = _default_digests()


def spec_fingerprint(spec: Mapping[str, Any]) -> dict[str, str]:
    """Short digest of every immutable top-level field of the normalized spec, keyed by its wire name."""
    return {name: _digest(value) for name, value in sorted(normalized_spec(spec).items()) if name not in MUTABLE_FIELDS}


def changed_fields(frozen: dict[str, str], current: dict[str, str]) -> list[str]:
    """Wire paths (spec.<field>) whose fingerprint differs; empty when nothing immutable changed.

    Fields set since (absent from `frozen`) count as changes unless they hold the model's default (a newer
    CRD or operator filled them in), and removed ones count too. An empty
    `frozen` map means the incident was never planned: nothing to compare.
    """
    if not frozen:
        return []
    names = sorted(set(frozen) | set(current))
    return [
        f"spec.{name}" for name in names
        if frozen.get(name) != current.get(name)
        and not (name not in frozen and current.get(name) == _DEFAULT_DIGESTS.get(name))
    ]


def change_message(fields: list[str]) -> str:
    """Why the incident stopped: which fields changed and what to do."""
    return (
        f"{', '.join(fields)} changed after the incident started; only spec.approvals and spec.cancel may "
        "change. Restore the original value or create a new incident"
    )
