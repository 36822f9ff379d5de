"""The WORKERS rule: a fixed budget of worker threads (e.g. DB connections) shared by the replicas.

The runbook's high-CPU mitigation scales out AND reduces WORKERS; doing both from one rule keeps the total
(replicas × workers) inside the budget the database can serve.
Pure arithmetic; must not patch the Deployment's env (services/scaling/workload does).
"""

from __future__ import annotations

from tradesense_operator.api.v1alpha1.scaling import WorkersSpec


def workers_per_pod(spec: WorkersSpec, replicas: int) -> int | None:
    """clamp(totalBudget // replicas, min, max); None at zero replicas (nothing runs, nothing to set)."""
    if replicas <= 0:
        return None
    return max(spec.min, min(spec.max, spec.total_budget // replicas))
