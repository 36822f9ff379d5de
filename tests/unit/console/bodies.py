"""Incident bodies as the API server returns them, for the console's table tests."""

from __future__ import annotations

from typing import Any

T0 = "2026-03-01T10:00:00Z"


def step(step_id: str, action: str, state: str = "Pending", **status: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plan entry, status entry) for one step; `destructive`/`retries`/`description` go to the plan."""
    planned = {"id": step_id, "action": action, "target": status.pop("target", ""),
               "destructive": status.pop("destructive", False), "retries": status.pop("retries", 2),
               "description": status.pop("description", f"runbook line of {step_id}")}
    return planned, {"id": step_id, "action": action, "state": state, **status}


def incident(name: str = "db-slow", *, phase: str = "Running", steps: list[tuple[dict[str, Any], dict[str, Any]]]
             | None = None, approvals: list[str] | None = None, cancel: bool = False, created: str = T0,
             resource_version: str = "42", metadata: dict[str, Any] | None = None, spec: dict[str, Any] | None = None,
             **status: Any) -> dict[str, Any]:
    steps = steps or []
    return {
        "apiVersion": "ops.tradesense.io/v1alpha1", "kind": "TradeSenseIncident",
        "metadata": {"name": name, "namespace": "tradesense", "creationTimestamp": created,
                     "resourceVersion": resource_version, **(metadata or {})},
        "spec": {"runbook": "slow-queries", "severity": "P2", "approvals": approvals or [], "cancel": cancel,
                 **(spec or {})},
        "status": {"phase": phase, "plan": [p for p, _ in steps], "steps": [s for _, s in steps],
                   "respondBy": "2026-03-01T11:00:00Z", **status},
    }


def slow_queries(phase: str = "AwaitingApproval", **kwargs: Any) -> dict[str, Any]:
    """slow-queries after its first two steps, parked before the index creation."""
    return incident(phase=phase, steps=[
        step("slow-queries", "pg-slow-queries", "Succeeded", attempts=1, startedAt="2026-03-01T10:00:05Z",
             finishedAt="2026-03-01T10:00:07Z", message="3 statements over 100ms",
             evidence={"statements": "3", "worstMs": "812"}),
        step("missing-indexes", "pg-missing-indexes", "Succeeded", attempts=2, startedAt="2026-03-01T10:00:07Z",
             finishedAt="2026-03-01T10:01:10Z", message="1 table needs an index", evidence={"tables": "trades"}),
        step("create-index", "pg-create-index", "AwaitingApproval", destructive=True,
             message="destructive step: add 'create-index' to spec.approvals to run it"),
        step("analyze", "pg-analyze"),
    ], **{"message": "step create-index is destructive", "startedAt": "2026-03-01T10:00:05Z",
          "currentStep": "create-index", **kwargs})
