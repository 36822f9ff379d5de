"""docs/runbooks.md stays true: every runbook has a section whose step table lists exactly the catalogue's
steps, in order, with their action, target and approval (a drift here means the doc lies to operators)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.domain.runbooks import RUNBOOKS, resolve_plan

DOC = Path(__file__).resolve().parents[3] / "docs" / "runbooks.md"
ROW = re.compile(r"^\| `(?P<id>[^`]+)` \| (?P<action>[a-z-]+) \| `(?P<target>[^`]*)` \| (?P<approval>yes|) *\|")


def documented_steps(runbook: str) -> list[tuple[str, str, str, bool]]:
    text = DOC.read_text(encoding="utf-8")
    section = re.search(rf"(?ms)^## {re.escape(runbook)}\n(.*?)(?=^## |\Z)", text)
    assert section, f"docs/runbooks.md has no section for {runbook}"
    return [(m["id"], m["action"], m["target"], m["approval"] == "yes")
            for line in section.group(1).splitlines() if (m := ROW.match(line))]


@pytest.mark.parametrize("runbook", [r.value for r in RUNBOOKS])
def test_doc_table_matches_the_catalogue(runbook: str) -> None:
    spec = TradeSenseIncidentSpec.model_validate({"runbook": runbook, "parameters": {"backupPolicy": "nightly"}})
    expected = [(s.id, s.action.value, s.target, s.destructive) for s in resolve_plan(spec)]
    assert documented_steps(runbook) == expected
