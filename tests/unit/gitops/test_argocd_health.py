"""Argo CD health checks (Lua) map each kind's status to Healthy/Progressing/Suspended/Degraded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lupa = pytest.importorskip("lupa")

GITOPS = Path(__file__).resolve().parents[3] / "deploy" / "gitops" / "argocd"


def _health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    to_lua = runtime.eval(
        "function(py) local function conv(v) "
        "  if python.builtins.isinstance(v, python.builtins.dict) then local t = {} "
        "    for k in python.iter(v) do t[k] = conv(v[k]) end return t "
        "  elseif python.builtins.isinstance(v, python.builtins.list) then local t = {} "
        "    for i = 0, python.builtins.len(v) - 1 do t[i + 1] = conv(v[i]) end return t "
        "  else return v end end return conv(py) end"
    )
    runtime.globals().obj = to_lua(obj)
    result = runtime.execute((GITOPS / script).read_text())
    return str(result["status"]), str(result["message"])


def _cond(type_: str, status: str, reason: str = "R", message: str = "m") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (None, "Progressing"),
        ("Pending", "Progressing"),
        ("Running", "Progressing"),
        ("Verifying", "Progressing"),
        ("AwaitingApproval", "Suspended"),
        ("Succeeded", "Healthy"),
        ("Cancelled", "Healthy"),
        ("Failed", "Degraded"),
        ("Blocked", "Degraded"),
    ],
)
def test_incident_phase_maps_to_health(phase: str | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"generation": 1}}
    if phase:
        obj["status"] = {"phase": phase, "currentStep": "restart-backend", "message": "rolling out"}
    status, message = _health("tradesenseincident.lua", obj)
    assert status == expected
    if phase:
        assert phase in message


@pytest.mark.parametrize(
    ("status", "spec", "expected"),
    [
        (None, {}, "Progressing"),
        ({"observedGeneration": 2, "conditions": [_cond("Ready", "True")]}, {"suspend": True}, "Suspended"),
        ({"observedGeneration": 2, "conditions": [_cond("Ready", "True")]}, {}, "Healthy"),
        ({"observedGeneration": 1, "conditions": [_cond("Ready", "True")]}, {}, "Progressing"),
        ({"observedGeneration": 2, "conditions": [_cond("Ready", "False", "InvalidSpec")]}, {}, "Degraded"),
        ({"observedGeneration": 2, "conditions": [_cond("Ready", "True"), _cond("LastBackupSucceeded", "False")]},
         {}, "Degraded"),
        ({"observedGeneration": 2, "conditions": [_cond("Ready", "True"), _cond("BackupStale", "True")]},
         {}, "Degraded"),
    ],
)
def test_backup_policy_conditions_map_to_health(
    status: dict[str, Any] | None, spec: dict[str, Any], expected: str
) -> None:
    obj: dict[str, Any] = {"metadata": {"generation": 2}, "spec": spec}
    if status is not None:
        obj["status"] = status
    assert _health("backuppolicy.lua", obj)[0] == expected


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([_cond("AbleToScale", "True"), _cond("ScalingActive", "True")], "Healthy"),
        ([_cond("AbleToScale", "True"), _cond("ScalingActive", "False", "Paused")], "Suspended"),
        ([_cond("AbleToScale", "False", "ConflictingAutoscaler")], "Degraded"),
        ([_cond("AbleToScale", "True"), _cond("ScalingActive", "False", "FailedGetMetrics")], "Degraded"),
        ([_cond("ScalingActive", "True"), _cond("FallbackActive", "True")], "Degraded"),
        ([], "Progressing"),
    ],
)
def test_scaling_policy_conditions_map_to_health(conditions: list[dict[str, str]], expected: str) -> None:
    obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": conditions}}
    assert _health("scalingpolicy.lua", obj)[0] == expected


def test_argocd_cm_patch_embeds_exactly_the_lua_files() -> None:
    cm = yaml.safe_load((GITOPS / "argocd-cm-patch.yaml").read_text())
    for kind, script in [
        ("TradeSenseIncident", "tradesenseincident.lua"),
        ("BackupPolicy", "backuppolicy.lua"),
        ("ScalingPolicy", "scalingpolicy.lua"),
    ]:
        assert cm["data"][f"resource.customizations.health.ops.tradesense.io_{kind}"] == (GITOPS / script).read_text()
