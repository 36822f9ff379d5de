"""deploy/monitoring: rules pass promtool (check and the unit tests in deploy/monitoring/tests/), route to real
runbooks and name metrics that exist; the Alertmanager routing passes amtool and sends what it claims where.

promtool and amtool are the Debian packages' (prometheus, prometheus-alertmanager), installed by `make deps`;
without them these tests fail rather than skip, because they are what proves the shipped files work.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tradesense_operator.api.v1alpha1.incident import Runbook, Severity
from tradesense_operator.domain.alerts import DEFAULT_ROUTES, cancel_on_resolve, route_alert
from tradesense_operator.observability.metrics import BRIDGE_ALERT_OUTCOMES, BRIDGE_REQUEST_OUTCOMES, OperatorMetrics
from tradesense_operator.services.alerts import AlertOutcome

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"
RULES = MONITORING / "tradesense.rules.yaml"
ROUTING = MONITORING / "alertmanager-receiver.yaml"
RULE_TESTS = sorted((MONITORING / "tests").glob("*.test.yaml"))
PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is missing: install the Debian packages prometheus and prometheus-alertmanager "
                    "(`make deps` does)")
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_plain_rules_pass_promtool_check() -> None:
    result = _run(PROMTOOL, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit_tests", RULE_TESTS, ids=lambda p: p.name)
def test_rules_pass_their_promtool_unit_tests(unit_tests: Path) -> None:
    result = _run(PROMTOOL, "test", "rules", str(unit_tests))
    assert result.returncode == 0, result.stdout + result.stderr


def _tested_alerts() -> set[str]:
    tested: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested.update(t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"])
    return tested


def test_every_shipped_alert_has_a_promtool_test_that_sees_it_fire() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts - _tested_alerts() == set()


def test_prometheusrule_is_the_plain_file_indented_under_spec() -> None:
    """Generated, not hand-kept: the command in prometheusrule.yaml's header makes exactly this text."""
    wrapped_text = (MONITORING / "prometheusrule.yaml").read_text()
    plain_text = RULES.read_text()
    head = wrapped_text[: wrapped_text.index("\nspec:\n") + len("\nspec:\n")]
    groups = plain_text[plain_text.index("\ngroups:") + 1:]
    expected = head + "".join("  " + line if line.strip() else line for line in groups.splitlines(keepends=True))
    assert wrapped_text == expected, "regenerate prometheusrule.yaml with the command in its header"
    wrapped = yaml.safe_load(wrapped_text)
    assert wrapped["kind"] == "PrometheusRule"
    assert wrapped["spec"]["groups"] == yaml.safe_load(plain_text)["groups"]


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


def test_alertmanager_routing_passes_amtool_check_config() -> None:
    result = _run(AMTOOL, "check-config", str(ROUTING))
    assert result.returncode == 0, result.stdout + result.stderr


def _receivers(labels: dict[str, str]) -> set[str]:
    result = _run(AMTOOL, "config", "routes", "test", f"--config.file={ROUTING}",
                  *(f"{k}={v}" for k, v in labels.items()))
    assert result.returncode == 0, result.stdout + result.stderr
    return set(result.stdout.strip().split(","))


BRIDGE = "tradesense-operator"
PEOPLE = {"people", "people-page"}


@pytest.mark.parametrize("rule", [r for r in _rules() if "alert" in r], ids=lambda r: r["alert"])
def test_every_shipped_alert_reaches_people_and_runbook_alerts_also_the_bridge(rule: dict[str, Any]) -> None:
    labels = {"alertname": rule["alert"], "namespace": "tradesense", **rule["labels"]}
    receivers = _receivers(labels)
    assert receivers & PEOPLE, receivers  # nothing ends at the bridge alone
    assert (BRIDGE in receivers) == ("runbook" in labels)
    must_page = labels["severity"] in {"critical", "high"}  # the runbook's P1/P2: a person must know now
    assert ("people-page" in receivers) == must_page


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "HighErrorRate", "runbook": "high-error-rate", "severity": "high"}, {BRIDGE, "people-page"}),
        ({"alertname": "SiteDown", "runbook": "site-down", "severity": "P1"}, {BRIDGE, "people-page"}),
        ({"alertname": "CacheHitRateLow", "runbook": "cache-hit-rate-low", "severity": "warning"}, {BRIDGE, "people"}),
        ({"alertname": "Mistyped", "runbook": "hihg-error-rate"}, {BRIDGE, "people"}),
        ({"alertname": "TradeSenseOperatorDown", "severity": "critical"}, {"people-page"}),
        ({"alertname": "TradeSenseAlertNotRemediated", "severity": "warning"}, {"people"}),
        ({"alertname": "SomeOtherTeamsAlert", "severity": "critical"}, {"people-page"}),
        ({"alertname": "SomeOtherTeamsAlert"}, {"people"}),
        ({"alertname": "Watchdog", "severity": "none"}, {"people"}),
    ],
)
def test_routing_tree_sends_alerts_where_the_docs_say(labels: dict[str, str], expected: set[str]) -> None:
    assert _receivers(labels) == expected


