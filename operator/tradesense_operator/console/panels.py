"""Which metrics a postmortem plots for a runbook, as PromQL over the incident's own target.

The same signals the alert rules and the runbook watch (deploy/monitoring): error rate, p95 latency,
CPU and replicas of the target Deployments, and the cache hit rate where the runbook touches the cache.
Pure: queries only; fetching is `console.prometheus_range`, drawing is `console.chart`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.incident import Runbook, TradeSenseIncidentSpec

CACHE_RUNBOOKS = frozenset({Runbook.PERFORMANCE_DEGRADATION, Runbook.CACHE_HIT_RATE_LOW, Runbook.HIGH_CPU,
                            Runbook.SLOW_QUERIES})


@dataclass(frozen=True)
class Panel:
    """One plot: a title, its PromQL and the unit on its axis; `legend` names the label that splits series."""

    title: str
    query: str
    unit: str
    legend: str = ""


def panels_for(spec: TradeSenseIncidentSpec) -> list[Panel]:
    """The runbook's key metrics for the incident's namespace and workloads."""
    t = spec.target
    ns = t.namespace
    workloads = "|".join(sorted({t.backend, t.frontend}))
    panels = [
        Panel("Error rate (5xx share)",
              'sum(rate(tradesense_http_requests_total{status=~"5.."}[5m])) / sum(rate(tradesense_http_requests_total[5m]))',
              "ratio"),
        Panel("p95 latency",
              "histogram_quantile(0.95, sum(rate(tradesense_http_request_duration_seconds_bucket[5m])) by (le))",
              "seconds"),
        Panel(f"CPU of {t.backend}",
              f'sum(rate(container_cpu_usage_seconds_total{{namespace="{ns}",pod=~"{t.backend}-.*"}}[5m]))', "cores"),
        Panel("Replicas",
              f'kube_deployment_status_replicas{{namespace="{ns}",deployment=~"{workloads}"}}', "pods", "deployment"),
    ]
    if spec.runbook in CACHE_RUNBOOKS:
        panels.append(Panel("Cache hit rate",
                            "sum(rate(tradesense_cache_hits_total[5m])) / sum(rate(tradesense_cache_requests_total[5m]))",
                            "ratio"))
    return panels
