"""Small spec builders for the scaling table tests (defaults mirror the CRD's)."""

from __future__ import annotations

from typing import Any

from tradesense_operator.api.v1alpha1.scaling import ScalingPolicySpec


def spec(**overrides: Any) -> ScalingPolicySpec:
    """A spec with one AverageValue metric `load` (100 per replica: a total of N×100 asks for N), camelCase overrides."""
    body: dict[str, Any] = {
        "targetRef": {"name": "backend"},
        "minReplicas": 1,
        "maxReplicas": 100,
        "metrics": [{"name": "load", "query": "load", "target": {"type": "AverageValue", "value": 100}}],
    }
    body.update(overrides)
    return ScalingPolicySpec.model_validate(body)


def no_stabilization(**rules: Any) -> dict[str, Any]:
    """A behavior with zero stabilization both ways (rate policies only), extra per-direction rules merged in."""
    up = {"stabilizationWindowSeconds": 0, **rules.get("up", {})}
    down = {"stabilizationWindowSeconds": 0, **rules.get("down", {})}
    return {"scaleUp": up, "scaleDown": down}
