"""The postmortem from status alone: summary figures, who created it, approval waits, retries, both formats."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from tests.unit.console.bodies import incident, slow_queries, step

from tradesense_operator.console.postmortem import boundaries, view_range
from tradesense_operator.console.prometheus_range import parse_matrix, step_seconds
from tradesense_operator.console.report import build_facts, created_by, render_html, render_markdown
from tradesense_operator.console.view import incident_view

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def resolved_slow_queries() -> dict[str, object]:
    body = slow_queries(phase="Succeeded", approvals=["create-index"], resolvedAt="2026-03-01T10:09:00Z",
                        message="all 4 steps completed")
    steps = body["status"]["steps"]  # type: ignore[index]
    steps[2].update(state="Succeeded", attempts=1, startedAt="2026-03-01T10:04:10Z",
                    finishedAt="2026-03-01T10:08:00Z", message="index created", evidence={"index": "idx"})
    steps[3].update(state="Succeeded", attempts=1, startedAt="2026-03-01T10:08:00Z",
                    finishedAt="2026-03-01T10:08:30Z", message="analyzed")
    return body


def test_summary_figures_come_from_status() -> None:
    facts = build_facts(incident_view(resolved_slow_queries()), now=NOW)
    md = render_markdown(facts)

    for row in ("| Runbook | slow-queries |", "| Severity | P2 |", "| Outcome | Succeeded: all 4 steps completed |",
                "| Created | 2026-03-01 10:00:00Z |", "| Time to first action | 5s |",
                "| Time to mitigation | 9m |", "| Respond by | 2026-03-01 11:00:00Z (1h for P2) |",
                "| Deadline | met with 51m to spare |", "| Approved steps | create-index |"):
        assert row in md, row
    assert ("| 3 | create-index | pg-create-index | - | Succeeded | 2026-03-01 10:04:10Z | 2026-03-01 10:08:00Z "
            "| 3m50s | 1/3 | 3m |") in md  # waited from missing-indexes' end (10:01:10) to its start
    assert "- **Approval:** approved; waited 3m" in md
    assert "- **Retries:** 1" in md  # missing-indexes took two attempts
    assert "- **Runbook line:** runbook line of create-index" in md
    assert "  - `worstMs`: 812" in md
    assert "No metrics: run with --prometheus URL to plot them." in md
    assert facts.window == (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), datetime(2026, 3, 1, 10, 9, tzinfo=UTC))


def test_an_unresolved_incident_has_no_mitigation_and_a_window_to_now() -> None:
    facts = build_facts(incident_view(slow_queries()), now=NOW)

    assert facts.time_to_mitigation is None
    assert facts.deadline_verdict == "not mitigated"
    assert facts.window is not None
    assert facts.window[1] == NOW


def test_a_failed_step_reports_its_retries_and_reason() -> None:
    body = incident(phase="Failed", steps=[step("probe", "http-probe", "Failed", attempts=3,
                                                startedAt="2026-03-01T10:00:00Z", finishedAt="2026-03-01T10:03:00Z",
                                                message="failed after 3/3 attempts: HTTP 503")])
    md = render_markdown(build_facts(incident_view(body), now=NOW))

    assert "- **Retries:** 2 (last reason: failed after 3/3 attempts: HTTP 503)" in md
    assert "| Deadline | not mitigated |" in md


@pytest.mark.parametrize(("metadata", "spec", "expected"), [
    ({}, {"source": {"kind": "alertmanager", "alertname": "HighErrorRate", "fingerprint": "abc"}},
     "alert HighErrorRate (fingerprint abc)"),
    ({"labels": {"argocd.argoproj.io/instance": "incidents"}}, {},
     "GitOps (argocd.argoproj.io/instance=incidents)"),
    ({}, {"source": {"kind": "gitops"}}, "GitOps"),
    ({"managedFields": [{"manager": "kubectl-client-side-apply"}, {"manager": "tradesense-operator"},
                        {"manager": "kubectl-tradesense"}]}, {}, "manual (a person via kubectl-client-side-apply)"),
    ({"managedFields": [{"manager": "argocd-controller"}]}, {}, "GitOps (argocd-controller)"),
    ({}, {}, "manual (a person)"),
])
def test_who_created_it(metadata: dict[str, object], spec: dict[str, object], expected: str) -> None:
    assert created_by(incident_view(incident(metadata=metadata, spec=spec))) == expected


def test_html_is_escaped_and_embeds_the_chart() -> None:
    body = resolved_slow_queries()
    body["status"]["steps"][0]["message"] = "<script>alert(1)</script>"  # type: ignore[index]
    page = render_html(build_facts(incident_view(body), now=NOW), chart_png=b"\x89PNG-bytes")

    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    encoded = base64.b64encode(b"\x89PNG-bytes").decode()
    assert f"src='data:image/png;base64,{encoded}'" in page


def test_markdown_links_the_chart() -> None:
    md = render_markdown(build_facts(incident_view(resolved_slow_queries()), now=NOW), chart_link="db-slow-metrics.png",
                         chart_note="Metrics from http://prom")
    assert "![Key metrics of the incident window, step boundaries marked](db-slow-metrics.png)" in md


def test_chart_boundaries_and_margins() -> None:
    facts = build_facts(incident_view(resolved_slow_queries()), now=NOW)

    assert [(b.at.strftime("%H:%M:%S"), b.label) for b in boundaries(facts)] == [
        ("10:00:05", "slow-queries"), ("10:00:07", "missing-indexes"), ("10:04:10", "create-index"),
        ("10:08:00", "analyze"), ("10:08:30", "end")]
    assert facts.window is not None
    start, end = view_range(facts.window)
    assert (start.strftime("%H:%M"), end.strftime("%H:%M")) == ("09:55", "10:14")  # 5 min margin at least


def test_range_query_parsing_and_resolution() -> None:
    payload = {"status": "success", "data": {"result": [
        {"metric": {"deployment": "backend"}, "values": [[1.0, "3"], [2.0, "NaN"], [3.0, "5"]]}]}}
    assert parse_matrix(payload, "deployment") == {"backend": [(1.0, 3.0), (3.0, 5.0)]}
    assert step_seconds(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)) == 6.0
