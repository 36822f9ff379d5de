"""Notifier against a local webhook receiver.

Covers: the Slack-compatible (`text` + `blocks`), PagerDuty Events v2 and generic payload shapes as received
over HTTP; that the webhook URL and routing key never appear in logs (caplog, every level) or in exception
text, even when the receiver echoes them back; and input validation naming the field.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.support.secrets import SecretGuard
from tradesense_operator.clients.errors import Invalid, Unavailable
from tradesense_operator.clients.http import HttpClient
from tradesense_operator.clients.notify import EscalationEvent, Notifier

from .conftest import ServeApp


@dataclass
class Receiver:
    base: str
    token: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"{self.base}/hooks/{self.token}"


@pytest.fixture
async def receiver(serve_app: ServeApp) -> Receiver:
    token = f"T0K3N{uuid.uuid4().hex}"
    state = Receiver(base="", token=token)

    async def hook(request: web.Request) -> web.Response:
        if request.match_info["token"] != state.token:
            return web.Response(status=404)
        body = await request.json()
        state.received.append(body)
        if state.status != 200:  # a hostile or chatty receiver echoing what it got
            return web.Response(status=state.status, text=f"rejected {request.path} {body.get('routing_key')}")
        return web.json_response({"status": "success"}, status=202)

    app = web.Application()
    app.router.add_post("/hooks/{token}", hook)
    state.base = await serve_app(app)
    return state


@pytest.fixture
async def notifier() -> AsyncIterator[Notifier]:
    async with HttpClient() as http:
        yield Notifier(http, timeout=5.0)


def _event(**overrides: Any) -> EscalationEvent:
    values: dict[str, Any] = {
        "incident": "site-down-7",
        "namespace": "tradesense",
        "runbook": "site-down",
        "severity": "P1",
        "summary": "backend <still> failing & smoke tests red",
        "respond_by": datetime(2026, 1, 5, 14, 45, tzinfo=UTC),
        "escalated_at": datetime(2026, 1, 5, 14, 46, tzinfo=UTC),
        "phase": "Running",
        "current_step": "restart-backend",
        "source": "alertmanager/abc123",
        "details": {"steps": "3/5 done"},
    }
    values.update(overrides)
    return EscalationEvent(**values)


async def test_slack_payload_has_text_and_blocks(notifier: Notifier, receiver: Receiver) -> None:
    await notifier.send(receiver.url, "slack", _event())
    [body] = receiver.received
    assert body["text"].startswith("[P1] tradesense/site-down-7 (site-down) missed its response deadline: backend")
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    assert body["blocks"][1]["text"]["text"] == "backend &lt;still&gt; failing &amp; smoke tests red"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in body["blocks"][2]["fields"]}
    assert fields["*severity*"] == "P1"
    assert fields["*respondBy*"] == "2026-01-05T14:45:00+00:00"
    assert fields["*currentStep*"] == "restart-backend"


async def test_pagerduty_payload_is_an_events_v2_trigger(notifier: Notifier, receiver: Receiver) -> None:
    key = f"R0UT1NG{uuid.uuid4().hex}"
    await notifier.send(receiver.url, "pagerduty", _event(severity="P3"), routing_key=key)
    await notifier.send(receiver.url, "pagerduty", _event(severity="P3"), routing_key=key)
    first, second = receiver.received
    assert first["routing_key"] == key
    assert first["event_action"] == "trigger"
    assert first["dedup_key"] == second["dedup_key"] == "tradesense-operator/tradesense/site-down-7"
    payload = first["payload"]
    assert set(payload) >= {"summary", "severity", "source", "custom_details"}
    assert payload["severity"] == "warning"
    assert payload["source"] == "tradesense/site-down-7"
    assert len(payload["summary"]) <= 1024
    assert payload["custom_details"]["runbook"] == "site-down"
    assert payload["custom_details"]["steps"] == "3/5 done"


async def test_generic_payload_describes_the_event(notifier: Notifier, receiver: Receiver) -> None:
    await notifier.send(receiver.url, "generic", _event(current_step=None, details={}))
    [body] = receiver.received
    assert body["kind"] == "TradeSenseIncidentEscalation"
    assert body["apiVersion"] == "ops.tradesense.io/v1alpha1"
    assert (body["incident"], body["namespace"], body["severity"], body["phase"]) == (
        "site-down-7",
        "tradesense",
        "P1",
        "Running",
    )
    assert "currentStep" not in body
    assert body["details"] == {}


async def test_long_summaries_are_clipped_to_the_receivers_limits(notifier: Notifier, receiver: Receiver) -> None:
    event = _event(summary="x" * 5000)
    await notifier.send(receiver.url, "slack", event)
    await notifier.send(receiver.url, "pagerduty", event, routing_key="k" * 32)
    slack, pagerduty = receiver.received
    assert len(slack["text"]) <= 3000
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"] if "text" in b)
    assert len(pagerduty["payload"]["summary"]) <= 1024


async def test_url_and_routing_key_never_reach_logs_or_errors(
    notifier: Notifier, receiver: Receiver, caplog: pytest.LogCaptureFixture, secret_guard: SecretGuard
) -> None:
    caplog.set_level(logging.DEBUG)
    key = secret_guard.plant(prefix="R0UT1NG")
    secret_guard.plant(receiver.token)  # the guard also fails the test on any leak into any log record
    await notifier.send(receiver.url, "pagerduty", _event(), routing_key=key)
    receiver.status = 500
    with pytest.raises(Unavailable) as caught:
        await notifier.send(receiver.url, "pagerduty", _event(), routing_key=key)
    errors = [str(caught.value), repr(caught.value)]
    refused_url = receiver.url.replace(receiver.base, "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(Unavailable) as refused:
        await notifier.send(refused_url, "slack", _event())
    errors += [str(refused.value), repr(refused.value)]
    assert str(caught.value).startswith("pagerduty notification webhook: HTTP 500")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (receiver.token, key):
        assert secret not in logged
        assert all(secret not in text for text in errors)
    assert "sent as a pagerduty notification" in caplog.text  # delivery is logged, just without secrets


async def test_send_validates_its_inputs(notifier: Notifier, receiver: Receiver) -> None:
    with pytest.raises(Invalid, match=r"^routing_key:"):
        await notifier.send(receiver.url, "pagerduty", _event())
    with pytest.raises(Invalid, match=r"^payload_format:"):
        await notifier.send(receiver.url, "teams", _event())  # type: ignore[arg-type]
    with pytest.raises(Invalid, match=r"^severity:"):
        await notifier.send(receiver.url, "slack", _event(severity="P0"))
    assert receiver.received == []
