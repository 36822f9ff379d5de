"""Alert → incident decisions: which runbook an alert asks for, and safe Kubernetes names from labels.

Pure functions so the mapping table, the precedence rules and the sanitiser are table-tested; the
bridge only does I/O around them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tradesense_operator.api.v1alpha1.incident import Runbook, Severity

RUNBOOK_LABEL = "runbook"
SEVERITY_LABEL = "severity"
CANCEL_ON_RESOLVE = "cancel_on_resolve"  # rule label (or annotation): "true" cancels pending steps
FINGERPRINT_LABEL = "ops.tradesense.io/alert-fingerprint"
ALERTNAME_LABEL = "ops.tradesense.io/alertname"
ALERT_STATUS_ANNOTATION = "ops.tradesense.io/alert-status"
ALERT_LAST_SEEN_ANNOTATION = "ops.tradesense.io/alert-last-seen"
ALERT_NOTIFICATIONS_ANNOTATION = "ops.tradesense.io/alert-notifications"
INVALID_RUNBOOK_ANNOTATION = "ops.tradesense.io/alert-invalid-runbook"  # the mistyped value, kept for people


@dataclass(frozen=True)
class AlertRoute:
    """Where an alert name leads."""

    runbook: Runbook
    severity: Severity


# The runbook's "Alert Response" table. Alertmanager alert names are CamelCase by convention;
# the human titles from the table are accepted too.
DEFAULT_ROUTES: Mapping[str, AlertRoute] = {
    "HighErrorRate": AlertRoute(Runbook.HIGH_ERROR_RATE, Severity.P2),
    "High Error Rate": AlertRoute(Runbook.HIGH_ERROR_RATE, Severity.P2),
    "DatabaseConnectionPoolExhausted": AlertRoute(Runbook.DB_POOL_EXHAUSTED, Severity.P2),
    "Database Connection Pool Exhausted": AlertRoute(Runbook.DB_POOL_EXHAUSTED, Severity.P2),
    "CacheHitRateLow": AlertRoute(Runbook.CACHE_HIT_RATE_LOW, Severity.P3),
    "Cache Hit Rate Low": AlertRoute(Runbook.CACHE_HIT_RATE_LOW, Severity.P3),
    "DiskSpaceLow": AlertRoute(Runbook.DISK_SPACE_LOW, Severity.P2),
    "Disk Space Low": AlertRoute(Runbook.DISK_SPACE_LOW, Severity.P2),
    "CertificateExpiring": AlertRoute(Runbook.CERTIFICATE_EXPIRING, Severity.P3),
    "Certificate Expiring": AlertRoute(Runbook.CERTIFICATE_EXPIRING, Severity.P3),
}

_SEVERITY_WORDS: Mapping[str, Severity] = {
    "p1": Severity.P1, "critical": Severity.P1, "page": Severity.P1,
    "p2": Severity.P2, "high": Severity.P2, "error": Severity.P2,
    "p3": Severity.P3, "medium": Severity.P3, "warning": Severity.P3,
    "p4": Severity.P4, "low": Severity.P4, "info": Severity.P4,
}


class MappingError(ValueError):
    """A mapping table entry is malformed (names the entry)."""


def parse_routes(data: Mapping[str, str]) -> dict[str, AlertRoute]:
    """Parse a ConfigMap's data: `AlertName: "runbook[,severity]"`, e.g. `HighLatency: performance-degradation,P3`."""
    routes: dict[str, AlertRoute] = {}
    valid = ", ".join(r.value for r in Runbook if r is not Runbook.CUSTOM)
    for alertname, value in data.items():
        runbook_text, _, severity_text = (part.strip() for part in value.partition(","))
        try:
            runbook = Runbook(runbook_text)
        except ValueError:
            raise MappingError(f"mapping {alertname!r}: unknown runbook {runbook_text!r} (valid: {valid})") from None
        if runbook is Runbook.CUSTOM:
            raise MappingError(f"mapping {alertname!r}: runbook custom needs explicit steps and cannot come from alerts")
        severity = Severity.P3
        if severity_text:
            parsed = _SEVERITY_WORDS.get(severity_text.lower())
            if parsed is None:
                raise MappingError(f"mapping {alertname!r}: unknown severity {severity_text!r} (use P1–P4)")
            severity = parsed
        routes[alertname] = AlertRoute(runbook, severity)
    return routes


def _explicit_runbook(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    return (labels.get(RUNBOOK_LABEL) or annotations.get(RUNBOOK_LABEL) or "").strip() or None


def invalid_runbook(labels: Mapping[str, str], annotations: Mapping[str, str]) -> str | None:
    """The alert's `runbook` label (or annotation) when it names no runbook an alert may start, else None.

    `custom` counts as invalid: it needs explicit steps and cannot come from an alert.
    """
    explicit = _explicit_runbook(labels, annotations)
    if explicit is None:
        return None
    try:
        runbook = Runbook(explicit)
    except ValueError:
        return explicit
    return explicit if runbook is Runbook.CUSTOM else None


def route_alert(
    labels: Mapping[str, str], annotations: Mapping[str, str], routes: Mapping[str, AlertRoute]
) -> AlertRoute | None:
    """The runbook an alert asks for: its `runbook` label, then annotation, then the mapping table.

    A `runbook` value that names no usable runbook (a typo, `custom`) falls back to the alert-name route
    instead of disabling remediation; the caller records the bad value (see `invalid_runbook`). Only an
    alert that neither names a usable runbook nor is in the table routes nowhere.
    """
    explicit = _explicit_runbook(labels, annotations)
    severity = _SEVERITY_WORDS.get(labels.get(SEVERITY_LABEL, "").lower())
    mapped = routes.get(labels.get("alertname", ""))
    if explicit and invalid_runbook(labels, annotations) is None:
        return AlertRoute(Runbook(explicit), severity or (mapped.severity if mapped else Severity.P3))
    if mapped is None:
        return None
    return AlertRoute(mapped.runbook, severity or mapped.severity)


def cancel_on_resolve(labels: Mapping[str, str], annotations: Mapping[str, str]) -> bool:
    """Whether the alert's resolution should cancel the incident's pending steps (label, else annotation)."""
    value = labels.get(CANCEL_ON_RESOLVE) or annotations.get(CANCEL_ON_RESOLVE) or ""
    return value.strip().lower() == "true"


_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def dns_label(text: str, *, max_length: int = 63) -> str:
    """A DNS-1123 label from arbitrary text (lower-case, [a-z0-9-], trimmed, never empty)."""
    cleaned = _NOT_DNS.sub("-", text.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:max_length].strip("-")
    return cleaned or "x"


def label_value(text: str) -> str:
    """A valid label value (≤ 63 chars, alphanumeric at both ends); long values keep a hash suffix."""
    cleaned = _NOT_LABEL.sub("_", text).strip("_.-")
    if len(cleaned) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        cleaned = f"{cleaned[:52].rstrip('_.-')}-{digest}"
    return cleaned


_NAME_FINGERPRINT = re.compile(r"^[a-z0-9]{1,16}$")


def incident_name(runbook: Runbook, fingerprint: str, starts_at_epoch: int) -> str:
    """Deterministic name for one firing of one alert, so concurrent duplicates collide on create.

    Alertmanager's fingerprints (16 lower-case hex digits) are used as they are; any other fingerprint
    is replaced by a digest, because cutting or lower-casing it could give two alerts the same name and
    dedupe one into the other's incident.
    """
    fp = fingerprint
    if not _NAME_FINGERPRINT.match(fp):
        fp = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return dns_label(f"alert-{runbook.value}-{fp}-{starts_at_epoch}", max_length=63)
