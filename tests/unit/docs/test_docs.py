"""The operator documentation stays true to the code: runbook coverage, settings, metrics, links.

docs/runbook-mapping.md must name every runbook and every step id of the catalogue (and no step id that does not
exist), docs/operations.md every TSO_ setting and every exported metric, and the README must link both.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tradesense_operator.api.v1alpha1.incident import Runbook
from tradesense_operator.config import ENV_PREFIX, Settings
from tradesense_operator.domain.runbooks.catalogue import RUNBOOKS
from tradesense_operator.observability.metrics import OperatorMetrics

ROOT = Path(__file__).resolve().parents[3]
MAPPING = (ROOT / "docs" / "runbook-mapping.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
RUNBOOK_DOC = (ROOT.parent / "shared" / "runbook.md")


@pytest.mark.parametrize("runbook", [r.value for r in Runbook])
def test_mapping_names_every_runbook(runbook: str) -> None:
    assert f"`{runbook}`" in MAPPING


@pytest.mark.parametrize("runbook", list(RUNBOOKS))
def test_mapping_names_every_step_of_every_runbook(runbook: Runbook) -> None:
    missing = [step.id for step in RUNBOOKS[runbook] if f"`{step.id}`" not in MAPPING]
    assert missing == [], f"{runbook.value}: step ids not in docs/runbook-mapping.md"


def test_mapping_names_no_step_id_that_does_not_exist() -> None:
    known = {step.id for steps in RUNBOOKS.values() for step in steps}
    claimed: set[str] = set()
    column = None
    for line in MAPPING.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            column = None
        elif column is None:  # a table's header row names the step column
            column = next((i for i, c in enumerate(cells) if c in ("Step id", "Steps")), -1)
        elif column >= 0 and not set(cells[column]) <= set("-"):
            claimed.update(re.findall(r"`([a-z][a-z0-9-]+)`", cells[column]))
    assert len(claimed) > 40, "step-id columns not found: the table layout changed"
    assert sorted(claimed - known) == []


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_operations_documents_every_setting(name: str) -> None:
    assert f"`{ENV_PREFIX}{name.upper()}`" in OPERATIONS


def test_operations_documents_no_setting_that_does_not_exist() -> None:
    documented = {v for v in re.findall(r"`(TSO_[A-Z_]+)`", OPERATIONS) if not v.startswith("TSO_E2E_")}
    assert documented == {f"{ENV_PREFIX}{n.upper()}" for n in Settings.model_fields}


def test_operations_documents_every_metric() -> None:
    """Counters as exposed (`_total`), other families by name."""
    exposed = [f"{m.name}_total" if m.type == "counter" else m.name for m in OperatorMetrics().registry.collect()]
    assert [name for name in exposed if f"`{name}`" not in OPERATIONS] == []


@pytest.mark.parametrize("doc", ["docs/runbook-mapping.md", "docs/operations.md", "docs/kubectl-session.md"])
def test_readme_links_the_docs(doc: str) -> None:
    assert f"]({doc})" in README


@pytest.mark.skipif(not RUNBOOK_DOC.exists(), reason="shared/runbook.md is not beside this clone")
def test_mapping_has_a_section_for_every_runbook_heading() -> None:
    text = RUNBOOK_DOC.read_text(encoding="utf-8")
    headings = [h.strip() for h in re.findall(r"^#{2,4} (.+)$", text, re.M) if h.strip() != "Table of Contents"]
    normalized_mapping = MAPPING.replace("→", " ").lower()
    missing = [h for h in headings if h.lower().split(". ", 1)[-1] not in normalized_mapping]
    assert missing == []


def test_operations_documents_every_incident_event_reason() -> None:
    """Every Event reason the incident engine (all of services/incidents) posts literally is documented."""
    engine = "\n".join(p.read_text(encoding="utf-8")
                       for p in sorted((ROOT / "operator" / "tradesense_operator" / "services" / "incidents").glob("*.py")))
    reasons = set(re.findall(r"events\.(?:normal|warning)\(\s*\"([A-Z][A-Za-z]+)\"", engine))
    reasons |= set(re.findall(r"events\.stage\(\s*\"(?:Normal|Warning)\",\s*\"([A-Z][A-Za-z]+)\"", engine))
    assert len(reasons) > 10, "event calls not found: the engine's wording changed"
    assert sorted(r for r in reasons if f"`{r}`" not in OPERATIONS) == []


def test_the_kubectl_session_is_a_complete_failure_run_recorded_from_kubectl() -> None:
    """docs/kubectl-session.md shows kubectl's printer columns and every restart-sequence step's Event."""
    session = (ROOT / "docs" / "kubectl-session.md").read_text(encoding="utf-8")
    assert "NAME     SEVERITY   RUNBOOK            PHASE" in session
    assert "$ kubectl describe tsi outage" in session
    events = session.rsplit("Events:", 1)[1]
    missing = [s.id for s in RUNBOOKS[Runbook.COMPLETE_FAILURE] if f"] {s.id}:" not in events]
    assert missing == []
    assert "IncidentSucceeded" in events


def test_the_session_recorder_still_imports() -> None:
    """docs/tools/record_session.py borrows the demo's wiring; a rename there must fail here, not at re-recording."""
    spec = importlib.util.spec_from_file_location("record_session", ROOT / "docs" / "tools" / "record_session.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.record)
