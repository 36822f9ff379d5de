"""`tradesense-operator plan -f incident.yaml`: the plan the operator would freeze, resolved offline.

It runs the same validation and the same pure `resolve_plan` as the operator, without a cluster, so a
GitOps reviewer sees exactly the steps (and which need approval) before the manifest is merged. With
`-o json|yaml` the output is byte-for-byte what the operator stores in `status.plan`.
Must not contact a cluster or plan differently from the operator: it only calls the domain.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from tradesense_operator.api.v1alpha1.incident import KIND, PlannedStep, TradeSenseIncident
from tradesense_operator.cli.yaml_input import YamlInputError, load_documents
from tradesense_operator.domain.incident.deadlines import RESPONSE_TIMES
from tradesense_operator.domain.incident.spec_errors import spec_problems
from tradesense_operator.domain.runbooks import PlanError, resolve_plan


class PlanInputError(Exception):
    """The file cannot be turned into plans; the message says where and why."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `plan` sub-command."""
    parser = subparsers.add_parser(
        "plan", help="print the steps an incident manifest resolves to (offline, no cluster needed)"
    )
    parser.add_argument("-f", "--filename", required=True,
                        help="TradeSenseIncident manifest (YAML, may hold several documents; '-' reads stdin)")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                        help="table (default) or the exact status.plan as JSON/YAML")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        incidents = load_incidents(args.filename)
        plans = [(name, incident, resolve(name, incident)) for name, incident in incidents]
    except PlanInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    render(plans, args.output, sys.stdout)
    return 0


def _read_stdin() -> bytes:
    """Raw bytes when stdin is a real stream (so encoding errors are ours to report), text otherwise."""
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")


def load_incidents(filename: str) -> list[tuple[str, TradeSenseIncident]]:
    """Every TradeSenseIncident document of the file, validated like the operator validates it."""
    source = "<stdin>" if filename == "-" else filename
    try:
        data = _read_stdin() if filename == "-" else Path(filename).read_bytes()
    except FileNotFoundError:
        raise PlanInputError(f"{source}: no such file") from None
    except OSError as exc:
        raise PlanInputError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        documents = load_documents(data, source)
    except YamlInputError as exc:
        raise PlanInputError(str(exc)) from None
    incidents: list[tuple[str, TradeSenseIncident]] = []
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping):
            raise PlanInputError(f"{source}: document {index + 1} is not a mapping")
        if document.get("kind") != KIND:
            continue
        name = str((document.get("metadata") or {}).get("name") or f"document {index + 1}")
        try:
            incidents.append((name, TradeSenseIncident.model_validate(_without_status(document))))
        except ValidationError as exc:
            problems = "; ".join(f"{path}: {message}" for path, message in spec_problems(exc, prefix=""))
            raise PlanInputError(f"{source}: {name}: invalid: {problems}") from None
    if not incidents:
        raise PlanInputError(f"{source}: no {KIND} document found")
    return incidents


def _without_status(document: Mapping[str, Any]) -> dict[str, Any]:
    """A status in the file (e.g. from `kubectl get -o yaml`) is the operator's, not input."""
    return {k: v for k, v in document.items() if k != "status"}


def resolve(name: str, incident: TradeSenseIncident) -> list[PlannedStep]:
    """The frozen plan, or a PlanInputError naming the field the catalogue could not use."""
    try:
        return resolve_plan(incident.spec)
    except PlanError as exc:
        raise PlanInputError(f"{name}: invalid spec: {exc.field}: {exc.problem}") from None


def render(plans: Sequence[tuple[str, TradeSenseIncident, list[PlannedStep]]], output: str, out: TextIO) -> None:
    """Print as a table, or as the exact status.plan (one incident) / {name: plan} (several)."""
    if output == "table":
        out.write("\n\n".join(_table(name, incident, plan) for name, incident, plan in plans) + "\n")
        return
    wire: Any = [step.to_api() for step in plans[0][2]] if len(plans) == 1 else {
        name: [step.to_api() for step in plan] for name, _, plan in plans}
    if output == "json":
        out.write(json.dumps(wire, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(yaml.safe_dump(wire, sort_keys=False, allow_unicode=True))


def _table(name: str, incident: TradeSenseIncident, plan: Sequence[PlannedStep]) -> str:
    spec = incident.spec
    respond = RESPONSE_TIMES[spec.severity]
    hours, rest = divmod(int(respond.total_seconds()), 3600)
    within = f"{hours}h" if hours else f"{rest // 60}m"
    gated = [step.id for step in plan if step.destructive]
    header = (f"tsi/{name}: runbook {spec.runbook.value}, severity {spec.severity.value} (respond within {within}), "
              f"{len(plan)} steps" + (f"; approval needed for: {', '.join(gated)}" if gated else "")
              + ("; DRY RUN: nothing will be changed" if spec.dry_run else ""))
    rows = [("#", "STEP", "ACTION", "TARGET", "APPROVAL", "TIMEOUT", "RETRIES", "DESCRIPTION")]
    for index, step in enumerate(plan, start=1):
        approval = ("approved" if step.id in spec.approvals else "required") if step.destructive else "-"
        rows.append((str(index), step.id, step.action.value, step.target or "-", approval,
                     f"{step.timeout_seconds}s", str(step.retries), step.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    return "\n".join([header, *(line.rstrip() for line in lines)])
