"""The `get` tree and overview as text: step lines, what each waits for, the respondBy countdown, colour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.unit.console.bodies import incident, slow_queries, step

from tradesense_operator.console.tree import render_incident, render_overview, short_evidence
from tradesense_operator.console.view import format_duration, incident_view, newest_first

NOW = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)


def test_tree_of_an_incident_waiting_for_approval() -> None:
    text = render_incident(incident_view(slow_queries()), now=NOW)

    assert text.splitlines() == [
        "tsi/db-slow  runbook slow-queries  severity P2  phase AwaitingApproval  respond by 45m left",
        "  step create-index is destructive",
        "├── ✔ slow-queries     Succeeded         1/3 attempts  2s       statements=3 worstMs=812",
        "├── ✔ missing-indexes  Succeeded         2/3 attempts  1m3s     tables=trades",
        "├── ⏸ create-index     AwaitingApproval",
        "│      waits for: approval: kubectl tradesense approve db-slow create-index",
        "└── ○ analyze          Pending",
    ]


@pytest.mark.parametrize(("status", "expected"), [
    ({"state": "Running", "attempts": 1, "startedAt": "2026-03-01T10:14:00Z", "message": "2/3 pods Ready"},
     "waits for: 2/3 pods Ready"),
    ({"state": "Running", "attempts": 1, "startedAt": "2026-03-01T10:14:00Z", "message": "attempt 1/3 failed: x",
      "nextAttemptAt": "2026-03-01T10:15:30Z"}, "waits for: retry in 30s (attempt 2/3)"),
    ({"state": "Failed", "attempts": 3, "startedAt": "2026-03-01T10:10:00Z", "finishedAt": "2026-03-01T10:12:00Z",
      "message": "failed after 3/3 attempts: timeout"}, "failed after 3/3 attempts: timeout"),
])
def test_the_line_under_a_step_says_what_it_waits_for_or_why_it_failed(status: dict[str, str], expected: str) -> None:
    state = status.pop("state")
    body = incident(steps=[step("rollout", "rollout-status", state, **status)])

    lines = render_incident(incident_view(body), now=NOW).splitlines()

    assert lines[-1].strip() == expected


@pytest.mark.parametrize(("phase", "resolved", "expected"), [
    ("Running", None, "respond by 45m left"),
    ("Succeeded", "2026-03-01T10:20:00Z", "respond by met"),
    ("Succeeded", "2026-03-01T11:02:00Z", "respond by missed by 2m"),
    ("Failed", None, "respond by -"),
])
def test_respond_by_countdown(phase: str, resolved: str | None, expected: str) -> None:
    body = incident(phase=phase, **({"resolvedAt": resolved} if resolved else {}))

    assert expected in render_incident(incident_view(body), now=NOW).splitlines()[0]


def test_respond_by_overdue() -> None:
    header = render_incident(incident_view(incident()), now=NOW + timedelta(hours=1, minutes=5)).splitlines()[0]
    assert "respond by overdue by 20m" in header


def test_colour_only_when_asked() -> None:
    plain = render_incident(incident_view(slow_queries()), now=NOW)
    painted = render_incident(incident_view(slow_queries()), now=NOW, colour=True)

    assert "\x1b[" not in plain
    assert "\x1b[32mSucceeded" in painted
    assert "\x1b[33mAwaitingApproval" in painted


def test_overview_lists_incidents_newest_first_and_policies() -> None:
    views = newest_first([incident_view(incident("old", created="2026-03-01T09:00:00Z")), incident_view(slow_queries())])
    backup = {"metadata": {"name": "nightly"}, "status": {"lastSuccessfulBackup": "2026-03-01T02:00:00Z",
                                                          "lastBackupSize": "1.2 GiB",
                                                          "nextScheduleTime": "2026-03-02T02:00:00Z"}}
    scaling = {"metadata": {"name": "backend"}, "spec": {"targetRef": {"name": "backend"}, "minReplicas": 2,
                                                         "maxReplicas": 10},
               "status": {"currentReplicas": 3, "desiredReplicas": 5, "lastScaleTime": "2026-03-01T10:10:00Z"}}

    text = render_overview(views, [backup], [scaling], now=NOW)

    assert text.split("\n\n") == [
        ("NAME          RUNBOOK        SEVERITY   PHASE              STEPS   CURRENT        RESPOND-BY   AGE\n"
        "tsi/db-slow   slow-queries   P2         AwaitingApproval   2/4     create-index   45m left     15m\n"
        "tsi/old       slow-queries   P2         Running            0/0     -              45m left     1h15m"),
        ("BACKUPPOLICY   LAST-BACKUP   SIZE      NEXT-RUN    LAST-FAILURE\n"
        "nightly        8h15m ago     1.2 GiB   in 15h45m   -"),
        ("SCALINGPOLICY   TARGET               CURRENT   DESIRED   MIN-MAX   LAST-SCALE\n"
        "backend         deployment/backend   3         5         2-10      5m ago"),
    ]


def test_overview_without_incidents_or_policies() -> None:
    assert render_overview([], [], [], now=NOW) == "No incidents."


@pytest.mark.parametrize(("seconds", "expected"), [
    (0, "0s"), (59, "59s"), (60, "1m"), (200, "3m20s"), (3600, "1h"), (7500, "2h5m"), (86400 * 3 + 3600 * 4, "3d4h"),
    (-5, "0s"),
])
def test_format_duration(seconds: int, expected: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == expected


def test_short_evidence_is_sorted_and_clipped() -> None:
    assert short_evidence({"b": "2", "a": "1"}) == "a=1 b=2"
    assert short_evidence({"k": "x" * 100}, width=10) == "k=xxxxxxx…"
