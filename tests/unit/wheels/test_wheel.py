"""The operator's wheel ships the operator only.

Covers: no sandbox module in the wheel's file list, no sandbox-only dependency (jsonschema, jsonpatch) in its
metadata, and the sandbox distribution naming the operator as a dependency (never the reverse). The wheel is built
offline from the venv's setuptools, so the test needs no registry.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _build(source: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def operator_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(_build(ROOT, tmp_path_factory.mktemp("wheel")))


def _metadata(wheel: zipfile.ZipFile) -> list[str]:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return Parser().parsestr(wheel.read(name).decode()).get_all("Requires-Dist") or []


def test_operator_wheel_contains_only_the_operator_package(operator_wheel: zipfile.ZipFile) -> None:
    top_levels = {n.split("/", 1)[0] for n in operator_wheel.namelist()}
    assert top_levels == {"tradesense_operator", "tradesense_operator-0.1.0.dist-info"}
    assert not [n for n in operator_wheel.namelist() if "sandbox" in n]
    # the runtime pieces that make it an operator are there
    for needed in ("cli/__init__.py", "handlers/incident.py", "py.typed"):
        assert f"tradesense_operator/{needed}" in operator_wheel.namelist()


def test_operator_wheel_requires_no_sandbox_library(operator_wheel: zipfile.ZipFile) -> None:
    requires = [r.split(";")[0].strip().lower() for r in _metadata(operator_wheel)]
    runtime = [r for r in _metadata(operator_wheel) if "extra ==" not in r]
    names = {r.split(">")[0].split("<")[0].split("[")[0].split("=")[0].strip().lower() for r in runtime}
    assert "kopf" in names
    assert "jsonschema" not in names
    assert "jsonpatch" not in names
    assert not [r for r in requires if r.startswith("tradesense-sandbox")]


def test_sandbox_is_its_own_distribution_that_depends_on_the_operator(tmp_path: Path) -> None:
    wheel = zipfile.ZipFile(_build(ROOT / "sandbox", tmp_path))
    top_levels = {n.split("/", 1)[0] for n in wheel.namelist()}
    assert "tradesense_sandbox" in top_levels
    assert "tradesense_operator" not in top_levels
    names = {r.split(">")[0].split("<")[0].split("[")[0].split("=")[0].strip().lower() for r in _metadata(wheel)}
    assert {"tradesense-operator", "jsonschema", "jsonpatch"} <= names
    assert "tradesense_sandbox/schema.sql" in wheel.namelist()


def test_operator_wheel_ships_the_kubectl_plugin_and_the_dashboard_page(operator_wheel: zipfile.ZipFile) -> None:
    names = operator_wheel.namelist()
    for page in ("index.html", "app.js", "app.css"):
        assert f"tradesense_operator/console/dashboard/static/{page}" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = operator_wheel.read(entry_points).decode()
    assert "kubectl-tradesense = tradesense_operator.cli.console:kubectl_main" in scripts
