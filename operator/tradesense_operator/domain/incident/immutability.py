"""Spec immutability: after planning, only `approvals` and `cancel` may change.

The CRD enforces this with CEL transition rules where the API server evaluates them; this is the
operator's own check for servers that do not (or objects edited while the operator was down).
The plan is frozen in status, but actions also read the spec (target namespace, connections), so a
silently edited target would make a half-done remediation continue somewhere else. The engine keeps
a per-field fingerprint in status and stops when it no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

MUTABLE_FIELDS = frozenset({"approvals", "cancel"})


def spec_fingerprint(spec: Mapping[str, Any]) -> dict[str, str]:
    """Short digest of every immutable top-level field of the stored (wire) spec, keyed by its name.

    The stored object is fingerprinted rather than the parsed model so that an operator upgrade that
    adds a field or changes a model default does not look like a user edit.
    """
    result: dict[str, str] = {}
    for name, value in sorted(spec.items()):
        if name in MUTABLE_FIELDS:
            continue
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
        result[name] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return result


def changed_fields(frozen: dict[str, str], current: dict[str, str]) -> list[str]:
    """Wire paths (spec.<field>) whose fingerprint differs; empty when nothing immutable changed.

    Fields set since (absent from `frozen`) count as changes, and so do removed ones. An empty
    `frozen` map means the incident was never planned: nothing to compare.
    """
    if not frozen:
        return []
    names = sorted(set(frozen) | set(current))
    return [f"spec.{name}" for name in names if frozen.get(name) != current.get(name)]


def change_message(fields: list[str]) -> str:
    """Why the incident stopped: which fields changed and what to do."""
    return (
        f"{', '.join(fields)} changed after the incident started; only spec.approvals and spec.cancel may "
        "change. Restore the original value or create a new incident"
    )