def test_the_bridge_receiver_sends_resolutions_and_reads_its_token_from_a_file() -> None:
    config = yaml.safe_load(ROUTING.read_text())
    [bridge] = [r for r in config["receivers"] if r["name"] == BRIDGE]
    [webhook] = bridge["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["credentials_file"].endswith("/token")
    assert "credentials" not in webhook["http_config"]["authorization"]


_AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\s*(?:by\s*\(([^)]*)\))?\s*\(")


def _incident_creating_exprs() -> dict[str, str]:
    """Each runbook alert's expression with the recording rules it reads appended."""
    recorded = {r["record"]: r["expr"] for r in _rules() if "record" in r}
    exprs = {}
    for rule in _rules():
        if "runbook" in rule.get("labels", {}):
            exprs[rule["alert"]] = rule["expr"] + "".join(e for name, e in recorded.items() if name in rule["expr"])
    return exprs


@pytest.mark.parametrize(("alert", "expr"), sorted(_incident_creating_exprs().items()))
def test_incident_creating_alerts_keep_the_namespace_label(alert: str, expr: str) -> None:
    """The bridge creates the incident in the alert's namespace; Alertmanager groups by it too."""
    aggregations = _AGGREGATION.findall(expr)
    assert all("namespace" in (by or "") for _, by in aggregations), (alert, aggregations)
    assert "namespace" in yaml.safe_load(ROUTING.read_text())["route"]["group_by"]


@pytest.mark.parametrize("rule", [r for r in _rules() if "runbook" in r.get("labels", {})], ids=lambda r: r["alert"])
def test_every_runbook_alert_says_whether_resolution_cancels(rule: dict[str, Any]) -> None:
    assert rule["labels"]["cancel_on_resolve"] in {"true", "false"}
    assert cancel_on_resolve(rule["labels"], {}) is (rule["labels"]["cancel_on_resolve"] == "true")


def test_event_counters_with_known_labels_are_exported_at_zero_before_the_first_event() -> None:
    """A series born at 1 shows `increase()` no step: the first escalation after a restart would not alert."""
    exposition = OperatorMetrics().render().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition) for s in family.samples
    }
    for severity in Severity:
        assert samples[("tradesense_operator_escalations_total", (("severity", severity.value),))] == 0
    for outcome in AlertOutcome:
        assert samples[("tradesense_operator_bridge_alerts_total", (("outcome", outcome.value),))] == 0
    assert samples[("tradesense_operator_bridge_invalid_runbook_total", ())] == 0
    assert samples[("tradesense_operator_bridge_requests_total", (("outcome", "accepted"),))] == 0


def test_precreated_bridge_outcomes_are_exactly_the_service_outcomes() -> None:
    assert set(BRIDGE_ALERT_OUTCOMES) == {o.value for o in AlertOutcome}


def test_precreated_request_outcomes_are_exactly_what_the_bridge_answers() -> None:
    server = (Path(__file__).resolve().parents[3] / "operator" / "tradesense_operator" / "bridge" / "server.py")
    answered = set(re.findall(r'_reject\(runtime, \d+, "([a-z-]+)"', server.read_text())) | {"accepted"}
    assert set(BRIDGE_REQUEST_OUTCOMES) == answered


def test_operations_guide_lists_every_shipped_alert() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    missing = [r["alert"] for r in _rules() if "alert" in r and f"| `{r['alert']}` |" not in guide]
    assert missing == []
