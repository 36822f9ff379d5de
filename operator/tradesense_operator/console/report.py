"""The postmortem: facts derived from an incident's own status, rendered as Markdown or HTML.

Everything comes from the object itself (plan, step status, spec, metadata), never from Events, so the
report is the same after the cluster expired them. Approval waits are derived: a destructive step
waits from the moment the previous step finished (or execution began) until its first attempt starts.
Pure: the caller supplies `now`, the body and, optionally, the chart's PNG bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tradesense_operator.api.v1alpha1.incident import StepState
from tradesense_operator.console.view import IncidentView, StepView, format_duration

OPERATOR_MANAGERS = frozenset({"tradesense-operator", "kopf", "kubectl-tradesense"})
GITOPS_LABELS = ("argocd.argoproj.io/instance", "app.kubernetes.io/instance", "kustomize.toolkit.fluxcd.io/name")
GITOPS_MANAGERS = ("argocd", "flux", "kustomize-controller", "helm-controller")


@dataclass(frozen=True)
class StepFacts:
    """One row of the timeline, with what the report says about it."""

    number: int
    step: StepView
    started: datetime | None
    finished: datetime | None
    duration: timedelta | None
    approval_wait: timedelta | None
    retries: int

    @property
    def runbook_line(self) -> str:
        """The runbook line this step carried out (frozen in the plan from the catalogue)."""
        return self.step.planned.description


@dataclass(frozen=True)
class ReportFacts:
    """The summary figures of a postmortem."""

    view: IncidentView
    created_by: str
    created: datetime | None
    first_action: datetime | None
    mitigated: datetime | None
    window: tuple[datetime, datetime] | None
    steps: tuple[StepFacts, ...]

    @property
    def time_to_first_action(self) -> timedelta | None:
        """Creation to the first step's first attempt."""
        return self.first_action - self.created if self.first_action and self.created else None

    @property
    def time_to_mitigation(self) -> timedelta | None:
        """Creation to Succeeded."""
        return self.mitigated - self.created if self.mitigated and self.created else None

    @property
    def response_window(self) -> timedelta | None:
        """The severity's response time: creation to respondBy."""
        deadline = self.view.status.respond_by
        return deadline - self.created if deadline and self.created else None

    @property
    def deadline_verdict(self) -> str:
        """'met with 4m to spare', 'missed by 2m', or 'not mitigated'."""
        deadline = self.view.status.respond_by
        if self.mitigated is None or deadline is None:
            return "not mitigated"
        if self.mitigated <= deadline:
            return f"met with {format_duration(deadline - self.mitigated)} to spare"
        return f"missed by {format_duration(self.mitigated - deadline)}"


def created_by(view: IncidentView) -> str:
    """Alert, GitOps or a person, from spec.source, labels and the managers that wrote the object."""
    source = view.spec.source
    if source.kind == "alertmanager" or source.alertname:
        detail = ", ".join(p for p in (f"fingerprint {source.fingerprint}" if source.fingerprint else "",
                                       source.url or "") if p)
        return f"alert {source.alertname or '(unnamed)'}" + (f" ({detail})" if detail else "")
    gitops_label = next((f"{k}={view.labels[k]}" for k in GITOPS_LABELS if k in view.labels), None)
    gitops_manager = next((m for m in view.managers if m.startswith(GITOPS_MANAGERS)), None)
    if source.kind == "gitops" or gitops_label or gitops_manager:
        found = gitops_label or gitops_manager
        return "GitOps" + (f" ({found})" if found else "")
    people = [m for m in dict.fromkeys(view.managers) if m not in OPERATOR_MANAGERS]
    via = f" via {', '.join(people)}" if people else ""
    return f"{source.kind} (a person{via})" if source.kind == "manual" else f"{source.kind}{via}"


def _approval_wait(step: StepView, previous_end: datetime | None) -> timedelta | None:
    if not step.planned.destructive or step.status.started_at is None or previous_end is None:
        return None
    return max(timedelta(0), step.status.started_at - previous_end)


def build_facts(view: IncidentView, *, now: datetime) -> ReportFacts:
    """Derive the summary and the per-step facts from the incident's status."""
    status = view.status
    rows: list[StepFacts] = []
    previous_end = status.started_at
    for number, step in enumerate(view.steps, start=1):
        rows.append(StepFacts(
            number=number, step=step, started=step.status.started_at, finished=step.status.finished_at,
            duration=step.duration(now), approval_wait=_approval_wait(step, previous_end),
            retries=max(0, step.status.attempts - 1),
        ))
        previous_end = step.status.finished_at or previous_end
    starts = [s.status.started_at for s in view.steps if s.status.started_at is not None]
    ends = [t for t in (*(s.status.finished_at for s in view.steps), status.resolved_at) if t is not None]
    first = min(starts) if starts else None
    begin = view.created or first
    window = (begin, max(ends) if ends and view.terminal else now) if begin else None
    return ReportFacts(view=view, created_by=created_by(view), created=view.created, first_action=first,
                       mitigated=status.resolved_at, window=window, steps=tuple(rows))


