"""`kubectl tradesense report` on an incident the real operator ran (with an approval), against a real
Prometheus holding recorded series (backfilled with `promtool tsdb create-blocks-from openmetrics`, the way
a recording of production metrics is replayed): the PNG is a valid image of plausible size, embedded in the
HTML and linked from the Markdown, and every figure of the report matches the incident's own status."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from tests.integration.console.conftest import ConsoleEnv, png_size
from tests.integration.scaling.prometheus_support import require_prometheus
from tradesense_operator.console.view import format_duration
from tradesense_sandbox.runner import OperatorHandle
from tradesense_sandbox.servers.prometheus import PrometheusServer

STEP = 15  # seconds between recorded samples


class RecordedPrometheus(PrometheusServer):
    """A Prometheus whose TSDB starts with recorded series (OpenMetrics text) and scrapes nothing."""

    def __init__(self, recording: str) -> None:
        self.recording = recording
        super().__init__(())

    def prepare(self) -> None:
        super().prepare()
        source = self.workdir / "recording.om"
        source.write_text(self.recording)
        subprocess.run(["/usr/bin/promtool", "tsdb", "create-blocks-from", "openmetrics", str(source),
                        str(self.workdir / "data")], check=True, capture_output=True, timeout=120)


def recording(namespace: str, start: datetime, end: datetime, scaled_at: datetime) -> str:
    """Before the scale-out: 20 % errors, slow requests, 2.5 cores, 3 replicas; after it: 2 %, fast, 0.8, 5."""
    times = [start + timedelta(seconds=s) for s in range(0, int((end - start).total_seconds()), STEP)]
    # (family, type, labels, per-second increase or gauge value before / after the scale-out)
    series = [
        ("tradesense_http_requests", "counter", 'status="200"', 80, 98),
        ("tradesense_http_requests", "counter", 'status="500"', 20, 2),
        ("tradesense_http_request_duration_seconds", "histogram", 'le="0.1"', 30, 90),
        ("tradesense_http_request_duration_seconds", "histogram", 'le="0.5"', 60, 99),
        ("tradesense_http_request_duration_seconds", "histogram", 'le="2.5"', 100, 100),
        ("tradesense_http_request_duration_seconds", "histogram", 'le="+Inf"', 100, 100),
        ("container_cpu_usage_seconds", "counter", f'namespace="{namespace}",pod="backend-7d9f-abcde"', 2.5, 0.8),
        ("kube_deployment_status_replicas", "gauge", f'namespace="{namespace}",deployment="backend"', 3, 5),
    ]
    sample_name = {"counter": "{}_total", "histogram": "{}_bucket", "gauge": "{}"}
    lines: list[str] = []
    for family, kind, labels, before, after in series:
        if not any(line == f"# TYPE {family} {kind}" for line in lines):
            lines.append(f"# TYPE {family} {kind}")
        value = 0.0
        for t in times:
            rate = after if t >= scaled_at else before
            value = rate if kind == "gauge" else value + rate * STEP
            lines.append(f"{sample_name[kind].format(family)}{{{labels}}} {value} {int(t.timestamp())}")
    return "\n".join([*lines, "# EOF"]) + "\n"


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_report_from_status_with_a_metrics_chart(console_env: ConsoleEnv, console_operator: OperatorHandle,
                                                      tmp_path: Path) -> None:
    require_prometheus()
    env = console_env
    await env.awaiting_approval("db-slow", labels={"argocd.argoproj.io/instance": "tradesense-incidents"})
    await asyncio.sleep(1.2)  # the approval waits a measurable time
    assert (await env.run("approve", "db-slow", "scale-backend")).code == 0
    incident = await env.wait_phase("db-slow", "Succeeded", "Failed")
    assert incident["status"]["phase"] == "Succeeded", incident["status"]

    created = when(incident["metadata"]["creationTimestamp"])
    steps = {s["id"]: s for s in incident["status"]["steps"]}
    scaled_at = when(steps["scale-backend"]["startedAt"])
    prometheus = await asyncio.to_thread(
        RecordedPrometheus(recording(env.namespace, created - timedelta(minutes=15), created + timedelta(minutes=15),
                                     scaled_at)).start)
    try:
        html_report = await env.run("report", "db-slow", "-o", "html", "--prometheus", prometheus.url)
        chart = tmp_path / "db-slow.png"
        md_report = await env.run("report", "db-slow", "--prometheus", prometheus.url, "--chart", str(chart))
    finally:
        await asyncio.to_thread(prometheus.stop)

    assert html_report.code == 0, html_report.err
    embedded = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html_report.out)
    assert embedded, html_report.out[html_report.out.find("<h2>Metrics"):]
    png = base64.b64decode(embedded.group(1))
    width, height = png_size(png)
    assert 800 <= width <= 2000
    assert 400 <= height <= 2000
    assert len(png) > 20_000  # four panels with lines, not an empty frame
    assert "No data for" not in html_report.out  # every panel found its recorded series
    assert md_report.code == 0, md_report.err
    assert f"]({chart})" in md_report.out
    assert png_size(chart.read_bytes()) == (width, height)

    # the figures are the incident's own status, not Events
    first = min(when(s["startedAt"]) for s in steps.values())
    resolved = when(incident["status"]["resolvedAt"])
    wait = when(steps["scale-backend"]["startedAt"]) - when(steps["check-pods"]["finishedAt"])
    assert wait >= timedelta(seconds=1)
    md = md_report.out
    assert f"| Time to first action | {format_duration(first - created)} |" in md
    assert f"| Time to mitigation | {format_duration(resolved - created)} |" in md
    assert f"| Deadline | met with {format_duration(when(incident['status']['respondBy']) - resolved)} to spare |" in md
    assert "| Created by | GitOps (argocd.argoproj.io/instance=tradesense-incidents) |" in md
    assert "| Approved steps | scale-backend |" in md
    row = next(line for line in md.splitlines() if line.startswith("| 2 | scale-backend |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:5] == ["scale", "deployment/backend", "Succeeded"]
    assert cells[8] == f"{steps['scale-backend']['attempts']}/3"
    assert cells[9] == format_duration(wait)
    assert "- **Runbook line:** custom step 2: scale" in md
    assert "- **Approval:** approved; waited " + format_duration(wait) in md
    assert "  - `pods`: 7" in md  # check-pods' evidence
