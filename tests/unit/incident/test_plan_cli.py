"""`tradesense-operator plan -f`: the resolved plan offline, and clear errors with exit code 1."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from tradesense_operator.api.v1alpha1.incident import TradeSenseIncidentSpec
from tradesense_operator.cli import main
from tradesense_operator.domain.runbooks import resolve_plan

HIGH_CPU = """\
apiVersion: ops.tradesense.io/v1alpha1
kind: TradeSenseIncident
metadata:
  name: cpu
spec:
  runbook: high-cpu
  severity: P2
  parameters:
    replicas: 8
    workers: 2
"""


def _write(tmp_path: Path, text: str, name: str = "incident.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_json_output_is_exactly_the_plan_the_operator_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", _write(tmp_path, HIGH_CPU), "-o", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    spec = TradeSenseIncidentSpec.model_validate(yaml.safe_load(HIGH_CPU)["spec"])
    assert printed == [step.to_api() for step in resolve_plan(spec)]


def test_table_names_runbook_deadline_steps_and_approvals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = HIGH_CPU.replace("high-cpu", "slow-queries").replace("P2", "P1")
    assert main(["plan", "-f", _write(tmp_path, manifest)]) == 0
    out = capsys.readouterr().out
    first, columns, *rows = out.splitlines()
    assert first.startswith("tsi/cpu: runbook slow-queries, severity P1 (respond within 15m)")
    assert "approval needed for: create-index" in first
    assert columns.split() == ["#", "STEP", "ACTION", "TARGET", "APPROVAL", "TIMEOUT", "RETRIES", "DESCRIPTION"]
    gated = next(row for row in rows if "pg-create-index" in row)
    assert "required" in gated


def test_yaml_output_and_several_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = HIGH_CPU.replace("name: cpu", "name: other")
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\n"
    path = _write(tmp_path, "\n---\n".join([HIGH_CPU, configmap, other]))
    assert main(["plan", "-f", path, "-o", "yaml"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert sorted(printed) == ["cpu", "other"]
    assert printed["cpu"] == printed["other"]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(HIGH_CPU))
    assert main(["plan", "-f", "-", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "check-pods"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("kind: TradeSenseIncident\nspec: [unclosed\n", "malformed YAML at line 3, column 1"),
        ("apiVersion: v1\nkind: ConfigMap\n", "no TradeSenseIncident document found"),
        ("- just\n- a list\n", "document 1 is not a mapping"),
        (HIGH_CPU.replace("replicas: 8", "replicas: -8"), "cpu: invalid: spec.parameters.replicas:"),
        (HIGH_CPU.replace("severity: P2", "severity: P9"), "cpu: invalid: spec.severity:"),
        ("kind: TradeSenseIncident\nmetadata: {name: dc}\nspec: {runbook: data-corruption}\n",
         "dc: invalid spec: spec.parameters.backupPolicy: required by runbook data-corruption"),
        ("kind: TradeSenseIncident\nmetadata: {name: c}\nspec: {runbook: custom}\n", "c: invalid: spec: steps must be set"),
    ],
)
def test_bad_input_fails_with_a_message_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, error: str
) -> None:
    assert main(["plan", "-f", _write(tmp_path, text)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert error in captured.err
    assert captured.err.startswith("error: ")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(tmp_path / "absent.yaml")]) == 1
    assert "absent.yaml: no such file" in capsys.readouterr().err


def test_filename_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["plan"])
    assert caught.value.code == 2
    assert "-f/--filename" in capsys.readouterr().err
