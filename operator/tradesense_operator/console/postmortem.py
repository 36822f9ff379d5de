"""Assembling a postmortem: the incident's facts, and with Prometheus reachable, its metrics chart.

Owns the order of the work (facts from status, window plus margins, range queries, PNG, rendering) and
where the PNG goes for Markdown (a file next to the report, linked); HTML embeds it. It must not read
Events (they expire) nor talk to the API server itself: the caller passes the incident body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tradesense_operator.console.chart import Boundary, ChartUnavailable, render_png
from tradesense_operator.console.panels import panels_for
from tradesense_operator.console.prometheus_range import fetch_panels
from tradesense_operator.console.report import ReportFacts, build_facts, render_html, render_markdown
from tradesense_operator.console.view import incident_view

MIN_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Postmortem:
    """The rendered report, and the chart it shows (None without Prometheus)."""

    text: str
    chart_png: bytes | None
    chart_path: Path | None


def boundaries(facts: ReportFacts) -> list[Boundary]:
    """A marker where each step started (labelled with its id) and where the last one finished."""
    marks = [Boundary(f.started, f.step.id) for f in facts.steps if f.started is not None]
    ends = [f.finished for f in facts.steps if f.finished is not None]
    if ends:
        marks.append(Boundary(max(ends), "end"))
    return marks


def view_range(window: tuple[datetime, datetime]) -> tuple[datetime, datetime]:
    """The window plus margins of a fifth of its length on each side, at least MIN_MARGIN."""
    margin = max(MIN_MARGIN, (window[1] - window[0]) / 5)
    return window[0] - margin, window[1] + margin


async def chart_for(facts: ReportFacts, prometheus: str) -> tuple[bytes | None, str]:
    """The PNG and a note (which panels had no data or failed), or (None, why not)."""
    if facts.window is None:
        return None, "No metrics: the incident has no time window yet."
    shown = view_range(facts.window)
    data = await fetch_panels(prometheus, panels_for(facts.view.spec), *shown)
    failed = [f"{d.panel.title}: {d.error}" for d in data if d.error]
    if all(d.error for d in data):
        return None, f"No metrics: Prometheus at {prometheus} answered no panel ({'; '.join(failed)})."
    try:
        png = render_png(data, window=facts.window, view_range=shown, boundaries=boundaries(facts),
                         title=f"tsi/{facts.view.name}: {facts.view.spec.runbook.value}")
    except ChartUnavailable as exc:
        return None, f"No metrics chart: {exc}."
    empty = [d.panel.title for d in data if not d.error and not any(d.series.values())]
    notes = [f"Metrics from {prometheus}; the shaded band is the incident window, dashed lines mark step starts."]
    if empty:
        notes.append(f"No data for: {', '.join(empty)}.")
    if failed:
        notes.append(f"Failed: {'; '.join(failed)}.")
    return png, " ".join(notes)


async def build_postmortem(body: Mapping[str, Any], *, output: str, now: datetime, prometheus: str | None = None,
                           chart_path: Path | None = None) -> Postmortem:
    """Render the report as `md` or `html`; for Markdown the chart is written to `chart_path` and linked."""
    facts = build_facts(incident_view(body), now=now)
    png, note = (await chart_for(facts, prometheus)) if prometheus else (None, "")
    if output == "html":
        return Postmortem(render_html(facts, chart_png=png, chart_note=note), png, None)
    written: Path | None = None
    if png is not None:
        written = chart_path or Path(f"{facts.view.name}-metrics.png")
        written.write_bytes(png)
    link = written.name if written is not None and chart_path is None else (str(written) if written else None)
    return Postmortem(render_markdown(facts, chart_link=link, chart_note=note), png, written)