# -- rendering -------------------------------------------------------------------------------------


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _span(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "-"


def summary_rows(facts: ReportFacts) -> list[tuple[str, str]]:
    """The summary as (label, value) pairs, shared by both formats."""
    view, spec = facts.view, facts.view.spec
    respond = f"{_time(view.status.respond_by)} ({_span(facts.response_window)} for {spec.severity.value})"
    return [
        ("Runbook", spec.runbook.value + (" (dry run)" if spec.dry_run else "")),
        ("Severity", spec.severity.value),
        ("Outcome", f"{view.phase.value}: {view.status.message}" if view.status.message else view.phase.value),
        ("Created by", facts.created_by),
        ("Created", _time(facts.created)),
        ("Time to first action", _span(facts.time_to_first_action)),
        ("Time to mitigation", _span(facts.time_to_mitigation)),
        ("Respond by", respond),
        ("Deadline", facts.deadline_verdict),
        ("Approved steps", ", ".join(spec.approvals) or "-"),
    ]


_TIMELINE_HEAD = ("#", "Step", "Action", "Target", "State", "Started", "Finished", "Duration", "Attempts",
                  "Approval wait")


def timeline_rows(facts: ReportFacts) -> list[tuple[str, ...]]:
    """One row per step in plan order."""
    return [(str(f.number), f.step.id, f.step.planned.action.value, f.step.planned.target or "-",
             f.step.state.value, _time(f.started), _time(f.finished), _span(f.duration),
             f"{f.step.status.attempts}/{f.step.planned.retries + 1}", _span(f.approval_wait))
            for f in facts.steps]


def _step_notes(f: StepFacts) -> list[tuple[str, str]]:
    notes = [("Runbook line", f.runbook_line or "-"), ("Result", f.step.status.message or "-")]
    if f.step.planned.destructive:
        approved = "approved" if f.step.approved else "not approved"
        wait = f"; waited {_span(f.approval_wait)}" if f.approval_wait is not None else ""
        notes.append(("Approval", approved + wait))
    if f.retries:
        reason = f.step.status.message if f.step.state is StepState.FAILED or f.step.status.next_attempt_at else ""
        notes.append(("Retries", f"{f.retries}" + (f" (last reason: {reason})" if reason else "")))
    return notes


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(facts: ReportFacts, *, chart_link: str | None = None, chart_note: str = "") -> str:
    """The postmortem as Markdown; the chart (when there is one) is a linked PNG file."""
    view = facts.view
    out = [f"# Postmortem: tsi/{view.name} ({view.namespace})", "", "## Summary", "", "| | |", "|---|---|"]
    out += [f"| {label} | {_md_cell(value)} |" for label, value in summary_rows(facts)]
    out += ["", "## Timeline", "", "| " + " | ".join(_TIMELINE_HEAD) + " |",
            "|" + "---|" * len(_TIMELINE_HEAD)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in timeline_rows(facts)]
    out += ["", "## Steps"]
    for f in facts.steps:
        out += ["", f"### {f.number}. {f.step.id}: {f.step.state.value}", ""]
        out += [f"- **{label}:** {value}" for label, value in _step_notes(f)]
        if f.step.status.evidence:
            out.append("- **Evidence:**")
            out += [f"  - `{k}`: {v}" for k, v in sorted(f.step.status.evidence.items())]
    out += ["", "## Metrics", ""]
    if chart_link:
        out.append(f"![Key metrics of the incident window, step boundaries marked]({chart_link})")
    out.append(chart_note or ("" if chart_link else "No metrics: run with --prometheus URL to plot them."))
    return "\n".join(out).rstrip() + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "text-align:left;font-size:.9rem}th{background:#f4f4f4}code{background:#f4f4f4}img{max-width:100%}")


def _html_table(head: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    e = html.escape
    head_html = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head_html}{body}</table>"


def render_html(facts: ReportFacts, *, chart_png: bytes | None = None, chart_note: str = "") -> str:
    """The postmortem as one self-contained HTML page; the chart is embedded as a base64 PNG."""
    e, view = html.escape, facts.view
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>Postmortem tsi/{e(view.name)}</title>"
            f"<style>{_CSS}</style></head><body>")
    parts = [head,
             f"<h1>Postmortem: tsi/{e(view.name)} ({e(view.namespace)})</h1>", "<h2>Summary</h2>",
             _html_table(None, summary_rows(facts)), "<h2>Timeline</h2>",
             _html_table(_TIMELINE_HEAD, timeline_rows(facts)), "<h2>Steps</h2>"]
    for f in facts.steps:
        parts.append(f"<h3>{f.number}. {e(f.step.id)}: {e(f.step.state.value)}</h3><ul>")
        parts += [f"<li><b>{e(label)}:</b> {e(value)}</li>" for label, value in _step_notes(f)]
        if f.step.status.evidence:
            items = "".join(f"<li><code>{e(k)}</code>: {e(v)}</li>" for k, v in sorted(f.step.status.evidence.items()))
            parts.append(f"<li><b>Evidence:</b><ul>{items}</ul></li>")
        parts.append("</ul>")
    parts.append("<h2>Metrics</h2>")
    if chart_png:
        encoded = base64.b64encode(chart_png).decode("ascii")
        parts.append(f"<img alt='Key metrics of the incident window' src='data:image/png;base64,{encoded}'>")
    note = chart_note or ("" if chart_png else "No metrics: run with --prometheus URL to plot them.")
    if note:
        parts.append(f"<p>{e(note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
