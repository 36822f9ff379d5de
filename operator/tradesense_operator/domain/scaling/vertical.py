"""Bounded vertical recommendation: a memory limit from observed usage plus headroom, within [min, max],
and the memory request as a fixed percent of it (the runbook's `kubectl set resources` sets both).

Each change rolls every pod, so a new limit is proposed only when it differs from the current one by more
than `minChangePercent`; results are rounded up to whole MiB so repeated evaluations produce the same string.
Pure: must not query usage or patch the Deployment (services/scaling does both).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.scaling import VerticalSpec
from tradesense_operator.domain.scaling.errors import InvalidScalingSpec

_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
MIB = 2**20


def parse_bytes(quantity: str, field: str = "quantity") -> int:
    """A Kubernetes memory quantity in bytes (binary and decimal suffixes)."""
    match = _QUANTITY.match(quantity.strip())
    if not match:
        raise InvalidScalingSpec(field, f"not a memory quantity: {quantity!r}")
    return math.ceil(float(match.group(1)) * _SUFFIX[match.group(2) or ""])


def format_bytes(value: int) -> str:
    """Bytes as Gi when whole, Mi otherwise (rounded up)."""
    mib = math.ceil(value / MIB)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


@dataclass(frozen=True)
class VerticalRecommendation:
    """A new memory limit (and request, when the policy sets requests), with the reason in words."""

    limit: str
    limit_bytes: int
    reason: str
    request: str | None = None


def recommend_memory_limit(
    spec: VerticalSpec, usage_bytes: float, current_limit: str | None
) -> VerticalRecommendation | None:
    """A new limit when the bounded target differs enough from the current one, else None."""
    low = parse_bytes(spec.min_memory, "spec.vertical.minMemory")
    high = parse_bytes(spec.max_memory, "spec.vertical.maxMemory")
    wanted = usage_bytes * (1 + spec.headroom_percent / 100)
    bounded = min(high, max(low, math.ceil(wanted)))
    target = min(high, math.ceil(bounded / MIB) * MIB)
    if current_limit is not None:
        current = parse_bytes(current_limit, "container memory limit")
        if current > 0 and abs(target - current) / current * 100 <= spec.min_change_percent:
            return None
        before = current_limit
    else:
        before = "unset"
    text = format_bytes(target)
    request = None
    if spec.request_percent is not None:
        request = format_bytes(math.ceil(target * spec.request_percent / 100 / MIB) * MIB)
    reason = (f"memory usage {format_bytes(math.ceil(usage_bytes))} + {spec.headroom_percent}% headroom, "
              f"bounded to [{spec.min_memory}, {spec.max_memory}]: limit {before} → {text}"
              + (f", request {request} ({spec.request_percent}% of the limit)" if request else ""))
    return VerticalRecommendation(limit=text, limit_bytes=target, reason=reason, request=request)
