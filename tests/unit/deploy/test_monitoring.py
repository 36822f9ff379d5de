"""deploy/monitoring: rules are valid, route to real runbooks, and name metrics that actually exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradesense_operator.api.v1alpha1.incident import Runbook
from tradesense_operator.domain.alerts import DEFAULT_ROUTES, route_alert
from tradesense_operator.observability.metrics import OperatorMetrics

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"
RULES = MONITORING / "tradesense.rules.yaml"


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_plain_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; `make deps` installs it)")
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_carries_exactly_the_plain_groups() -> None:
    plain = yaml.safe_load(RULES.read_text())["groups"]
    wrapped = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert wrapped["kind"] == "PrometheusRule"
    assert wrapped["spec"]["groups"] == plain


def test_every_runbook_alert_routes_to_its_runbook_through_the_bridge_logic() -> None:
    runbook_alerts = [r for r in _rules() if "runbook" in r.get("labels", {})]
    assert {Runbook(r["labels"]["runbook"]) for r in runbook_alerts} >= {
        Runbook.HIGH_ERROR_RATE, Runbook.DB_POOL_EXHAUSTED, Runbook.CACHE_HIT_RATE_LOW,
        Runbook.DISK_SPACE_LOW, Runbook.CERTIFICATE_EXPIRING,
    }
    for rule in runbook_alerts:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        route = route_alert(labels, rule.get("annotations", {}), DEFAULT_ROUTES)
        assert route is not None, rule["alert"]
        assert route.runbook.value == rule["labels"]["runbook"]


def _exported_operator_metric_names() -> set[str]:
    metrics = OperatorMetrics()
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update({family.name + "_bucket", family.name + "_sum", family.name + "_count"})
    return names


def test_operator_metric_names_in_rules_and_dashboard_exist() -> None:
    exported = _exported_operator_metric_names()
    texts = [RULES.read_text(), (MONITORING / "grafana-dashboard.json").read_text()]
    referenced = {name for text in texts for name in re.findall(r"tradesense_operator_[a-z_]+", text)}
    assert referenced, "no operator metrics referenced"
    assert referenced <= exported, sorted(referenced - exported)


def test_dashboard_is_valid_grafana_json_with_unique_panel_ids() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in dashboard["panels"])


def test_alertmanager_example_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    result = subprocess.run(
        [amtool, "check-config", str(MONITORING / "alertmanager-receiver.yaml")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
