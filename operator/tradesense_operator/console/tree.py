"""`kubectl tradesense get` as text: one incident as a tree of steps, or the namespace overview.

Pure functions from views (and policy bodies) to a string, so every layout is table-tested; colour is a
flag the caller sets from `isatty()` and NO_COLOR, never decided here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tradesense_operator.api.v1alpha1.incident import IncidentPhase, StepState
from tradesense_operator.console.view import IncidentView, StepView, format_duration, parse_time

_ICONS: dict[StepState, str] = {
    StepState.PENDING: "○",
    StepState.AWAITING_APPROVAL: "⏸",
    StepState.RUNNING: "◌",
    StepState.SUCCEEDED: "✔",
    StepState.FAILED: "✖",
    StepState.SKIPPED: "↷",
    StepState.WOULD_RUN: "◇",
    StepState.CANCELLED: "⊘",
}
_GREEN, _RED, _YELLOW, _GREY, _BOLD, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[90m", "\x1b[1m", "\x1b[0m"
_STATE_COLOURS: dict[str, str] = {
    StepState.SUCCEEDED: _GREEN, StepState.FAILED: _RED, StepState.AWAITING_APPROVAL: _YELLOW,
    StepState.RUNNING: _YELLOW, StepState.SKIPPED: _GREY, StepState.CANCELLED: _GREY, StepState.PENDING: _GREY,
    IncidentPhase.SUCCEEDED: _GREEN, IncidentPhase.FAILED: _RED, IncidentPhase.AWAITING_APPROVAL: _YELLOW,
    IncidentPhase.RUNNING: _YELLOW, IncidentPhase.BLOCKED: _RED, IncidentPhase.CANCELLED: _GREY,
}
EVIDENCE_WIDTH = 60


def _paint(text: str, colour: str | None, enabled: bool) -> str:
    return f"{colour}{text}{_RESET}" if enabled and colour else text


def short_evidence(evidence: Mapping[str, str], width: int = EVIDENCE_WIDTH) -> str:
    """`key=value` pairs in key order, clipped to `width` characters with an ellipsis."""
    text = " ".join(f"{key}={value}" for key, value in sorted(evidence.items()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _attempts(step: StepView) -> str:
    if step.status.attempts == 0:
        return ""
    return f"{step.status.attempts}/{step.planned.retries + 1} attempts"


def _step_line(step: StepView, incident: str, *, last: bool, now: datetime, colour: bool, width: int) -> list[str]:
    branch = "└──" if last else "├──"
    cont = "   " if last else "│  "
    state = step.state
    duration = step.duration(now)
    cells = [
        f"{_ICONS[state]} {step.id.ljust(width)}",
        _paint(state.value.ljust(16), _STATE_COLOURS.get(state), colour),
        _attempts(step).ljust(12),
        (format_duration(duration) if duration is not None else "").ljust(7),
        short_evidence(step.status.evidence),
    ]
    lines = [f"{branch} " + "  ".join(cells).rstrip()]
    waits = step.waits_for(now, incident)
    if waits:
        lines.append(f"{cont}    waits for: {waits}")
    elif state is StepState.FAILED and step.status.message:
        lines.append(f"{cont}    {_paint(step.status.message, _RED, colour)}")
    return lines


def render_incident(view: IncidentView, *, now: datetime, colour: bool = False) -> str:
    """The tree of one incident: header, summary and one branch per step (plan order)."""
    spec, status = view.spec, view.status
    flags = [f for f, on in (("DRY RUN", spec.dry_run), ("cancel requested", spec.cancel and not view.terminal)) if on]
    header = (f"{_paint(f'tsi/{view.name}', _BOLD, colour)}  runbook {spec.runbook.value}  severity {spec.severity.value}"
              f"  phase {_paint(view.phase.value, _STATE_COLOURS.get(view.phase), colour)}"
              f"  respond by {view.respond_by_text(now)}" + "".join(f"  [{f}]" for f in flags))
    lines = [header]
    if status.message:
        lines.append(f"  {status.message}")
    if not view.steps:
        lines.append("└── (no plan yet)")
        return "\n".join(lines)
    width = max(len(s.id) for s in view.steps)
    for index, step in enumerate(view.steps):
        lines.extend(_step_line(step, view.name, last=index == len(view.steps) - 1, now=now, colour=colour, width=width))
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _age(when: datetime | None, now: datetime) -> str:
    return format_duration(now - when) if when is not None else "-"


def _relative(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    return f"in {format_duration(when - now)}" if when >= now else f"{format_duration(now - when)} ago"


def render_overview(
    views: Sequence[IncidentView],
    backup_policies: Sequence[Mapping[str, Any]],
    scaling_policies: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    colour: bool = False,
) -> str:
    """All incidents (in the order given, newest first by the caller) and the policies' status."""
    sections: list[str] = []
    rows: list[tuple[str, ...]]
    if views:
        rows = [("NAME", "RUNBOOK", "SEVERITY", "PHASE", "STEPS", "CURRENT", "RESPOND-BY", "AGE")]
        for v in views:
            done = sum(s.state in (StepState.SUCCEEDED, StepState.SKIPPED, StepState.WOULD_RUN) for s in v.steps)
            rows.append((f"tsi/{v.name}", v.spec.runbook.value, v.spec.severity.value, v.phase.value,
                         f"{done}/{len(v.steps)}", v.status.current_step or "-", v.respond_by_text(now),
                         _age(v.created, now)))
        lines = _table(rows)
        if colour:  # paint the phase cell after alignment so escape codes do not skew the columns
            for i, v in enumerate(views, start=1):
                lines[i] = lines[i].replace(f" {v.phase.value} ",
                                            f" {_paint(v.phase.value, _STATE_COLOURS.get(v.phase), True)} ", 1)
        sections.append("\n".join(lines))
    else:
        sections.append("No incidents.")
    if backup_policies:
        rows = [("BACKUPPOLICY", "LAST-BACKUP", "SIZE", "NEXT-RUN", "LAST-FAILURE")]
        for body in backup_policies:
            st = body.get("status") or {}
            rows.append((str((body.get("metadata") or {}).get("name", "")),
                         _relative(parse_time(st.get("lastSuccessfulBackup")), now), str(st.get("lastBackupSize") or "-"),
                         _relative(parse_time(st.get("nextScheduleTime")), now), str(st.get("lastFailure") or "-")[:60]))
        sections.append("\n".join(_table(rows)))
    if scaling_policies:
        rows = [("SCALINGPOLICY", "TARGET", "CURRENT", "DESIRED", "MIN-MAX", "LAST-SCALE")]
        for body in scaling_policies:
            spec, st = body.get("spec") or {}, body.get("status") or {}
            target = (spec.get("targetRef") or {}).get("name", "-")
            current, desired = st.get("currentReplicas"), st.get("desiredReplicas")
            rows.append((str((body.get("metadata") or {}).get("name", "")), f"deployment/{target}",
                         "-" if current is None else str(current), "-" if desired is None else str(desired),
                         f"{spec.get('minReplicas', '-')}-{spec.get('maxReplicas', '-')}",
                         _relative(parse_time(st.get("lastScaleTime")), now)))
        sections.append("\n".join(_table(rows)))
    return "\n\n".join(sections)
