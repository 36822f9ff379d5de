"""The Alertmanager webhook end to end over HTTP against the emulated API server.

Every rejected request is followed by a look at the cluster: a check that fails must leave no
TradeSenseIncident behind. Accepted requests are judged by the objects they leave (name, spec, labels,
annotations), not by the reply alone.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tests.integration.bridge.conftest import (
    INCIDENT_API,
    INCIDENT_KIND,
    TOKEN_SECRET,
    Bridge,
    BridgeFactory,
    alert,
    names,
    notification,
)
from tests.support.secrets import SecretGuard
from tradesense_operator.bridge.server import TOKEN_CACHE_SECONDS
from tradesense_operator.domain.alerts import (
    ALERT_NOTIFICATIONS_ANNOTATION,
    ALERT_STATUS_ANNOTATION,
    ALERTNAME_LABEL,
    FINGERPRINT_LABEL,
    INVALID_RUNBOOK_ANNOTATION,
)

SAMPLE_ROUTES = Path(__file__).resolve().parents[3] / "deploy" / "samples" / "alert-routes.yaml"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


# -- authentication ------------------------------------------------------------------------------


async def test_no_credentials_is_401_and_creates_nothing(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert()), auth=None)

    assert reply.status == 401
    assert reply.body["reason"] == "unauthorized"
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_requests_total", outcome="unauthorized") == 1


async def test_wrong_bearer_token_is_401_and_creates_nothing(bridge: Bridge) -> None:
    for wrong in ("not-the-token", bridge.token[:-1], bridge.token + "x", ""):
        reply = await bridge.post(notification(alert()), token=wrong)
        assert reply.status == 401, wrong
    reply = await bridge.post(notification(alert()), auth=None, headers={"Authorization": f"Token {bridge.token}"})
    assert reply.status == 401  # an unknown scheme is no credential, even with the right value
    assert bridge.incidents() == []


async def test_basic_auth_password_is_the_token(bridge: Bridge) -> None:
    wrong = await bridge.post(notification(alert()), auth="basic", token="guess")
    assert wrong.status == 401
    garbage = await bridge.post(notification(alert()), auth=None, headers={"Authorization": "Basic %%%not-base64"})
    assert garbage.status == 401
    no_password = await bridge.post(
        notification(alert()), auth=None,
        headers={"Authorization": "Basic " + base64.b64encode(b"alertmanager").decode()},
    )
    assert no_password.status == 401
    assert bridge.incidents() == []

    right = await bridge.post(notification(alert()), auth="basic")

    assert right.status == 200
    assert right.outcomes == ["created"]
    assert len(bridge.incidents()) == 1


async def test_missing_token_secret_fails_closed_with_503(bridge_factory: BridgeFactory) -> None:
    bridge = await bridge_factory(with_secret=False, bridge_token_secret="no-such-secret")

    reply = await bridge.post(notification(alert()))
    anonymous = await bridge.post(notification(alert()), auth=None)

    assert (reply.status, reply.body["reason"]) == (503, "not-configured")
    assert anonymous.status == 503
    assert bridge.incidents() == []


@pytest.mark.parametrize(("data", "token"), [
    pytest.param({"other": b"value-1234"}, "", id="secret-without-a-token-key"),
    pytest.param({"token": b"\xff\xfe\x00\x81binary"}, "\ufffd\ufffd", id="token-that-is-not-text"),
])
async def test_unusable_token_secret_fails_closed(bridge_factory: BridgeFactory, data: dict[str, bytes],
                                                  token: str) -> None:
    bridge = await bridge_factory(bridge_token_secret="bridge-unusable")
    bridge.cluster.create({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "bridge-unusable", "namespace": bridge.namespace},
                           "data": {key: base64.b64encode(value).decode() for key, value in data.items()}})

    reply = await bridge.post(notification(alert()), token=token)

    assert (reply.status, reply.body["reason"]) == (503, "not-configured")
    assert bridge.incidents() == []


async def test_rotated_token_takes_over_when_the_cache_expires(
    bridge_factory: BridgeFactory, secret_guard: SecretGuard
) -> None:
    clock = [1000.0]
    bridge = await bridge_factory(monotonic=lambda: clock[0])
    assert (await bridge.post(notification(alert()), auth=None)).status == 401  # caches the current token
    rotated = secret_guard.plant()
    bridge.cluster.patch("v1", "Secret", TOKEN_SECRET, {"data": {"token": base64.b64encode(rotated.encode()).decode()}},
                         bridge.namespace)

    clock[0] += TOKEN_CACHE_SECONDS - 1
    assert (await bridge.post(notification(alert(fingerprint="aaaa")), token=rotated)).status == 401
    clock[0] += 2

    assert (await bridge.post(notification(alert(fingerprint="bbbb")), token=rotated)).status == 200
    assert (await bridge.post(notification(alert(fingerprint="cccc")))).status == 401  # the old one is out
    assert [i["spec"]["source"]["fingerprint"] for i in bridge.incidents()] == ["bbbb"]


# -- size, syntax and schema ---------------------------------------------------------------------


async def test_oversized_body_is_413_and_creates_nothing(bridge_factory: BridgeFactory) -> None:
    bridge = await bridge_factory(bridge_max_body_bytes=4096)
    big = notification(alert(annotations={"description": "x" * 8000}))

    declared = await bridge.post(big)  # Content-Length says it all: rejected before reading
    assert (declared.status, declared.body["reason"]) == (413, "too-large")

    # chunked, no Content-Length: over aiohttp's own limit (limit + 1 KiB) it stops reading; between the two
    # limits our check after reading refuses it
    for size in (9000, 4500):
        async with bridge.session.post(bridge.url + "/alerts", data=_chunked(b"y" * size),
                                       headers={"Authorization": f"Bearer {bridge.token}"}) as response:
            assert response.status == 413, size
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_requests_total", outcome="too-large") == 3


async def _chunked(body: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    """A request body aiohttp sends with Transfer-Encoding: chunked (no Content-Length to check up front)."""
    for start in range(0, len(body), chunk):
        yield body[start:start + chunk]


async def test_malformed_json_is_400_and_creates_nothing(bridge: Bridge) -> None:
    for body in (b'{"version": "4", "alerts": [', b"\xff\xfe\x00garbage", b"", b"alerts=1"):
        reply = await bridge.post(body)
        assert (reply.status, reply.body["reason"]) == (400, "malformed-json"), body
        assert "not JSON" in reply.body["message"]
    assert bridge.incidents() == []


async def test_schema_invalid_payload_is_400_naming_the_field(bridge: Bridge) -> None:
    cases = {
        "alerts": {k: v for k, v in notification(alert()).items() if k != "alerts"},
        "version": {**notification(alert()), "version": "3"},
        "alerts.0.fingerprint": notification({**alert(), "fingerprint": "not/a fingerprint"}),
        "alerts.0.status": notification({**alert(), "status": "exploding"}),
        "alerts.0.startsAt": notification({**alert(), "startsAt": "yesterday"}),
        "alerts.0.labels.alertname": notification({**alert(), "labels": {"alertname": 42}}),
    }
    for field, payload in cases.items():
        reply = await bridge.post(payload)
        assert (reply.status, reply.body["reason"]) == (400, "invalid-payload"), field
        assert field in reply.body["message"], reply.body["message"]
    empty = await bridge.post(notification(alert()) | {"alerts": []})
    assert "alerts" in empty.body["message"]
    assert empty.status == 400
    not_an_object = await bridge.post(b"[1, 2, 3]")
    assert not_an_object.status == 400
    assert bridge.incidents() == []


# -- routing ------------------------------------------------------------------------------------


async def test_unknown_alert_is_recorded_and_answered_200_without_creating(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert("SomethingNobodyMapped", labels={"severity": "critical"})))

    assert reply.status == 200
    assert reply.outcomes == ["unknown"]
    assert reply.body["alerts"][0]["incident"] is None
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="unknown") == 1
    # an explicit runbook label naming no runbook is unknown too (never a guess)
    nonsense = await bridge.post(notification(alert("X", fingerprint="aa11", labels={"runbook": "reboot-the-world"})))
    assert nonsense.outcomes == ["unknown"]
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="unknown") == 2
    assert await bridge.metric("tradesense_operator_bridge_invalid_runbook_total") == 1


async def test_mistyped_runbook_label_falls_back_to_the_alert_name_route_and_is_recorded(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert("HighErrorRate", labels={"runbook": "hihg-error-rate"})))

    assert reply.outcomes == ["created"]
    [incident] = bridge.incidents()
    assert incident["spec"]["runbook"] == "high-error-rate"  # the alert-name route, not nothing
    assert incident["metadata"]["annotations"][INVALID_RUNBOOK_ANNOTATION] == "hihg-error-rate"
    assert await bridge.metric("tradesense_operator_bridge_invalid_runbook_total") == 1
    # a valid label is not counted
    await bridge.post(notification(alert("DiskSpaceLow", fingerprint="bb22", labels={"runbook": "disk-space-low"})))
    assert await bridge.metric("tradesense_operator_bridge_invalid_runbook_total") == 1


async def test_every_decision_is_one_audit_log_line(bridge: Bridge, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tradesense_operator.bridge.server")
    payload = notification(
        alert("HighErrorRate", fingerprint="aaaa000000000001"),
        alert("NobodyMappedThis", fingerprint="aaaa000000000002"),
        alert("CacheHitRateLow", fingerprint="aaaa000000000003", labels={"namespace": "Nowhere"}),
    )

    reply = await bridge.post(payload)

    created = reply.body["alerts"][0]["incident"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert decision:")]
    ns = bridge.namespace
    expected = [
        (f"alert decision: alertname=HighErrorRate fingerprint=aaaa000000000001 outcome=created namespace={ns} "
        f"incident={created}"),
        (f"alert decision: alertname=NobodyMappedThis fingerprint=aaaa000000000002 outcome=unknown namespace={ns} "
        "incident=-"),
        ("alert decision: alertname=CacheHitRateLow fingerprint=aaaa000000000003 outcome=namespace-missing "
        "namespace=nowhere incident=-"),
    ]
    assert lines == expected


async def test_firing_alert_creates_one_incident_with_runbook_severity_labels_and_source(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert("HighErrorRate", labels={"runbook": "high-error-rate"})))

    assert reply.status == 200
    assert reply.outcomes == ["created"]
    [incident] = bridge.incidents()
    assert incident["metadata"]["name"] == reply.body["alerts"][0]["incident"]
    assert DNS_LABEL.match(incident["metadata"]["name"])
    spec = incident["spec"]
    assert spec["runbook"] == "high-error-rate"
    assert spec["severity"] == "P2"  # severity=high
    assert spec["target"]["namespace"] == bridge.namespace
    assert spec["source"] == {
        "kind": "alertmanager", "fingerprint": "d1a2b3c4d5e6f708", "alertname": "HighErrorRate",
        "url": "http://prometheus.example:9090/graph?g0.expr=up",
    }
    labels = incident["metadata"]["labels"]
    assert labels[FINGERPRINT_LABEL] == "d1a2b3c4d5e6f708"
    assert labels[ALERTNAME_LABEL] == "HighErrorRate"
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "firing"
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="created") == 1
    assert await bridge.metric("tradesense_operator_bridge_requests_total", outcome="accepted") == 1


async def test_default_table_maps_every_alert_of_the_runbook(bridge: Bridge) -> None:
    expected = {
        "HighErrorRate": ("high-error-rate", "P2"),
        "DatabaseConnectionPoolExhausted": ("db-pool-exhausted", "P2"),
        "CacheHitRateLow": ("cache-hit-rate-low", "P3"),
        "Disk Space Low": ("disk-space-low", "P2"),
        "Certificate Expiring": ("certificate-expiring", "P3"),
    }
    alerts = [alert(name, fingerprint=f"f{i:015x}", labels={"severity": ""}) for i, name in enumerate(expected)]

    reply = await bridge.post(notification(*alerts))

    assert reply.outcomes == ["created"] * len(expected)
    got = {i["spec"]["source"]["alertname"]: (i["spec"]["runbook"], i["spec"]["severity"]) for i in bridge.incidents()}
    assert got == expected


async def test_one_notification_with_many_alerts_creates_one_incident_each(bridge: Bridge) -> None:
    alerts = [alert(fingerprint=f"{i:016x}", labels={"instance": f"pod-{i}"}) for i in range(5)]

    reply = await bridge.post(notification(*alerts))

    assert reply.outcomes == ["created"] * 5
    assert len(bridge.incidents()) == 5
    assert len(set(names(bridge.incidents()))) == 5


# -- deduplication -------------------------------------------------------------------------------


async def test_repeat_notifications_update_the_one_incident(bridge: Bridge) -> None:
    payload = notification(alert())

    replies = [await bridge.post(payload) for _ in range(4)]  # Alertmanager's repeat_interval resends

    assert [r.outcomes for r in replies] == [["created"], ["updated"], ["updated"], ["updated"]]
    [incident] = bridge.incidents()
    assert incident["metadata"]["annotations"][ALERT_NOTIFICATIONS_ANNOTATION] == "4"
    assert {r.body["alerts"][0]["incident"] for r in replies} == {incident["metadata"]["name"]}


async def test_a_new_firing_while_the_incident_is_open_updates_it(bridge: Bridge) -> None:
    first = await bridge.post(notification(alert()))
    # the same alert flapped: a new startsAt, but the first remediation has not finished
    again = await bridge.post(notification(alert(starts_at="2026-11-26T10:30:00Z")))

    assert again.outcomes == ["updated"]
    assert names(bridge.incidents()) == [first.body["alerts"][0]["incident"]]


async def test_a_new_firing_after_the_incident_finished_creates_a_new_one(bridge: Bridge) -> None:
    first = await bridge.post(notification(alert()))
    name = first.body["alerts"][0]["incident"]
    bridge.cluster.patch(INCIDENT_API, INCIDENT_KIND, name, {"status": {"phase": "Succeeded"}}, bridge.namespace,
                         subresource="status")
    repeat_of_old = await bridge.post(notification(alert()))
    refired = await bridge.post(notification(alert(starts_at="2026-11-26T11:00:00Z")))

    assert repeat_of_old.outcomes == ["updated"]  # the same firing never remediates twice
    assert refired.outcomes == ["created"]
    assert len(bridge.incidents()) == 2


async def test_concurrent_identical_notifications_create_exactly_one(bridge: Bridge) -> None:
    payload = notification(alert())

    replies = await asyncio.gather(*(bridge.post(payload) for _ in range(2)))
    more = await asyncio.gather(*(bridge.post(notification(alert(fingerprint="0123456789abcdef")))
                                  for _ in range(6)))

    assert sorted(o for r in replies for o in r.outcomes) == ["created", "updated"]
    assert sorted(o for r in more for o in r.outcomes) == ["created"] + ["updated"] * 5
    assert all(r.status == 200 for r in [*replies, *more])
    assert len(bridge.incidents()) == 2
    counts = sorted(i["metadata"]["annotations"][ALERT_NOTIFICATIONS_ANNOTATION] for i in bridge.incidents())
    assert counts == ["2", "6"]  # every notification recorded: a conflicting update is redone, not dropped


# -- resolution ----------------------------------------------------------------------------------


async def test_resolved_notification_is_recorded_without_cancelling_by_default(bridge: Bridge) -> None:
    await bridge.post(notification(alert()))

    reply = await bridge.post(notification(alert(status="resolved")))

    assert reply.outcomes == ["resolved"]
    [incident] = bridge.incidents()
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "resolved"
    assert not incident["spec"].get("cancel")


async def test_resolved_with_cancel_on_resolve_cancels_the_open_incident(bridge: Bridge) -> None:
    await bridge.post(notification(alert(annotations={"cancel_on_resolve": "true"})))
    [created] = bridge.incidents()
    assert created["spec"]["cancelOnAlertResolved"] is True

    await bridge.post(notification(alert(status="resolved", annotations={"cancel_on_resolve": "true"})))

    [incident] = bridge.incidents()
    assert incident["spec"]["cancel"] is True
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "resolved"


async def test_cancel_on_resolve_as_a_rule_label_cancels_too(bridge: Bridge) -> None:
    """The shipped rules set it as a label (per rule); the annotation form above keeps working."""
    await bridge.post(notification(alert(labels={"cancel_on_resolve": "true"})))
    await bridge.post(notification(alert(status="resolved", labels={"cancel_on_resolve": "true"})))

    [incident] = bridge.incidents()
    assert incident["spec"]["cancelOnAlertResolved"] is True
    assert incident["spec"]["cancel"] is True


async def test_resolved_after_the_incident_finished_does_not_cancel(bridge: Bridge) -> None:
    first = await bridge.post(notification(alert(annotations={"cancel_on_resolve": "true"})))
    name = first.body["alerts"][0]["incident"]
    bridge.cluster.patch(INCIDENT_API, INCIDENT_KIND, name, {"status": {"phase": "Succeeded"}}, bridge.namespace,
                         subresource="status")

    await bridge.post(notification(alert(status="resolved")))

    incident = bridge.incident(name)
    assert incident["metadata"]["annotations"][ALERT_STATUS_ANNOTATION] == "resolved"
    assert not incident["spec"].get("cancel")


async def test_resolved_without_an_incident_creates_nothing(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert(status="resolved")))

    assert (reply.status, reply.outcomes) == (200, ["resolved-without-incident"])
    assert bridge.incidents() == []


# -- the mapping ConfigMap -----------------------------------------------------------------------


def _routes_configmap(bridge: Bridge, data: dict[str, str]) -> None:
    bridge.cluster.create({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "tradesense-alert-routes", "namespace": bridge.namespace},
                           "data": data})


async def test_configmap_mapping_adds_and_overrides_routes(bridge: Bridge) -> None:
    _routes_configmap(bridge, {
        "QueueBacklogGrowing": "performance-degradation,P1",
        "HighErrorRate": "site-down,critical",  # overrides the shipped default
        "target.yaml": "backend: api-server\napiUrl: http://api.example:8000\n",
    })

    reply = await bridge.post(notification(
        alert("QueueBacklogGrowing", fingerprint="aaaa", labels={"severity": ""}),
        alert("HighErrorRate", fingerprint="bbbb", labels={"severity": ""}),
        alert("HighErrorRate", fingerprint="cccc", labels={"runbook": "high-error-rate", "severity": "warning"}),
    ))

    assert reply.outcomes == ["created"] * 3
    by_fp = {i["spec"]["source"]["fingerprint"]: i["spec"] for i in bridge.incidents()}
    assert (by_fp["aaaa"]["runbook"], by_fp["aaaa"]["severity"]) == ("performance-degradation", "P1")
    assert (by_fp["bbbb"]["runbook"], by_fp["bbbb"]["severity"]) == ("site-down", "P1")
    # an explicit runbook label wins over the table; its own severity label wins over the table's
    assert (by_fp["cccc"]["runbook"], by_fp["cccc"]["severity"]) == ("high-error-rate", "P3")
    assert by_fp["aaaa"]["target"]["backend"] == "api-server"
    assert by_fp["aaaa"]["target"]["apiUrl"] == "http://api.example:8000"
    assert by_fp["aaaa"]["target"]["namespace"] == bridge.namespace


async def test_the_shipped_sample_routes_configmap_works_as_is(bridge: Bridge) -> None:
    sample = yaml.safe_load(SAMPLE_ROUTES.read_text(encoding="utf-8"))
    sample["metadata"]["namespace"] = bridge.namespace  # the operator namespace of this test
    bridge.cluster.create(sample)

    reply = await bridge.post(notification(alert("TradeSenseDown", fingerprint="dddd", labels={"severity": ""})))

    assert reply.outcomes == ["created"]
    [incident] = bridge.incidents()
    assert (incident["spec"]["runbook"], incident["spec"]["severity"]) == ("complete-failure", "P1")
    assert incident["spec"]["target"]["apiUrl"] == "http://backend.tradesense.svc:8000"
    assert incident["spec"]["target"]["namespace"] == bridge.namespace  # the alert's namespace, not the sample's


async def test_malformed_mapping_answers_500_naming_the_entry_and_creates_nothing(bridge: Bridge) -> None:
    _routes_configmap(bridge, {"HighErrorRate": "high-error-rate,P2", "BrokenEntry": "restart-everything,P1"})

    reply = await bridge.post(notification(alert()))

    assert (reply.status, reply.body["reason"]) == (500, "bad-mapping")
    assert "BrokenEntry" in reply.body["message"]
    assert "restart-everything" in reply.body["message"]
    assert bridge.incidents() == []


async def test_malformed_target_defaults_answer_500_naming_the_key(bridge: Bridge) -> None:
    _routes_configmap(bridge, {"target.yaml": "backend: Not_A_Name!\n"})

    reply = await bridge.post(notification(alert()))

    assert reply.status == 500
    assert "target.yaml" in reply.body["message"]
    assert "backend" in reply.body["message"]
    assert bridge.incidents() == []


# -- sanitising ----------------------------------------------------------------------------------


async def test_namespace_label_is_sanitised_into_a_namespace_name(bridge: Bridge) -> None:
    odd = bridge.namespace.upper().replace("-", "_") + " !!"  # e.g. "T_TEST_X_ABC123 !!"

    reply = await bridge.post(notification(alert(labels={"namespace": odd})))

    assert reply.outcomes == ["created"]
    [incident] = bridge.incidents()
    assert incident["metadata"]["namespace"] == bridge.namespace
    assert incident["spec"]["target"]["namespace"] == bridge.namespace


async def test_alert_naming_a_missing_namespace_is_recorded_not_retried(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert(labels={"namespace": "Nowhere_At_All"})))

    # 200: Alertmanager retrying cannot make the namespace exist; the metric and a warning say what happened
    assert (reply.status, reply.outcomes) == (200, ["namespace-missing"])
    assert bridge.cluster.list(INCIDENT_API, INCIDENT_KIND, "nowhere-at-all") == []
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_alerts_total", outcome="namespace-missing") == 1


async def test_long_alertname_and_fingerprint_become_valid_distinct_names_and_labels(bridge: Bridge) -> None:
    long_name = "Very Long/Alert:Name " * 20  # 420 characters with spaces, slashes and colons
    fp_a = "A" * 100 + "1"
    fp_b = "A" * 100 + "2"  # differs only after the part a name could keep

    reply = await bridge.post(notification(
        alert(long_name, fingerprint=fp_a, labels={"runbook": "high-error-rate"}),
        alert(long_name, fingerprint=fp_b, labels={"runbook": "high-error-rate"}),
    ))

    assert reply.outcomes == ["created", "created"]
    incidents = bridge.incidents()
    assert len(incidents) == 2
    for incident in incidents:
        meta = incident["metadata"]
        assert DNS_LABEL.match(meta["name"])
        assert len(meta["name"]) <= 63
        for value in meta["labels"].values():
            assert LABEL_VALUE.match(value), value
            assert len(value) <= 63, value
        assert len(incident["spec"]["source"]["alertname"]) <= 256
    assert {i["spec"]["source"]["fingerprint"] for i in incidents} == {fp_a, fp_b}
    # dedup still finds each incident by its (hashed) fingerprint label
    again = await bridge.post(notification(alert(long_name, fingerprint=fp_b, labels={"runbook": "high-error-rate"})))
    assert again.outcomes == ["updated"]
    assert len(bridge.incidents()) == 2


async def test_fingerprints_differing_only_in_case_do_not_share_an_incident(bridge: Bridge) -> None:
    reply = await bridge.post(notification(alert(fingerprint="abcdef"), alert(fingerprint="ABCDEF")))

    assert reply.outcomes == ["created", "created"]
    assert len(bridge.incidents()) == 2


# -- rate limit ----------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_and_creates_nothing(bridge_factory: BridgeFactory) -> None:
    bridge = await bridge_factory(bridge_rate_per_second=0.2, bridge_burst=2)
    await bridge.post(b"not json")  # rejected requests spend tokens too: a flood is a flood
    await bridge.post(b"not json")

    limited = await bridge.post(notification(alert()))

    assert (limited.status, limited.body["reason"]) == (429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 5  # one token per 5 s at 0.2/s
    assert bridge.incidents() == []
    assert await bridge.metric("tradesense_operator_bridge_requests_total", outcome="rate-limited") == 1


# -- the other endpoints -------------------------------------------------------------------------


async def test_health_endpoints_answer(bridge: Bridge) -> None:
    for path, expected in (("/healthz", "ok"), ("/readyz", "ready")):
        async with bridge.session.get(bridge.url + path) as response:
            assert response.status == 200
            assert (await response.json())["status"] == expected
