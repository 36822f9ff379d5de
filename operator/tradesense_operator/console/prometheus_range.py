"""Range queries against Prometheus for the postmortem's chart (`/api/v1/query_range`).

Owns the HTTP call and the parsing of matrix results into plain (timestamp, value) series. The operator's
own Prometheus client only does instant queries for scaling; this one belongs to the console and must not
be used by the operator. A panel whose query fails is reported, not fatal: the report still renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from tradesense_operator.console.panels import Panel

MAX_POINTS = 600  # Prometheus refuses more than 11,000 points per series; a chart needs far fewer


@dataclass(frozen=True)
class PanelData:
    """The series of one panel (label value -> points), or the error that prevented them."""

    panel: Panel
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    error: str = ""


def step_seconds(start: datetime, end: datetime) -> float:
    """A resolution giving at most MAX_POINTS points, never finer than 1 s."""
    return max(1.0, math.ceil((end - start).total_seconds() / MAX_POINTS))


def parse_matrix(payload: Any, legend: str) -> dict[str, list[tuple[float, float]]]:
    """Series of a query_range answer, keyed by the `legend` label (or the whole label set)."""
    result = ((payload or {}).get("data") or {}).get("result") or []
    series: dict[str, list[tuple[float, float]]] = {}
    for item in result:
        labels = item.get("metric") or {}
        key = str(labels.get(legend, "")) if legend else ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        points = [(float(ts), float(value)) for ts, value in item.get("values") or []]
        series[key] = [(ts, v) for ts, v in points if math.isfinite(v)]
    return series


async def fetch_panels(url: str, panels: list[Panel], start: datetime, end: datetime,
                       *, timeout: float = 15.0) -> list[PanelData]:
    """Every panel's series over [start, end]; network or query errors are recorded per panel."""
    step = step_seconds(start, end)
    results: list[PanelData] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for panel in panels:
            params = {"query": panel.query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
                      "step": f"{step:g}"}
            try:
                async with session.get(f"{url.rstrip('/')}/api/v1/query_range", params=params) as response:
                    payload = await response.json(content_type=None)
                if payload.get("status") != "success":
                    results.append(PanelData(panel, error=str(payload.get("error") or f"HTTP {response.status}")))
                    continue
                results.append(PanelData(panel, parse_matrix(payload, panel.legend)))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                results.append(PanelData(panel, error=f"{type(exc).__name__}: {exc}"))
    return results
