"""Alert routing and name sanitising: the runbook's alert table, label precedence, ConfigMap overrides."""

from __future__ import annotations

import re

import pytest

from tradesense_operator.api.v1alpha1.incident import Runbook, Severity
from tradesense_operator.domain.alerts import (
    DEFAULT_ROUTES,
    AlertRoute,
    MappingError,
    cancel_on_resolve,
    dns_label,
    incident_name,
    invalid_runbook,
    label_value,
    parse_routes,
    route_alert,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    ("alertname", "runbook"),
    [
        ("HighErrorRate", Runbook.HIGH_ERROR_RATE),
        ("High Error Rate", Runbook.HIGH_ERROR_RATE),
        ("DatabaseConnectionPoolExhausted", Runbook.DB_POOL_EXHAUSTED),
        ("CacheHitRateLow", Runbook.CACHE_HIT_RATE_LOW),
        ("DiskSpaceLow", Runbook.DISK_SPACE_LOW),
        ("CertificateExpiring", Runbook.CERTIFICATE_EXPIRING),
    ],
)
def test_runbook_alert_table_is_the_default(alertname: str, runbook: Runbook) -> None:
    route = route_alert({"alertname": alertname}, {}, DEFAULT_ROUTES)
    assert route is not None
    assert route.runbook is runbook


def test_runbook_label_wins_over_the_table_and_severity_label_is_mapped() -> None:
    route = route_alert(
        {"alertname": "HighErrorRate", "runbook": "site-down", "severity": "critical"}, {}, DEFAULT_ROUTES
    )
    assert route == AlertRoute(Runbook.SITE_DOWN, Severity.P1)


def test_runbook_annotation_is_used_when_no_label() -> None:
    route = route_alert({"alertname": "Whatever"}, {"runbook": "high-cpu"}, DEFAULT_ROUTES)
    assert route == AlertRoute(Runbook.HIGH_CPU, Severity.P3)


@pytest.mark.parametrize(
    "labels",
    [
        {"alertname": "SomethingNobodyMapped"},
        {"alertname": "X", "runbook": "rm-rf-everything"},
        {"alertname": "X", "runbook": "custom"},  # custom needs explicit steps: never from an alert
        {},
    ],
)
def test_unknown_or_unusable_alerts_route_nowhere(labels: dict[str, str]) -> None:
    assert route_alert(labels, {}, DEFAULT_ROUTES) is None


def test_configmap_routes_parse_with_severity_words() -> None:
    routes = parse_routes({"HighLatency": "performance-degradation, warning", "NodeDown": "site-down,P1"})
    assert routes["HighLatency"] == AlertRoute(Runbook.PERFORMANCE_DEGRADATION, Severity.P3)
    assert routes["NodeDown"] == AlertRoute(Runbook.SITE_DOWN, Severity.P1)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"A": "reboot-the-world"}, "unknown runbook 'reboot-the-world'"),
        ({"B": "site-down,P9"}, "unknown severity 'P9'"),
        ({"C": "custom"}, "runbook custom"),
    ],
)
def test_malformed_mapping_entries_name_the_entry(data: dict[str, str], fragment: str) -> None:
    with pytest.raises(MappingError, match=re.escape(fragment)) as excinfo:
        parse_routes(data)
    assert next(iter(data)) in str(excinfo.value)


@pytest.mark.parametrize(
    "text",
    ["Tradesense/Prod", "---", "a" * 300, "ÜBER_namespace..x", "", "UPPER case  spaces"],
)
def test_sanitised_names_and_labels_are_always_valid(text: str) -> None:
    assert DNS_LABEL.match(dns_label(text))
    assert len(dns_label(text)) <= 63
    value = label_value(text)
    assert LABEL_VALUE.match(value)
    assert len(value) <= 63


def test_long_label_values_stay_distinct() -> None:
    assert label_value("x" * 100 + "a") != label_value("x" * 100 + "b")


def test_incident_name_is_deterministic_per_firing() -> None:
    a = incident_name(Runbook.HIGH_ERROR_RATE, "d1a2b3c4d5e6f708", 1_764_000_000)
    assert a == incident_name(Runbook.HIGH_ERROR_RATE, "d1a2b3c4d5e6f708", 1_764_000_000)
    assert a != incident_name(Runbook.HIGH_ERROR_RATE, "d1a2b3c4d5e6f708", 1_764_000_060)
    assert DNS_LABEL.match(a)


@pytest.mark.parametrize("bad", ["hihg-error-rate", "custom", " nonsense "])
def test_mistyped_runbook_label_falls_back_to_the_alert_name_route_and_is_reported(bad: str) -> None:
    labels = {"alertname": "HighErrorRate", "runbook": bad, "severity": "critical"}
    assert route_alert(labels, {}, DEFAULT_ROUTES) == AlertRoute(Runbook.HIGH_ERROR_RATE, Severity.P1)
    assert invalid_runbook(labels, {}) == bad.strip()


def test_valid_or_absent_runbook_label_is_not_reported() -> None:
    assert invalid_runbook({"runbook": "site-down"}, {}) is None
    assert invalid_runbook({"alertname": "HighErrorRate"}, {}) is None
    assert invalid_runbook({}, {"runbook": "nope"}) == "nope"


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({"cancel_on_resolve": "true"}, {}, True),
        ({"cancel_on_resolve": "false"}, {"cancel_on_resolve": "true"}, False),  # the rule's label wins
        ({}, {"cancel_on_resolve": "True"}, True),
        ({}, {}, False),
    ],
)
def test_cancel_on_resolve_reads_the_label_then_the_annotation(
    labels: dict[str, str], annotations: dict[str, str], expected: bool
) -> None:
    assert cancel_on_resolve(labels, annotations) is expected
