"""Alert → TradeSenseIncident: create, deduplicate by fingerprint, and record resolution.

Deduplication is done by the API server, not by memory: one firing of one alert (fingerprint +
startsAt) has a deterministic incident name, so concurrent or repeated notifications collide on
create (409) and become updates. An open incident from an earlier firing of the same fingerprint is
updated instead of starting a second remediation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml
from pydantic import ValidationError

from tradesense_operator.api.alertmanager import Alert, WebhookPayload
from tradesense_operator.api.v1alpha1.common import API_VERSION
from tradesense_operator.api.v1alpha1.incident import (
    KIND,
    IncidentSource,
    IncidentTarget,
    TradeSenseIncidentSpec,
)
from tradesense_operator.clients.errors import Conflict, NotFound
from tradesense_operator.clients.kube import CONFIGMAPS, INCIDENTS, NAMESPACES
from tradesense_operator.domain.alerts import (
    ALERT_LAST_SEEN_ANNOTATION,
    ALERT_NOTIFICATIONS_ANNOTATION,
    ALERT_STATUS_ANNOTATION,
    ALERTNAME_LABEL,
    DEFAULT_ROUTES,
    FINGERPRINT_LABEL,
    INVALID_RUNBOOK_ANNOTATION,
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
from tradesense_operator.domain.incident.machine import TERMINAL_PHASES
from tradesense_operator.services.runtime import Runtime

log = logging.getLogger(__name__)

TOUCH_ATTEMPTS = 10  # each conflict means another writer succeeded; bounded so a hot object cannot pin a request
TARGET_KEY = "target.yaml"  # optional ConfigMap key: IncidentTarget defaults for incidents from alerts


class AlertOutcome(StrEnum):
    """What the bridge did with one alert."""

    CREATED = "created"
    UPDATED = "updated"
    RESOLVED = "resolved"
    RESOLVED_UNKNOWN = "resolved-without-incident"
    UNKNOWN = "unknown"
    NO_NAMESPACE = "namespace-missing"


@dataclass(frozen=True)
class AlertResult:
    """Per-alert result, returned to Alertmanager and counted in metrics."""

    fingerprint: str
    alertname: str
    outcome: AlertOutcome
    incident: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class BridgeConfig:
    """Routes and target defaults, read from the mapping ConfigMap (falls back to the runbook table)."""

    routes: Mapping[str, AlertRoute]
    target: IncidentTarget | None


class AlertService:
    """Turns one webhook payload into incident creations and updates."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def load_config(self) -> BridgeConfig:
        """Routes from the ConfigMap (merged over the defaults); a malformed entry raises MappingError."""
        settings = self._runtime.settings
        try:
            cm = await self._runtime.kube.get(CONFIGMAPS, settings.bridge_routes_configmap, settings.operator_namespace)
        except NotFound:
            return BridgeConfig(routes=dict(DEFAULT_ROUTES), target=None)
        data: dict[str, str] = dict(cm.get("data") or {})
        target_text = data.pop(TARGET_KEY, None)
        routes = {**DEFAULT_ROUTES, **parse_routes(data)}
        target = None
        if target_text:
            try:
                target = IncidentTarget.model_validate(yaml.safe_load(target_text) or {})
            except (yaml.YAMLError, ValidationError) as exc:
                raise MappingError(f"ConfigMap {settings.bridge_routes_configmap} key {TARGET_KEY}: {exc}") from exc
        return BridgeConfig(routes=routes, target=target)

    async def handle(self, payload: WebhookPayload) -> list[AlertResult]:
        """Process every alert of a notification."""
        config = await self.load_config()
        results = []
        for alert in payload.alerts:
            result = await self._handle_alert(alert, config)
            self._runtime.metrics.bridge_alerts.labels(result.outcome.value).inc()
            results.append(result)
        return results

    async def _handle_alert(self, alert: Alert, config: BridgeConfig) -> AlertResult:
        alertname = alert.labels.get("alertname", "")
        route = route_alert(alert.labels, alert.annotations, config.routes)
        namespace = dns_label(alert.labels.get("namespace") or self._runtime.settings.bridge_default_namespace)
        existing = await self._incidents_for(namespace, alert.fingerprint)
        if alert.status == "resolved":
            if not existing:
                return AlertResult(alert.fingerprint, alertname, AlertOutcome.RESOLVED_UNKNOWN, None, namespace)
            newest = existing[-1]
            await self._mark_resolved(newest)
            return AlertResult(alert.fingerprint, alertname, AlertOutcome.RESOLVED, newest["metadata"]["name"],
                               namespace)
        bad_runbook = invalid_runbook(alert.labels, alert.annotations)
        if bad_runbook is not None:
            # Counted and logged on every firing notification so the alert on it stays up until the rule is fixed.
            self._runtime.metrics.bridge_invalid_runbook.inc()
            log.warning("alert %s (fingerprint %s) has runbook label %r, which names no runbook an alert may start; "
                        "%s", label_value(alertname), alert.fingerprint, label_value(bad_runbook)[:63],
                        f"falling back to the alert-name route ({route.runbook.value})" if route
                        else "no alert-name route either, nothing created")
        if route is None:
            return AlertResult(alert.fingerprint, alertname, AlertOutcome.UNKNOWN, None, namespace)
        open_incidents = [i for i in existing if (i.get("status") or {}).get("phase") not in TERMINAL_PHASES]
        if open_incidents:
            name = open_incidents[-1]["metadata"]["name"]
            await self._touch(namespace, name, alert)
            return AlertResult(alert.fingerprint, alertname, AlertOutcome.UPDATED, name, namespace)
        name = incident_name(route.runbook, alert.fingerprint, int(alert.starts_at.timestamp()))
        body = self._incident_body(name, namespace, alert, route, config.target)
        if bad_runbook is not None:
            body["metadata"]["annotations"][INVALID_RUNBOOK_ANNOTATION] = bad_runbook[:256]
        try:
            await self._runtime.kube.create(INCIDENTS, body, namespace)
        except Conflict:
            await self._touch(namespace, name, alert)
            return AlertResult(alert.fingerprint, alertname, AlertOutcome.UPDATED, name, namespace)
        except NotFound:
            if await self._runtime.kube.get_or_none(NAMESPACES, namespace) is not None:
                raise  # the namespace exists, so the CRD is missing: a 5xx makes Alertmanager retry later
            # The alert names a namespace that does not exist; retrying cannot fix that, and creating the
            # incident elsewhere would remediate the wrong workloads. Recorded and counted like an unknown alert.
            log.warning("alert %s (fingerprint %s) names namespace %s, which does not exist; nothing created",
                        label_value(alertname), alert.fingerprint, namespace)
            return AlertResult(alert.fingerprint, alertname, AlertOutcome.NO_NAMESPACE, None, namespace)
        return AlertResult(alert.fingerprint, alertname, AlertOutcome.CREATED, name, namespace)

    async def _incidents_for(self, namespace: str, fingerprint: str) -> list[dict[str, Any]]:
        items = await self._runtime.kube.list(
            INCIDENTS, namespace, label_selector=f"{FINGERPRINT_LABEL}={label_value(fingerprint)}"
        )
        return sorted(items, key=lambda i: str(i["metadata"].get("creationTimestamp", "")))

    def _incident_body(
        self, name: str, namespace: str, alert: Alert, route: AlertRoute, target: IncidentTarget | None
    ) -> dict[str, Any]:
        base_target = target or IncidentTarget()
        spec = TradeSenseIncidentSpec(
            runbook=route.runbook,
            severity=route.severity,
            target=base_target.model_copy(update={"namespace": namespace}),
            source=IncidentSource(
                kind="alertmanager",
                fingerprint=alert.fingerprint,
                alertname=alert.labels.get("alertname", "")[:256] or None,
                url=alert.generator_url[:2048] or None,
            ),
            cancel_on_alert_resolved=cancel_on_resolve(alert.labels, alert.annotations),
        )
        now = self._runtime.clock.now().isoformat()
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    FINGERPRINT_LABEL: label_value(alert.fingerprint),
                    ALERTNAME_LABEL: label_value(alert.labels.get("alertname", "unknown")),
                    "app.kubernetes.io/created-by": "tradesense-alert-bridge",
                },
                "annotations": {
                    ALERT_STATUS_ANNOTATION: "firing",
                    ALERT_LAST_SEEN_ANNOTATION: now,
                    ALERT_NOTIFICATIONS_ANNOTATION: "1",
                },
            },
            "spec": spec.to_api(),
        }

    async def _touch(self, namespace: str, name: str, alert: Alert) -> None:
        """Record another notification: status, last-seen and count, guarded by resourceVersion.

        A conflict means someone wrote in between (another notification, kopf, the engine), so the
        write is redone on the fresh object rather than dropped: a lost write could leave the incident
        saying "resolved" while the alert fires again.
        """
        for _ in range(TOUCH_ATTEMPTS):
            current = await self._runtime.kube.get(INCIDENTS, name, namespace)
            annotations = current["metadata"].get("annotations") or {}
            try:
                count = int(annotations.get(ALERT_NOTIFICATIONS_ANNOTATION, "0")) + 1
            except ValueError:
                count = 1
            patch = {
                "metadata": {
                    "resourceVersion": current["metadata"]["resourceVersion"],
                    "annotations": {
                        ALERT_STATUS_ANNOTATION: alert.status,
                        ALERT_LAST_SEEN_ANNOTATION: self._runtime.clock.now().isoformat(),
                        ALERT_NOTIFICATIONS_ANNOTATION: str(count),
                    },
                }
            }
            try:
                await self._runtime.kube.patch(INCIDENTS, name, patch, namespace)
            except Conflict:
                continue
            return
        log.warning("%s/%s kept changing; notification not recorded after %d attempts", namespace, name,
                    TOUCH_ATTEMPTS)

    async def _mark_resolved(self, incident: Mapping[str, Any]) -> None:
        meta = incident["metadata"]
        patch: dict[str, Any] = {
            "metadata": {
                "annotations": {
                    ALERT_STATUS_ANNOTATION: "resolved",
                    ALERT_LAST_SEEN_ANNOTATION: self._runtime.clock.now().isoformat(),
                }
            }
        }
        spec = incident.get("spec") or {}
        phase = (incident.get("status") or {}).get("phase")
        if spec.get("cancelOnAlertResolved") and phase not in TERMINAL_PHASES:
            patch["spec"] = {"cancel": True}
        await self._runtime.kube.patch(INCIDENTS, meta["name"], patch, meta["namespace"])
